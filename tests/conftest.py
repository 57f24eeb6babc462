from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.core import Analyzer
from bot.knowledge import Knowledge, load_knowledge


@pytest.fixture(scope="session")
def kb() -> Knowledge:
    return load_knowledge()


@pytest.fixture(scope="session")
def analyzer(kb: Knowledge) -> Analyzer:
    a = Analyzer(kb)
    a.warm_up()
    return a


@pytest.fixture(scope="session")
def console_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case database filled once through the console chat (raw text stored, to prove it is never shown)."""
    from tests.helpers import fill_case_db

    path = tmp_path_factory.mktemp("console") / "cases.db"
    fill_case_db(path, STORE_RAW_TEXT="true")
    return path


@pytest.fixture
def case_db(console_db: Path, tmp_path: Path) -> Path:
    """A private copy of ``console_db`` that a test may change."""
    path = tmp_path / "cases.db"
    source, target = sqlite3.connect(console_db), sqlite3.connect(path)
    source.backup(target)
    source.close()
    target.close()
    return path

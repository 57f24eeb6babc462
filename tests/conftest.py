from __future__ import annotations

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

"""Where derived files live that only save start-up time (a reduced jieba dictionary, a mark that the
knowledge base's patterns were checked): safe to delete at any time, rebuilt when missing."""

from __future__ import annotations

import tempfile
from pathlib import Path


def cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "smsguard"

"""The case log (SQLite through sqlite-utils): migrations, redaction before write."""

from bot.store.cases import CaseStore, NewCase, case_json, keyed_hash

__all__ = ["CaseStore", "NewCase", "case_json", "keyed_hash"]

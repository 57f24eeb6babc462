"""The case log: one row per case in the SQLite table ``cases``, personal data redacted before writing."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.core import Analysis
from bot.core.redact import redact, redact_fragment
from bot.store.migrations import migrations

# Entity lists that may carry personal numbers; each value is redacted like free text.
_ENTITY_TEXT_KEYS = ("senders", "phones", "urls", "amounts", "dates", "case_numbers")
CASE_FIELDS = (
    "id",
    "created_at",
    "channel",
    "kind",
    "verdict",
    "confidence",
    "text",
    "signals",
    "topics",
    "feedback",
    "label",
    "note",
    "throttled",
    "kb_version",
)


def keyed_hash(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class NewCase:
    channel: str
    user_id: str
    text: str  # original text; redacted here before it is written
    analysis: Analysis | None  # None for throttled messages that were not analysed
    message_key: str | None = None
    throttled: bool = False
    forward_origin: str | None = None  # origin type of a forwarded message (no names), see m002
    forwarded_at: str | None = None


class CaseStore:
    """sqlite-utils on one file; one connection per thread (SQLite connections must not be shared)."""

    def __init__(self, path: Path | str, user_key: bytes, store_raw_text: bool = False):
        self.path = Path(path)
        self._key = user_key
        self._store_raw = store_raw_text
        self._local = threading.local()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Readable by this user only; SQLite gives the -wal and -shm files the database's permissions.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        migrations.apply(self.db)

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA secure_delete=ON")  # deleted cases are overwritten, not left in free pages
            conn.execute("PRAGMA foreign_keys=ON")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def user_hash(self, user_id: str) -> str:
        return keyed_hash(self._key, user_id)

    def message_key(self, channel: str, chat_id: str, message_id: str) -> str:
        return keyed_hash(self._key, f"{channel}:{chat_id}:{message_id}")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock first (``BEGIN IMMEDIATE``).

        sqlite-utils reads the schema before an insert; in a deferred transaction that read would have to be
        upgraded to a write, which fails at once ("database is locked") when another thread or process
        wrote meanwhile (the retention job, an operator's label). Taking the lock first waits instead.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def log_case(self, case: NewCase) -> int | None:
        """Write one case; returns its id, or None when ``message_key`` was already logged."""
        row = self._row(case)
        try:
            with self.write() as db:
                table = db.table("cases")
                table.insert(row)
                return int(table.last_pk)  # type: ignore[arg-type]
        except sqlite3.IntegrityError:
            if case.message_key is None:
                raise
            return None

    def _row(self, case: NewCase) -> dict[str, Any]:
        a = case.analysis
        row: dict[str, Any] = {
            "created_at": utc_now(),
            "channel": case.channel,
            "user_hash": self.user_hash(case.user_id),
            "message_key": case.message_key,
            "text": redact(case.text),
            "raw_text": case.text if self._store_raw else None,
            "throttled": int(case.throttled),
            "kind": a.kind if a else "sms",
            "verdict": a.verdict if a else "unrelated",
            "confidence": a.confidence if a else None,
            "forward_origin": case.forward_origin,
            "forwarded_at": case.forwarded_at,
        }
        if a is not None:
            entities = a.entities.as_dict()
            for key in _ENTITY_TEXT_KEYS:
                entities[key] = [redact(v) for v in entities[key]]  # type: ignore[attr-defined]
            row |= {
                "signals": json.dumps(
                    [h.as_dict() | {"evidence": redact_fragment(h.evidence)} for h in a.signals],
                    ensure_ascii=False,
                ),
                "topics": json.dumps([t.as_dict() for t in a.topics], ensure_ascii=False),
                "entities": json.dumps(entities, ensure_ascii=False),
                "platforms": json.dumps(list(a.entities.platforms)),
                "reply": redact(a.reply.as_text()),
                "crisis": int(a.crisis),
                "kb_version": a.kb_version,
                "analysis_ms": a.timings_ms.get("analyze"),
            }
        return row

    def get_case(self, case_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM cases WHERE id = ?", [case_id]))
        return case_json(rows[0]) if rows else None

    def set_feedback(self, case_id: int, feedback: str, user_id: str | None = None) -> bool:
        """Store 👍/👎 on a case; with ``user_id``, only on a case of that user's (False otherwise)."""
        sql, params = "UPDATE cases SET feedback = ? WHERE id = ?", [feedback, case_id]
        if user_id is not None:
            sql, params = sql + " AND user_hash = ?", [*params, self.user_hash(user_id)]
        with self.db.conn:
            cur = self.db.execute(sql, params)
        return cur.rowcount > 0

    def delete_user_cases(self, user_id: str) -> int:
        with self.db.conn:
            cur = self.db.execute("DELETE FROM cases WHERE user_hash = ?", [self.user_hash(user_id)])
        if cur.rowcount:
            compact_search_index(self.db)
        return cur.rowcount

    def count(self) -> int:
        return self.db.table("cases").count


def compact_search_index(db: sqlite_utils.Database) -> None:
    """After deletions: merge the trigram index, so deleted cases' entries are dropped rather than only
    marked deleted (``secure_delete`` then overwrites the freed pages), and checkpoint the WAL, so the
    deleted text does not linger in the -wal file either."""
    if db.table("cases_fts").exists():
        with db.conn:
            db.execute("INSERT INTO cases_fts (cases_fts) VALUES ('optimize')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def case_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row as DESIGN's case object (JSON columns decoded, only the contract's keys)."""
    out = {key: row.get(key) for key in CASE_FIELDS}
    for key in ("signals", "topics"):
        value = out[key]
        out[key] = json.loads(value) if isinstance(value, str) and value else []
    out["throttled"] = bool(out["throttled"])
    return out

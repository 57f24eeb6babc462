"""Schema of the case database. Every change is a new migration here, never an ad-hoc ALTER elsewhere."""

from __future__ import annotations

import sqlite3

import sqlite_utils
from sqlite_utils import Migrations

migrations = Migrations("smsguard")


@migrations()
def m001_create_cases(db: sqlite_utils.Database) -> None:
    db.table("cases").create(
        {
            "id": int,
            "created_at": str,  # ISO 8601, UTC
            "channel": str,
            "user_hash": str,  # keyed hash of the platform user id, never the id itself
            "message_key": str,  # keyed hash of chat + message id, to drop duplicate deliveries
            "kind": str,
            "verdict": str,
            "confidence": float,
            "text": str,  # redacted
            "raw_text": str,  # only when STORE_RAW_TEXT is on
            "signals": str,  # JSON, evidence redacted
            "topics": str,  # JSON
            "entities": str,  # JSON, personal numbers redacted
            "platforms": str,  # JSON list of platform ids, for stats
            "reply": str,  # redacted
            "crisis": int,
            "throttled": int,
            "feedback": str,  # "up" | "down" | None
            "label": str,  # operator's verdict
            "label_topic": str,
            "note": str,  # operator's note, redacted
            "reviewed_at": str,
            "kb_version": str,
            "analysis_ms": float,
        },
        pk="id",
        not_null={"created_at", "channel", "kind", "verdict", "text"},
        defaults={"throttled": 0, "crisis": 0},
    )
    db.table("cases").create_index(["created_at"])
    db.table("cases").create_index(["user_hash"])
    db.table("cases").create_index(["verdict"])
    db.execute(
        "CREATE UNIQUE INDEX idx_cases_message_key ON cases(message_key) WHERE message_key IS NOT NULL"
    )


@migrations()
def m002_forward_metadata(db: sqlite_utils.Database) -> None:
    """Forwarded messages (Telegram): the origin's type and the original date, never the sender's name."""
    db.table("cases").add_column("forward_origin", str)
    db.table("cases").add_column("forwarded_at", str)


@migrations()
def m003_operator_review(db: sqlite_utils.Database) -> None:
    """Operators' review: promotion marks, follow-up requests, and a trigram search index of redacted text."""
    db.table("cases").add_column("promoted_at", str)
    db.table("cases").add_column("promoted_topic", str)
    db.table("cases").create_index(["label"], if_not_exists=True)
    # A user who tapped "有新结论时通知我": the chat id is kept for that case alone, deleted once told (or with
    # the case, by retention or the user's own deletion).
    db.execute(
        """CREATE TABLE case_notify (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (case_id, channel, chat_id)
        )"""
    )
    # FTS5's trigram tokenizer indexes Chinese (words of 3+ characters; shorter ones fall back to LIKE). It
    # holds the redacted ``text`` column only, never ``raw_text``; external content, so no second copy.
    # Triggers fire on ``text`` changes only, not on every label or feedback update.
    try:
        db.execute('CREATE VIRTUAL TABLE cases_fts USING fts5(text, tokenize="trigram", content="cases")')
    except sqlite3.OperationalError:
        return  # SQLite older than 3.34 has no trigram tokenizer: search uses LIKE alone
    db.execute(
        """CREATE TRIGGER cases_fts_ai AFTER INSERT ON cases BEGIN
            INSERT INTO cases_fts (rowid, text) VALUES (new.id, new.text);
        END"""
    )
    db.execute(
        """CREATE TRIGGER cases_fts_ad AFTER DELETE ON cases BEGIN
            INSERT INTO cases_fts (cases_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END"""
    )
    db.execute(
        """CREATE TRIGGER cases_fts_au AFTER UPDATE OF text ON cases BEGIN
            INSERT INTO cases_fts (cases_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO cases_fts (rowid, text) VALUES (new.id, new.text);
        END"""
    )
    db.execute("INSERT INTO cases_fts (cases_fts) VALUES ('rebuild')")

"""Schema of the case database. Every change is a new migration here, never an ad-hoc ALTER elsewhere."""

from __future__ import annotations

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

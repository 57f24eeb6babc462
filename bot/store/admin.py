"""Operator writes on the case log: labels, promotion marks, follow-up requests, retention purge, backup."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.core.redact import redact
from bot.store.cases import CaseStore, compact_search_index, utc_now


@dataclass(frozen=True)
class Notification:
    """A user asked to be told when an operator's label differs from the bot's verdict; it now does."""

    id: int
    case_id: int
    channel: str
    chat_id: str
    verdict: str  # what the bot said
    label: str  # what the operator decided


def label_case(
    store: CaseStore, case_id: int, label: str, topic: str | None = None, note: str | None = None
) -> bool:
    """Set the operator's verdict (and topic, note: kept when not given). False when there is no such case.

    When the label agrees with the bot there is nothing to tell users who asked to be notified, so their chat
    ids are deleted at once; otherwise they stay until :func:`clear_notification`.
    """
    db = store.db
    with store.write():
        cur = db.execute(
            """UPDATE cases SET label = ?, label_topic = coalesce(?, label_topic), note = coalesce(?, note),
                   reviewed_at = ?
               WHERE id = ?""",
            [label, topic, redact(note) if note is not None else None, utc_now(), case_id],
        )
        if cur.rowcount == 0:
            return False
        db.execute(
            "DELETE FROM case_notify WHERE case_id = ? AND (SELECT label = verdict FROM cases WHERE id = ?)",
            [case_id, case_id],
        )
    return True


def mark_promoted(store: CaseStore, case_id: int, topic: str) -> bool:
    with store.write():
        cur = store.db.execute(
            """UPDATE cases SET promoted_at = ?, promoted_topic = ?, reviewed_at = coalesce(reviewed_at, ?)
               WHERE id = ?""",
            [utc_now(), topic, utc_now(), case_id],
        )
    return cur.rowcount > 0


def request_notify(store: CaseStore, case_id: int, channel: str, chat_id: str) -> bool:
    """Remember that this chat wants the operators' conclusion on this case; False for an unknown case."""
    with store.write():
        cur = store.db.execute(
            """INSERT OR IGNORE INTO case_notify (case_id, channel, chat_id, created_at)
               SELECT id, ?, ?, ? FROM cases WHERE id = ?""",
            [channel, chat_id, utc_now(), case_id],
        )
        if cur.rowcount:
            return True
        return bool(store.db.execute("SELECT 1 FROM cases WHERE id = ?", [case_id]).fetchone())


def due_notifications(
    store: CaseStore, channel: str | None = None, case_id: int | None = None
) -> list[Notification]:
    """Requests whose case an operator has labelled differently from the bot's verdict."""
    sql = """SELECT n.id, n.case_id, n.channel, n.chat_id, c.verdict, c.label
             FROM case_notify AS n JOIN cases AS c ON c.id = n.case_id
             WHERE c.label IS NOT NULL AND c.label != c.verdict"""
    params: list[str | int] = []
    if channel is not None:
        sql += " AND n.channel = ?"
        params.append(channel)
    if case_id is not None:
        sql += " AND n.case_id = ?"
        params.append(case_id)
    return [Notification(*row) for row in store.db.execute(sql + " ORDER BY n.id", params)]


def clear_notification(store: CaseStore, notification_id: int) -> None:
    """Forget the chat id once the user has been told."""
    with store.write():
        store.db.execute("DELETE FROM case_notify WHERE id = ?", [notification_id])


def cutoff(age: dt.timedelta, now: dt.datetime | None = None) -> str:
    """The ``created_at`` value ``age`` ago (ISO 8601 UTC, the format cases are written in)."""
    return ((now or dt.datetime.now(dt.UTC)) - age).isoformat(timespec="seconds")


def purge_before(store: CaseStore, before: str) -> int:
    """Delete cases created before ``before`` (ISO 8601 UTC); their follow-up requests go with them."""
    with store.write():
        cur = store.db.execute("DELETE FROM cases WHERE created_at < ?", [before])
    if cur.rowcount:
        compact_search_index(store.db)
    return cur.rowcount


def backup(store: CaseStore, destination: Path) -> None:
    """A consistent copy through SQLite's online backup API (safe while bots write). The file is mode 600.

    Raises FileExistsError rather than overwrite an existing file.
    """
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    target = sqlite3.connect(str(destination))
    try:
        store.db.conn.backup(target)
    except BaseException:
        target.close()
        destination.unlink(missing_ok=True)
        raise
    target.close()

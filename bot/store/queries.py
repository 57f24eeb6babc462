"""Read-only queries over the case log for operators: filters, search, the review queue, stats, export rows.

Functions take a ``sqlite_utils.Database`` (``CaseStore.db``, the calling thread's connection) and return
plain rows; :func:`bot.store.case_json` turns a row into DESIGN's case object.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from rapidfuzz import fuzz, process

from bot.core.normalize import normalize

# Two texts this similar (rapidfuzz ratio, 0-100, after normalizing and masking digits) are one queue group.
NEAR_DUPLICATE = 85.0
# Grouping compares each case with every group so far; the queue looks at this many newest cases.
QUEUE_WINDOW = 2000
TRIGRAM = 3  # FTS5's trigram tokenizer only finds terms of at least three characters

UNMATCHED_SQL = "(throttled = 0 AND coalesce(topics, '[]') = '[]')"


@dataclass(frozen=True)
class CaseFilter:
    verdict: str | None = None
    unreviewed: bool = False
    below_confidence: float | None = None  # LOW_CONFIDENCE when --low-confidence is given
    unmatched: bool = False
    since: str | None = None  # ISO 8601 UTC cut-off, compared with ``created_at``
    search: str | None = None
    limit: int | None = 50


def has_search_index(db: sqlite_utils.Database) -> bool:
    return db.table("cases_fts").exists()


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(db: sqlite_utils.Database, text: str) -> tuple[str, list[Any]]:
    """Every whitespace-separated term must occur in the redacted text.

    Terms of three or more characters use the FTS5 trigram index; shorter ones (催收, 法院) cannot be found by
    it and use ``LIKE`` instead. Search runs on the redacted text only.
    """
    terms = [t for t in text.split() if t]
    if not terms:
        return "1", []
    fts = has_search_index(db)
    parts: list[str] = []
    params: list[Any] = []
    for term in terms:
        if fts and len(term) >= TRIGRAM:
            parts.append("id IN (SELECT rowid FROM cases_fts WHERE cases_fts MATCH ?)")
            params.append('"' + term.replace('"', '""') + '"')  # one quoted phrase: no FTS syntax
        else:
            parts.append("text LIKE ? ESCAPE '\\'")
            params.append(f"%{_like_escape(term)}%")
    return " AND ".join(parts), params


def filter_sql(db: sqlite_utils.Database, f: CaseFilter) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    if f.verdict is not None:
        parts.append("verdict = ?")
        params.append(f.verdict)
    if f.unreviewed:
        parts.append("label IS NULL AND promoted_at IS NULL")  # promoting a case is reviewing it
    if f.below_confidence is not None:
        parts.append("confidence < ?")
        params.append(f.below_confidence)
    if f.unmatched:
        parts.append(UNMATCHED_SQL)
    if f.since is not None:
        parts.append("created_at >= ?")
        params.append(f.since)
    if f.search:
        sql, more = search_condition(db, f.search)
        parts.append(sql)
        params += more
    return (" AND ".join(parts) or "1"), params


def list_cases(db: sqlite_utils.Database, f: CaseFilter) -> list[dict[str, Any]]:
    """Matching rows, newest first."""
    where, params = filter_sql(db, f)
    sql = f"SELECT * FROM cases WHERE {where} ORDER BY id DESC"
    if f.limit is not None:
        sql += " LIMIT ?"
        params.append(f.limit)
    return list(db.query(sql, params))


def get_row(db: sqlite_utils.Database, case_id: int) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM cases WHERE id = ?", [case_id]))
    return rows[0] if rows else None


def iter_rows(db: sqlite_utils.Database, since: str | None = None) -> Iterator[dict[str, Any]]:
    """All rows in id order (for export), optionally from ``since`` on."""
    if since is None:
        yield from db.query("SELECT * FROM cases ORDER BY id")
    else:
        yield from db.query("SELECT * FROM cases WHERE created_at >= ? ORDER BY id", [since])


def labelled_rows(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Cases an operator labelled, for ``eval --from-cases``; promoted ones are training data, not tests."""
    return list(db.query("SELECT * FROM cases WHERE label IS NOT NULL AND promoted_at IS NULL ORDER BY id"))


# --- the review queue ---------------------------------------------------------------------------------


@dataclass
class QueueGroup:
    """Near-duplicate unreviewed cases; ``case`` is the representative shown to the operator."""

    case: dict[str, Any]
    case_ids: list[int] = field(default_factory=list)
    low_confidence: bool = False
    thumbs_down: bool = False
    unmatched: bool = False

    @property
    def count(self) -> int:
        return len(self.case_ids)

    def flags(self, names: dict[str, str]) -> list[str]:
        """Why the group is near the front, in the caller's words: ``names`` maps low_confidence,
        thumbs_down and unmatched to labels."""
        held = {
            "low_confidence": self.low_confidence,
            "thumbs_down": self.thumbs_down,
            "unmatched": self.unmatched,
        }
        return [names[key] for key, on in held.items() if on]

    @property
    def tier(self) -> int:
        """0: the bot was unsure or the user said 👎; 1: no topic matched; 2: confident."""
        if self.low_confidence or self.thumbs_down:
            return 0
        return 1 if self.unmatched else 2


def _duplicate_key(text: str) -> str:
    # Numbers (amounts, dates, case numbers) vary between copies of one template; personal data is already
    # replaced by placeholders such as [手机号].
    return re.sub(r"\d+", "0", normalize(text).text)


def review_queue(
    db: sqlite_utils.Database,
    low_confidence: float,
    exclude: Sequence[int] = (),
    window: int = QUEUE_WINDOW,
) -> list[QueueGroup]:
    """The newest ``window`` unreviewed analysed cases, grouped by near-duplicate text.

    Order: unsure (below ``low_confidence``) or 👎 groups first, then unmatched, then confident; within a
    tier the most asked first, then the newest. ``exclude``: case ids to leave out (skipped in a session).
    """
    rows = db.query(
        """SELECT * FROM cases
           WHERE label IS NULL AND promoted_at IS NULL AND throttled = 0
           ORDER BY id DESC LIMIT ?""",
        [window],
    )
    skip = set(exclude)
    groups: list[QueueGroup] = []
    keys: list[str] = []
    for row in rows:
        if row["id"] in skip:
            continue
        key = _duplicate_key(row["text"])
        best = process.extractOne(key, keys, scorer=fuzz.ratio, processor=None, score_cutoff=NEAR_DUPLICATE)
        if best is None:
            group = QueueGroup(case=row)
            groups.append(group)
            keys.append(key)
        else:
            group = groups[best[2]]
        group.case_ids.append(row["id"])
        confidence = row["confidence"]
        group.low_confidence |= confidence is not None and confidence < low_confidence
        group.thumbs_down |= row["feedback"] == "down"
        group.unmatched |= (row["topics"] or "[]") == "[]"
    groups.sort(key=lambda g: (g.tier, -g.count, -g.case["id"]))
    return groups


# --- stats --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


def case_stats(db: sqlite_utils.Database, since: str | None = None) -> dict[str, Any]:
    where, params = ("created_at >= ?", [since]) if since else ("1", [])

    def count(condition: str = "1") -> int:
        return int(
            db.execute(f"SELECT count(*) FROM cases WHERE {where} AND {condition}", params).fetchone()[0]
        )

    total, analysed, unmatched = count(), count("throttled = 0"), count(UNMATCHED_SQL)
    per_day = {
        day: n
        for day, n in db.execute(
            f"SELECT substr(created_at, 1, 10), count(*) FROM cases WHERE {where} GROUP BY 1 ORDER BY 1",
            params,
        )
    }
    per_verdict = {
        verdict: n
        for verdict, n in db.execute(
            f"SELECT verdict, count(*) FROM cases WHERE {where} AND throttled = 0 "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        )
    }
    per_platform = {
        platform: n
        for platform, n in db.execute(
            f"""SELECT j.value, count(*) FROM cases, json_each(cases.platforms) AS j
                WHERE {where} AND cases.platforms IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1""",
            params,
        )
    }
    feedback = Counter(
        {
            value: n
            for value, n in db.execute(
                f"SELECT feedback, count(*) FROM cases WHERE {where} AND feedback IS NOT NULL GROUP BY 1",
                params,
            )
        }
    )
    labelled, agreed = db.execute(
        f"""SELECT count(label), coalesce(sum(label = verdict), 0) FROM cases WHERE {where}""", params
    ).fetchone()
    timings = [
        ms
        for (ms,) in db.execute(
            f"SELECT analysis_ms FROM cases WHERE {where} AND analysis_ms IS NOT NULL", params
        )
    ]
    rated = feedback["up"] + feedback["down"]
    return {
        "since": since,
        "cases": total,
        "analysed": analysed,
        "throttled": total - analysed,
        "per_day": per_day,
        "per_verdict": per_verdict,
        "per_platform": per_platform,
        "feedback": {
            "up": feedback["up"],
            "down": feedback["down"],
            "helpful_ratio": round(feedback["up"] / rated, 4) if rated else None,
        },
        "unmatched_rate": round(unmatched / analysed, 4) if analysed else None,
        "labelled": labelled,
        "label_agreement": round(agreed / labelled, 4) if labelled else None,
        "analysis_ms": {"p50": percentile(timings, 0.5), "p99": percentile(timings, 0.99)},
    }

"""``smsguard cases ...``: the operators' review of logged cases. The work is done by :mod:`bot.operators`."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from bot.knowledge import DEFAULT_DIR

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration(click.ParamType):
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        match = _DURATION.match(str(value).strip().lower())
        if match is None or int(match[1]) == 0:
            self.fail(f"{value!r} is not a duration like 7d, 12h, 30m", param, ctx)
        return dt.timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


DURATION = Duration()


def parse_duration(text: str) -> dt.timedelta:
    return DURATION.convert(text, None, None)


def _since(age: dt.timedelta | None) -> str | None:
    from bot.store.admin import cutoff

    return cutoff(age) if age is not None else None


def _open(kb_dir: Path | None = None) -> Any:
    """The :class:`~bot.operators.Operators` of the configured case database (exit 1 when there is none)."""
    from bot.cli import build_knowledge, build_settings, fail
    from bot.operators import Operators
    from bot.store import CaseStore

    settings = build_settings()
    path = settings.SMSGUARD_DB
    if not path.is_file():
        fail(f"no case database at {path} (cases are logged by `smsguard chat` and the bots)")
    try:
        store = CaseStore(path, settings.user_hash_key(), settings.STORE_RAW_TEXT)
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot open the case database {path}: {exc}")
    return Operators(store, low_confidence=settings.LOW_CONFIDENCE, knowledge=lambda: build_knowledge(kb_dir))


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """An :class:`~bot.operators.OperatorError` becomes one line on stderr and exit code 1."""
    from bot.cli import fail
    from bot.operators import OperatorError

    try:
        yield
    except OperatorError as exc:
        fail(str(exc))


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --- plain-text rendering -------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    out: list[str] = []
    used = 0
    for char in text:
        w = _width(char)
        if used + w > width:
            return "".join(out).rstrip() + "…"
        out.append(char)
        used += w
    return "".join(out)


def _feedback_mark(value: str | None) -> str:
    return {"up": "👍", "down": "👎"}.get(value or "", "")


def _table(cases: list[dict[str, Any]]) -> str:
    header = ["id", "created (UTC)", "channel", "verdict", "conf", "label", "fb", "text"]
    rows = [
        [
            str(c["id"]),
            (c["created_at"] or "")[:16].replace("T", " "),
            c["channel"],
            c["verdict"] + (" (throttled)" if c["throttled"] else ""),
            "" if c["confidence"] is None else f"{c['confidence']:.2f}",
            c["label"] or "",
            _feedback_mark(c["feedback"]),
            _clip(c["text"], 48),
        ]
        for c in cases
    ]
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(r[:-1])]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(lines)


def _show_text(row: dict[str, Any], case: dict[str, Any]) -> str:
    from bot.knowledge.models import VERDICT_LABELS_ZH

    conf = "—" if case["confidence"] is None else f"{case['confidence']:.3f}"
    lines = [
        f"case #{case['id']} · {case['created_at']} · {case['channel']} · {case['kind']}"
        + (" · throttled (not analysed)" if case["throttled"] else ""),
        f"verdict:    {case['verdict']} ({VERDICT_LABELS_ZH.get(case['verdict'], '?')}), confidence {conf}",
        f"label:      {case['label'] or '— (unreviewed)'}"
        + (f", topic {row['label_topic']}" if row.get("label_topic") else "")
        + (f", reviewed {row['reviewed_at']}" if row.get("reviewed_at") else ""),
        f"note:       {case['note'] or '—'}",
        f"feedback:   {_feedback_mark(case['feedback']) or '—'}",
        f"kb_version: {case['kb_version'] or '—'}",
    ]
    if row.get("promoted_at"):
        lines.append(f"promoted:   {row['promoted_at']} to {row['promoted_topic']}")
    lines += ["", "text (redacted):", *(f"  {line}".rstrip() for line in case["text"].splitlines())]
    lines += ["", "signals:"]
    lines += [f"  · {s['id']} [{s['verdict']}] {s['label']}: “{s['evidence']}”" for s in case["signals"]]
    lines += ["  —"] if not case["signals"] else []
    lines += ["", "topics:"]
    lines += [f"  · {t['id']} ({t['score']:.2f}) {t['title']}" for t in case["topics"]]
    lines += ["  — (unmatched)"] if not case["topics"] and not case["throttled"] else []
    if row.get("reply"):
        lines += ["", "reply:", *(f"  {line}".rstrip() for line in row["reply"].splitlines())]
    return "\n".join(lines)


def _stats_text(stats: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "—"

    fb, ms = stats["feedback"], stats["analysis_ms"]
    lines = [
        f"cases:          {stats['cases']} (analysed {stats['analysed']}, throttled {stats['throttled']})"
        + (f" since {stats['since']}" if stats["since"] else ""),
        f"per verdict:    {counts(stats['per_verdict'])}",
        f"per platform:   {counts(stats['per_platform'])}",
        f"feedback:       👍 {fb['up']} 👎 {fb['down']} (helpful {pct(fb['helpful_ratio'])})",
        f"unmatched rate: {pct(stats['unmatched_rate'])}",
        f"labelled:       {stats['labelled']} (agreeing with the bot {pct(stats['label_agreement'])})",
        f"analysis ms:    p50 {ms['p50'] if ms['p50'] is not None else '—'}, "
        f"p99 {ms['p99'] if ms['p99'] is not None else '—'}",
        "per day:",
        *(f"  {day}  {n}" for day, n in stats["per_day"].items()),
    ]
    return "\n".join(lines)


# --- the commands -------------------------------------------------------------------------------------

kb_dir_option = click.option(
    "--kb-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Knowledge directory (default: {DEFAULT_DIR}).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN's case objects).")
since_option = click.option(
    "--since", type=DURATION, default=None, help="Only cases from this long ago on (7d, 12h, 30m)."
)


@click.group()
def cases() -> None:
    """Review logged cases: list, label, queue, stats, export, purge, backup, promote."""


@cases.command("list")
@click.option("--verdict", help="Only this verdict (scam, illegal_collection, pressure, ...).")
@click.option("--unreviewed", is_flag=True, help="Only cases without an operator's label.")
@click.option("--low-confidence", is_flag=True, help="Only cases below LOW_CONFIDENCE.")
@click.option("--unmatched", is_flag=True, help="Only cases that matched no knowledge topic.")
@since_option
@click.option("--search", help="Words that must all occur in the (redacted) text, e.g. 催收.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def list_(
    verdict: str | None,
    unreviewed: bool,
    low_confidence: bool,
    unmatched: bool,
    since: dt.timedelta | None,
    search: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Cases, newest first: a table, or a JSON array of case objects."""
    from bot.store.queries import CaseFilter

    ops = _open()
    with _refusals():
        found = ops.list_cases(
            CaseFilter(
                verdict=verdict,
                unreviewed=unreviewed,
                below_confidence=ops.low_confidence if low_confidence else None,
                unmatched=unmatched,
                since=_since(since),
                search=search,
                limit=limit,
            )
        )
    if as_json:
        click.echo(_dump(found))
    elif found:
        click.echo(_table(found))
    else:
        click.echo("no cases", err=True)


@cases.command()
@click.argument("case_id", metavar="ID", type=int)
@json_option
def show(case_id: int, as_json: bool) -> None:
    """One case: redacted text, verdict, evidence, topics, reply, feedback, label and note.

    --json prints the case object with three more keys: reply, label_topic, promoted_topic.
    """
    from bot.store import case_json

    ops = _open()
    with _refusals():
        row = ops.row(case_id)
    case = case_json(row)
    if as_json:
        extra = {k: row.get(k) for k in ("reply", "label_topic", "promoted_topic")}
        click.echo(_dump(case | extra))
    else:
        click.echo(_show_text(row, case))


@cases.command()
@click.argument("case_id", metavar="ID", type=int)
@click.argument("verdict")
@click.option("--topic", help="The knowledge topic id that should answer it.")
@click.option("--note", help="A note for other operators (personal data is redacted).")
@kb_dir_option
def label(case_id: int, verdict: str, topic: str | None, note: str | None, kb_dir: Path | None) -> None:
    """Set the right VERDICT of case ID (an unknown verdict or topic is refused)."""
    ops = _open(kb_dir)
    with _refusals():
        result = ops.label(case_id, verdict, topic, note)
    case = result.case
    click.echo(f"case #{case_id} labelled {case['label']} (the bot said {case['verdict']})")
    if result.notify:
        click.echo(
            f"{len(result.notify)} user(s) asked to hear about this case; a running bot will tell them",
            err=True,
        )


@cases.command()
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@json_option
def queue(limit: int, as_json: bool) -> None:
    """Unreviewed cases grouped by near-duplicate text: unsure and 👎 first, then most asked."""
    from bot.store import case_json

    ops = _open()
    groups = ops.queue()[:limit]
    if as_json:
        click.echo(
            _dump(
                [
                    {
                        "count": g.count,
                        "case_ids": g.case_ids,
                        "low_confidence": g.low_confidence,
                        "thumbs_down": g.thumbs_down,
                        "unmatched": g.unmatched,
                        "case": case_json(g.case),
                    }
                    for g in groups
                ]
            )
        )
        return
    if not groups:
        click.echo("the queue is empty", err=True)
    for g in groups:
        c = case_json(g.case)
        flags = g.flags({"low_confidence": "low-confidence", "thumbs_down": "👎", "unmatched": "unmatched"})
        conf = "—" if c["confidence"] is None else f"{c['confidence']:.2f}"
        others = (
            f" (+{', '.join(map(str, g.case_ids[1:6]))}{'…' if g.count > 6 else ''})" if g.count > 1 else ""
        )
        marks = f" [{', '.join(flags)}]" if flags else ""
        click.echo(f"×{g.count} #{c['id']}{others} {c['verdict']} {conf}{marks}")
        click.echo(f"     {_clip(c['text'], 100)}")


@cases.command()
@since_option
@json_option
def stats(since: dt.timedelta | None, as_json: bool) -> None:
    """Cases per day, verdict and platform; feedback ratio; unmatched rate; analysis time."""
    result = _open().stats(_since(since))
    click.echo(_dump(result) if as_json else _stats_text(result))


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return _dump(value)
    return "" if value is None else value


def _write_export(handle: IO[str], fmt: str, rows: Iterator[dict[str, Any]]) -> int:
    from bot.store import case_json
    from bot.store.cases import CASE_FIELDS

    n = 0
    writer = csv.writer(handle) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CASE_FIELDS)
    for row in rows:
        case = case_json(row)
        if writer is not None:
            writer.writerow([_csv_value(case[k]) for k in CASE_FIELDS])
        else:
            handle.write(_dump(case) + "\n")
        n += 1
    return n


@cases.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), required=True)
@since_option
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout."
)
def export(fmt: str, since: dt.timedelta | None, output: Path | None) -> None:
    """All cases (redacted, DESIGN's case objects) as CSV or JSON lines, oldest first."""
    from bot.cli import fail
    from bot.store.queries import iter_rows

    ops = _open()
    rows = iter_rows(ops.store.db, _since(since))
    if output is None:
        _write_export(sys.stdout, fmt, rows)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as handle:
            n = _write_export(handle, fmt, rows)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"exported {n} case(s) to {output}", err=True)


@cases.command()
@click.option("--older-than", type=DURATION, required=True, help="Age, e.g. 90d.")
def purge(older_than: dt.timedelta) -> None:
    """Delete cases older than the given age (retention does this by itself with RETENTION_DAYS)."""
    from bot.store.admin import cutoff

    before = cutoff(older_than)
    n = _open().purge_older_than(before)
    click.echo(f"purged {n} case(s) created before {before}")


@cases.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup(path: Path) -> None:
    """Copy the case database to PATH with SQLite's online backup (safe while the bot runs)."""
    ops = _open()
    with _refusals():
        ops.backup(path)
    click.echo(f"backed up {ops.store.count()} case(s) to {path}")


@cases.command()
@click.argument("case_id", metavar="ID", type=int)
@click.option("--topic", required=True, help="The topic id to add the text to as a phrasing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@kb_dir_option
def promote(case_id: int, topic: str, yes: bool, kb_dir: Path | None) -> None:
    """Add the case's redacted text to a topic's phrasings (questions or messages), then run kb check.

    The file is edited in place (comments and layout kept) and restored if the check fails. Promoted
    cases are left out of `eval --from-cases`.
    """
    from bot.cli import fail

    ops = _open(kb_dir)
    root = kb_dir or DEFAULT_DIR
    with _refusals():
        promotion = ops.prepare_promotion(case_id, topic, root)
    shown = (
        promotion.path.relative_to(Path.cwd())
        if promotion.path.is_relative_to(Path.cwd())
        else promotion.path
    )
    click.echo(f"case #{case_id} → {shown} ({promotion.field}):\n\n  {promotion.phrasing}\n")
    if not yes and not click.confirm("Add this redacted text as a phrasing?", default=False):
        fail("not promoted")
    with _refusals():
        kb = ops.promote(promotion)
    click.echo(f"promoted; kb check ok: {len(kb.topics)} topics, version {kb.version}")


def labelled_eval_rows() -> list[Any]:
    """``eval --from-cases``: labelled, unpromoted cases as eval rows (original text when it was stored)."""
    from bot.evaluate import Row
    from bot.store.queries import labelled_rows

    ops = _open()
    return [
        Row(
            str(row["id"]),
            row["raw_text"] or row["text"],
            (row["label"],),
            (row["label_topic"],) if row["label_topic"] else None,
        )
        for row in labelled_rows(ops.store.db)
    ]

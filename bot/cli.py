"""``smsguard``: the one command-line entry point. It builds settings, knowledge, store and service once and
hands them to the command; commands themselves stay small.

Exit codes: 0 success, 1 refused or invalid request (one line on stderr), 2 usage error.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import ValidationError

from bot import __version__
from bot.knowledge import DEFAULT_DIR, Knowledge, KnowledgeError, export_knowledge, load_knowledge

if TYPE_CHECKING:
    from bot.settings import Settings


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def build_settings() -> Settings:
    # Imported here, not at start-up: `check` and `eval` need no settings (pydantic-settings costs ~30 ms).
    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"invalid setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")


def build_knowledge(root: Path | None) -> Knowledge:
    try:
        return load_knowledge(root)
    except KnowledgeError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        fail(f"knowledge base invalid ({len(exc.problems)} problem(s))")


def build_analyzer(kb_dir: Path | None):
    from bot.core import Analyzer

    return Analyzer(build_knowledge(kb_dir))


def build_service(settings: Settings, kb_dir: Path | None, warm: bool = True):
    from bot.service import Service
    from bot.store import CaseStore

    analyzer = build_analyzer(kb_dir)
    if warm:
        analyzer.warm_up()
    try:
        store = CaseStore(settings.SMSGUARD_DB, settings.user_hash_key(), settings.STORE_RAW_TEXT)
    except OSError as exc:
        fail(f"cannot open the case database {settings.SMSGUARD_DB}: {exc.strerror or exc}")
    except sqlite3.Error as exc:  # not a database, corrupt, locked by another program
        fail(f"cannot use the case database {settings.SMSGUARD_DB}: {exc}")
    return Service(
        analyzer,
        store,
        user_rate_limit=settings.USER_RATE_LIMIT,
        raw_text_ttl_minutes=settings.RAW_TEXT_TTL_MINUTES,
    )


kb_dir_option = click.option(
    "--kb-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Knowledge directory (default: {DEFAULT_DIR}).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smsguard")
def main() -> None:
    """催收短信鉴别助手 Collection-SMS Guard: judge debt-collection SMS and answer questions."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@kb_dir_option
def chat(kb_dir: Path | None) -> None:
    """Console chat. Piped: one message per line, each reply followed by an empty line."""
    from bot.adapters.console import run_console

    settings = build_settings()
    service = build_service(settings, kb_dir)
    sys.exit(run_console(service, sys.stdin, sys.stdout, retention_days=settings.RETENTION_DAYS))


@main.command()
@kb_dir_option
@click.pass_context
def run(ctx: click.Context, kb_dir: Path | None) -> None:
    """Start the bot: Telegram when TELEGRAM_BOT_TOKEN is set, otherwise the console chat."""
    settings = build_settings()
    if settings.TELEGRAM_BOT_TOKEN is not None:
        telegram = main.get_command(ctx, "telegram")
        if telegram is None:
            fail(
                "TELEGRAM_BOT_TOKEN is set but this build has no Telegram channel yet; unset it for the console"
            )
        ctx.invoke(telegram, kb_dir=kb_dir)
        return
    ctx.invoke(chat, kb_dir=kb_dir)


@main.command()
@kb_dir_option
def telegram(kb_dir: Path | None) -> None:
    """Run the Telegram bot: long polling, or a webhook when TELEGRAM_WEBHOOK_URL is set. Stop with Ctrl-C."""
    from bot.adapters.telegram import TelegramStartError, check_settings, run_telegram

    settings = build_settings()
    try:
        check_settings(settings)  # token and webhook settings, before the slow start-up
        logging.getLogger("bot").setLevel(logging.INFO)  # one line per case; never the text or the token
        run_telegram(settings, build_service(settings, kb_dir))
    except TelegramStartError as exc:
        fail(str(exc))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free port)."
)
@kb_dir_option
def wechat(host: str, port: int, kb_dir: Path | None) -> None:
    """Serve /wechat for a WeChat Official Account (and /healthz). Stop with Ctrl-C."""
    from bot.adapters.wechat import WeChatStartError, check_settings, run_wechat

    settings = build_settings()
    try:
        config = check_settings(settings)  # token and key present and well-formed: before the slow part
        logging.getLogger("bot").setLevel(logging.INFO)  # one line per case; never the text or the token
        run_wechat(config, settings, build_service(settings, kb_dir), host, port)
    except WeChatStartError as exc:
        fail(str(exc))


def _check_one(analyzer: Any, text: str) -> dict[str, Any]:
    return analyzer.analyze(text).as_dict()


def _emit(obj: dict[str, Any]) -> None:
    # One flushed line per result, so a program feeding lines one at a time gets each answer at once;
    # plain writes, because click.echo also scans every line for colour codes.
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _check_jsonl(analyzer: Any) -> None:
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError("expected an object with a string 'text'")
        except ValueError as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            _emit({"error": f"line {number}: {msg}"})
            continue
        result = _check_one(analyzer, obj["text"])
        if "id" in obj:
            result = {"id": obj["id"], **result}
        _emit(result)


def _read_image(path: Path) -> str:
    """The text of a screenshot (exit 1 with one line when the OCR extra is missing or the file is no image)."""
    from bot.ocr import OcrImageError, OcrUnavailable, ScreenshotReader

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        text = ScreenshotReader().read(data).text
    except OcrUnavailable as exc:
        fail(str(exc))
    except OcrImageError as exc:
        fail(f"{path}: {exc}")
    if not text:
        click.echo(f"warning: no text found in {path}", err=True)
    return text


@main.command()
@click.argument("text", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--jsonl", is_flag=True, help='Read {"text", "id"?} lines from stdin, print one result per line.'
)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the SMS from a screenshot on this machine (needs the ocr extra); --json adds ocr_text.",
)
@kb_dir_option
def check(text: str | None, as_json: bool, jsonl: bool, image: Path | None, kb_dir: Path | None) -> None:
    """Print the reply a user would see for TEXT (cases are not logged)."""
    if jsonl and text is not None:
        raise click.UsageError("give either TEXT or --jsonl, not both")
    if image is not None and (text is not None or jsonl):
        raise click.UsageError("give either TEXT, --jsonl or --image")
    if not jsonl and text is None and image is None:
        raise click.UsageError("missing TEXT (use '' for an empty message, or --jsonl to read stdin)")
    ocr_text = _read_image(image) if image is not None else None
    if ocr_text is not None:
        text = ocr_text
    analyzer = build_analyzer(kb_dir)
    if jsonl:
        _check_jsonl(analyzer)
        return
    assert text is not None
    analysis = analyzer.analyze(text)
    if as_json:
        result = analysis.as_dict()
        if ocr_text is not None:
            result["ocr_text"] = ocr_text
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        if ocr_text is not None:
            from bot.ocr import format_read_text

            click.echo(format_read_text(ocr_text) + "\n")
        click.echo(analysis.reply.as_text())


@main.group()
def kb() -> None:
    """Validate and export the knowledge base."""


@kb.command("check")
@kb_dir_option
def kb_check(kb_dir: Path | None) -> None:
    """Validate knowledge/ (exit 1 on errors; warnings for passed valid_until dates)."""
    knowledge = build_knowledge(kb_dir)
    for warning in knowledge.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"ok: {len(knowledge.topics)} topics, {len(knowledge.signals)} signals, "
        f"{len(knowledge.platforms)} platforms, {len(knowledge.sources)} sources, "
        f"{sum(len(g.patterns) for g in knowledge.safety)} safety patterns; version {knowledge.version}"
    )


@kb.command("export")
@click.option("--json", "as_json", is_flag=True, required=True, help="Print the knowledge base as JSON.")
@kb_dir_option
def kb_export(as_json: bool, kb_dir: Path | None) -> None:
    """Print the knowledge base as one JSON document."""
    click.echo(json.dumps(export_knowledge(build_knowledge(kb_dir)), ensure_ascii=False, indent=1))


@main.command("eval")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--from-cases", is_flag=True, help="Score the operators' labelled cases (not promoted ones).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@kb_dir_option
def eval_(file: Path | None, from_cases: bool, as_json: bool, kb_dir: Path | None) -> None:
    """Score a labelled JSONL file of messages ("accept") and/or questions ("topics")."""
    from bot.evaluate import EvalFileError, evaluate, format_report, parse_rows

    if (file is None) == (not from_cases):
        raise click.UsageError("give either FILE or --from-cases")
    if file is None:
        from bot.commands.cases import labelled_eval_rows

        rows = labelled_eval_rows()
        if not rows:
            fail("no labelled cases to score (label some with `smsguard cases label`)")
    else:
        try:
            rows = parse_rows(file.read_text(encoding="utf-8").splitlines())
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
        except (EvalFileError, UnicodeDecodeError) as exc:
            fail(f"{file}: {exc}")
    analyzer = build_analyzer(kb_dir)
    analyzer.warm_up()  # measure per-message latency, not the one-off dictionary load
    report = evaluate(rows, analyzer.analyze)
    if as_json:
        report.pop("misses")
        click.echo(json.dumps(report, ensure_ascii=False))
    else:
        click.echo(format_report(report))


def _add_commands() -> None:
    from bot.commands.cases import cases
    from bot.commands.dashboard import dashboard

    main.add_command(cases)
    main.add_command(dashboard)


_add_commands()


@main.command()
@click.argument("text")
@click.option(
    "--channel",
    type=click.Choice(["lender", "12378", "110", "96110", "12321"]),
    default=None,
    help="Only the draft for this channel.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON array of {channel, to, subject, body, sources}."
)
@kb_dir_option
def complaint(text: str, channel: str | None, as_json: bool, kb_dir: Path | None) -> None:
    """Draft complaints and reports for TEXT (nothing is logged or stored)."""
    from bot.core.complaint import Message, draft_complaints, fitting_channels

    analyzer = build_analyzer(kb_dir)
    message = Message(text, analyzer.analyze(text))
    drafts = draft_complaints(analyzer.kb, [message], channel)
    if not drafts:
        fitting = ", ".join(c.id for c in fitting_channels(analyzer.kb, [message])) or "none"
        fail(
            f"no {channel or 'complaint'} draft fits a '{message.analysis.verdict}' message (fitting: {fitting})"
        )
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in drafts], ensure_ascii=False))
        return
    for draft in drafts:
        click.echo(f"==== {draft.name}（{draft.channel}）====\n主题：{draft.subject}\n\n{draft.body}\n")

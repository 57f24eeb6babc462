"""Reliability, privacy and abuse end to end (issue 8): the real processes, their files read as bytes.

* Privacy: ``python -m bot telegram`` against the fake Bot API on 127.0.0.1 and ``python -m bot chat``
  piped, fed realistic messages carrying ID-card numbers (with X), 16–19-digit card numbers (spaced,
  full-width), mobile numbers and addressees' names. The database, its -wal and -shm files and the captured
  stderr hold none of them, in any form; with ``STORE_RAW_TEXT=true`` the database must hold them (the log
  still not). The token never reaches the log.
* ``/forget`` leaves no case of that user in the file (``secure_delete``; the WAL checkpointed first).
* Operators' ``/review`` and ``/stats`` are refused to users not in ``OPERATOR_IDS``.
* ``kill -9`` while updates are in flight, then a restart on the same database: ``integrity_check`` ok, no
  half-written case, every message logged once, and answered twice or never only if it was in flight.
* A Bot API that hangs longer than the read timeout, then fails: every answer arrives once, polling resumes.

The load benchmark with the same checks at scale is ``benchmarks/load_telegram.py``.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.telegram import OPERATOR_ONLY
from bot.store import keyed_hash
from tests.fake_bot_api import BOT_USERNAME, TOKEN, FakeBotAPI, buttons, callback, message
from tests.helpers import child_env, free_port, post_update, wait_listening

SECRET = "reliability-user-hash-secret-0123456789"
USER, FORGETFUL, NOSY, OPERATOR = 7001, 7002, 7003, 7004
GROUP = -100555

# Realistic messages, each with personal data DESIGN says must be redacted before anything is written.
PERSONAL_MESSAGES = [
    "尊敬的欧阳明辉先生，您名下身份证11010519900307123X的借款已逾期95天，请今日联系专员13912345678处理，否则我司将上门。",
    "【XX银行】李建国您好，您尾号的信用卡6222 0212 3456 7890 123已逾期，再不还款就通知你家人和单位。",
    "王秀英女士：您在XX消费金融的借款逾期，还款卡号４５１２３４５６７８９０１２３４已冻结，请将欠款转入安全账户6217000010012345678解冻。",
    "赵志强您好，你涉嫌恶意逾期已被立案，请联系经办人 158 0000 1111，身份证号440301198805056789。",
    "催收打我老婆电话+86 186-9876-5432，说再不还就爆通讯录，这合法吗？",
]
FORWARDED = "尊敬的钱多多女士：您的身份证320102199212120011已列入失信名单，请联系17712345678办理解除。"
IN_GROUP = f"@{BOT_USERNAME} 孙悦您好，您的银行卡6228480402564890018欠款已移交律所，请回电13600001234"
# Every value as written, and as normalization would spell it (ASCII digits, no spaces, lower-case x).
SECRETS = [
    "欧阳明辉", "李建国", "王秀英", "赵志强", "钱多多", "孙悦",
    "11010519900307123X", "11010519900307123x", "440301198805056789", "320102199212120011",
    "6222 0212 3456 7890 123", "6222021234567890123", "４５１２３４５６７８９０１２３４", "4512345678901234",
    "6217000010012345678", "6228480402564890018",
    "13912345678", "158 0000 1111", "15800001111", "186-9876-5432", "18698765432", "17712345678", "13600001234",
]  # fmt: skip
# The sender's Telegram profile and a forward's original sender: never stored either.
PROFILE = {"first_name": "钱小红", "last_name": "周", "username": "qianxh88"}
NOT_STORED = ["钱小红", "qianxh88", "周扒皮催收"]
MARKER = "独一无二的标记乙丙丁戊"


def forms(value: str) -> list[bytes]:
    """The bytes a value could take in a file: UTF-8, and JSON's \\u escapes (ensure_ascii)."""
    return [value.encode(), json.dumps(value)[1:-1].encode()]


def leaks(data: bytes, values: list[str]) -> list[str]:
    return [v for v in values if any(f in data for f in forms(v))]


def read_all(directory: Path) -> bytes:
    """Every file in the directory (the database, -wal, -shm, logs, anything else), as bytes."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def db_bytes(directory: Path, name: str = "cases.db") -> bytes:
    return b"".join(p.read_bytes() for p in directory.glob(f"{name}*") if p.is_file())


def base_env(db: Path, **extra: str) -> dict[str, str]:
    return child_env(SMSGUARD_DB=str(db), SMSGUARD_SECRET=SECRET, **extra)


class Bot:
    """``python -m bot telegram`` on ``workdir/cases.db`` (cwd ``workdir``: no developer's .env)."""

    def __init__(self, fake: FakeBotAPI, base_url: str, workdir: Path, **env: str):
        self.fake = fake
        self.workdir = workdir
        self.db = workdir / "cases.db"
        self.stderr_path = workdir / "stderr.log"
        self.env = base_env(
            self.db,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=base_url,
            TELEGRAM_BASE_FILE_URL=fake.file_url,
            TELEGRAM_RATE_LIMIT="500",
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Bot:
        with self.stderr_path.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "telegram"],
                env=self.env,
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._since = len(self.fake.calls)
        return self

    def wait_polling(self, timeout: float = 60) -> None:
        assert self.proc is not None
        self.fake.wait_for(
            lambda: (
                self.proc.poll() is not None  # type: ignore[union-attr]
                or any(c.method == "getUpdates" for c in self.fake.calls[self._since :])
            ),
            timeout,
            "the bot to poll",
        )
        assert self.proc.poll() is None, self.stderr.decode(errors="replace")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


def serve(fake: FakeBotAPI) -> str:
    """Start ``fake`` on 127.0.0.1; returns its base URL."""
    base_url = fake.start()
    assert fake.server is not None
    fake.server.handle_error = lambda *a: None  # type: ignore[method-assign]  # resets from a killed bot
    return base_url


def private(user_id: int, text: str) -> dict[str, Any]:
    body = message(user_id, user_id, text)
    body["message"]["from"] |= PROFILE
    return body


def wait_sends(fake: FakeBotAPI, chat_id: int, n: int, timeout: float = 30) -> list[dict[str, Any]]:
    return fake.wait_for(
        lambda: len(fake.sent(chat_id)) >= n and fake.sent(chat_id), timeout, f"{n} to {chat_id}"
    )


# --- privacy, /forget and operators: one bot per STORE_RAW_TEXT setting, both at once --------------------


@dataclass
class PrivacyRun:
    raw: bool
    bot: Bot
    fake: FakeBotAPI
    console_dir: Path
    console: subprocess.Popen[bytes]
    before_forget: bytes = b""  # every file of the bot's directory while it runs (WAL not checkpointed)
    after_forget: bytes = b""  # the database files after /forget and a WAL checkpoint
    stopped: bytes = b""  # every file after a clean stop
    exit_code: int | None = None
    console_out: bytes = b""
    console_err: bytes = b""


def _start_run(tmp: Path, raw: bool) -> PrivacyRun:
    flag = "true" if raw else "false"
    fake = FakeBotAPI()
    bot = Bot(fake, serve(fake), tmp, STORE_RAW_TEXT=flag, OPERATOR_IDS=str(OPERATOR)).start()
    console_dir = tmp / "console"
    console_dir.mkdir()
    console = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat"],
        env=base_env(console_dir / "cases.db", STORE_RAW_TEXT=flag),
        cwd=console_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert console.stdin is not None
    console.stdin.write(("\n".join([*PERSONAL_MESSAGES, FORWARDED]) + "\n").encode())
    console.stdin.close()
    console.stdin = None  # written: communicate() only reads
    return PrivacyRun(raw, bot, fake, console_dir, console)


def _drive(run: PrivacyRun) -> None:
    fake, bot = run.fake, run.bot
    bot.wait_polling()
    for text in PERSONAL_MESSAGES:
        fake.push(private(USER, text))
    forwarded = private(USER, FORWARDED)
    forwarded["message"]["forward_origin"] = {
        "type": "hidden_user",
        "sender_user_name": "周扒皮催收",
        "date": 1_790_000_000,
    }
    fake.push(forwarded)
    group = message(GROUP, USER, IN_GROUP)
    group["message"]["from"] |= PROFILE
    fake.push(group)
    wait_sends(fake, USER, 6)
    wait_sends(fake, GROUP, 1)
    fake.push(private(USER, "这个号码是真的吗"))  # a follow-up quoting the numbers back (in memory)
    wait_sends(fake, USER, 7)
    fake.push(private(USER, "/evidence"))  # the raw messages as a record and a file: sent, never written
    record = fake.wait_for(
        lambda: next((m for m in fake.sent(USER) if "cf:e" in buttons(m)), None), 30, "the evidence record"
    )
    fake.push(callback(USER, USER, "cf:e", record))
    fake.wait_for(lambda: fake.calls_of("sendDocument"), 30, "the evidence file")
    # Operators' commands from someone else, then from the operator.
    fake.push(private(NOSY, "/review"))
    fake.push(private(NOSY, "/stats"))
    fake.push(private(OPERATOR, "/stats"))
    wait_sends(fake, NOSY, 2)
    wait_sends(fake, OPERATOR, 1)
    run.before_forget = read_all(bot.workdir)

    # /forget: two cases of one user, then their deletion.
    fake.push(private(FORGETFUL, f"{MARKER}：再不还钱就爆你通讯录"))
    fake.push(private(FORGETFUL, f"{MARKER}：明天上门找你"))
    wait_sends(fake, FORGETFUL, 2)
    fake.push(private(FORGETFUL, "/forget"))
    wait_sends(fake, FORGETFUL, 3)
    conn = sqlite3.connect(bot.db, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    run.after_forget = db_bytes(bot.workdir)
    run.exit_code = bot.stop()
    run.stopped = read_all(bot.workdir)
    run.console_out, run.console_err = run.console.communicate(timeout=120)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, PrivacyRun]]:
    started = {raw: _start_run(tmp_path_factory.mktemp(f"privacy-raw-{raw}"), raw) for raw in (False, True)}
    try:
        for run in started.values():
            _drive(run)
        yield started
    finally:
        for run in started.values():
            if run.bot.proc is not None and run.bot.proc.poll() is None:
                run.bot.stop()
            if run.console.poll() is None:
                run.console.kill()
                run.console.communicate()
            run.fake.stop()


def test_no_personal_data_reaches_the_database_files_or_the_log(runs):
    run = runs[False]
    assert run.exit_code == 0, run.bot.stderr.decode(errors="replace")
    assert run.console.returncode == 0, run.console_err.decode(errors="replace")
    telegram_rows = run.bot.rows("SELECT count(*), sum(text LIKE '%[身份证号]%') FROM cases")[0]
    assert telegram_rows[0] >= 7 and telegram_rows[1] >= 2  # the messages were logged, redacted
    console_files = read_all(run.console_dir)
    assert "[银行卡号]".encode() in console_files
    for name, data in {
        "telegram, running (with its -wal)": run.before_forget,
        "telegram, stopped": run.stopped,
        "telegram log": run.bot.stderr,
        "console database files": console_files,
        "console stderr": run.console_err,
    }.items():
        assert leaks(data, SECRETS + NOT_STORED) == [], name
    assert run.bot.rows("SELECT count(*) FROM cases WHERE raw_text IS NOT NULL") == [(0,)]
    assert len(run.console_out.decode().strip().split("\n\n")) == len(PERSONAL_MESSAGES) + 1  # all answered


def test_store_raw_text_keeps_the_originals_in_the_database_but_not_in_the_log(runs):
    run = runs[True]
    assert run.exit_code == 0 and run.console.returncode == 0
    originals = [
        "欧阳明辉", "11010519900307123X", "6222 0212 3456 7890 123", "４５１２３４５６７８９０１２３４",
        "158 0000 1111", "186-9876-5432", "钱多多", "6228480402564890018",
    ]  # fmt: skip
    assert leaks(db_bytes(run.bot.workdir), originals) == originals
    assert leaks(db_bytes(run.console_dir), originals[:-1]) == originals[:-1]
    assert run.bot.rows("SELECT count(*) FROM cases WHERE raw_text LIKE '%13912345678%'") == [(1,)]
    assert leaks(run.bot.stderr + run.console_err, SECRETS) == []
    assert leaks(run.stopped, NOT_STORED) == []  # names of Telegram profiles: never, in either mode


def test_the_token_never_reaches_a_log_line_or_a_file(runs):
    for run in runs.values():
        stderr = run.bot.stderr
        assert b"channel=telegram" in stderr  # the log has its one line per case
        assert TOKEN.encode() not in stderr and TOKEN.split(":")[1].encode() not in stderr
        assert TOKEN.split(":")[1].encode() not in run.stopped
        assert b"Traceback" not in stderr


def test_forget_leaves_no_case_of_that_user_in_the_file(runs):
    run = runs[False]
    [reply] = [m["text"] for m in run.fake.sent(FORGETFUL) if "已删除" in m["text"]]
    assert "已删除你的 2 条记录" in reply
    user_hash = keyed_hash(SECRET.encode(), str(FORGETFUL))
    for data in (run.after_forget, run.stopped):
        assert MARKER.encode() not in data
        assert user_hash.encode() not in data
    assert run.bot.rows("SELECT count(*) FROM cases WHERE user_hash = ?", (user_hash,)) == [(0,)]
    assert run.bot.rows("SELECT count(*) FROM cases_fts WHERE cases_fts MATCH ?", (f'"{MARKER[:4]}"',)) == [
        (0,)
    ]
    others = keyed_hash(SECRET.encode(), str(USER))
    assert run.bot.rows("SELECT count(*) FROM cases WHERE user_hash = ?", (others,))[0][0] >= 7


def test_operator_commands_are_refused_to_everyone_not_in_operator_ids(runs):
    for run in runs.values():
        refused = [m["text"] for m in run.fake.sent(NOSY)]
        assert refused == [OPERATOR_ONLY, OPERATOR_ONLY]
        [stats] = run.fake.sent(OPERATOR)
        assert "案例统计" in stats["text"]
        assert not any("[身份证号]" in text or "欧阳" in text for text in refused)


# --- kill -9 mid-stream ---------------------------------------------------------------------------------


class SlowSends(FakeBotAPI):
    """Every sendMessage takes a while (outside the fake's lock), so updates are in flight at the kill."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay
        self.pages: list[tuple[float, list[int]]] = []  # (answered at, update ids) of getUpdates
        self.polls: list[tuple[float, int | None]] = []  # (asked at, offset)

    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "sendMessage":
            time.sleep(self.delay)
        return super().answer(token, method, params)

    def get_updates(self, token: str, params: dict[str, Any], hold: bool) -> tuple[int, dict[str, Any]]:
        asked = time.monotonic()
        status, body = super().get_updates(token, params, hold)
        with self._cond:
            self.polls.append((asked, params.get("offset")))
            if status == 200:
                self.pages.append((time.monotonic(), [u["update_id"] for u in body["result"]]))
        return status, body


def test_kill_9_mid_stream_then_a_restart_loses_nothing_and_answers_only_in_flight_twice(tmp_path):
    fake = SlowSends(delay=0.15)
    bot = Bot(fake, serve(fake), tmp_path).start()
    try:
        bot.wait_polling()
        chats = [8000 + i for i in range(20)]
        pushed = []  # (update_id, chat, message_id)
        for round_ in range(2):
            for chat in chats:
                body = message(
                    chat,
                    chat,
                    f"第{round_ + 1}条：【XX金融】您的借款已逾期{chat % 90 + 3}天，再不还钱就爆你通讯录。",
                )
                pushed.append((fake.push(body), chat, body["message"]["message_id"]))
        fake.wait_for(lambda: len(fake.calls_of("sendMessage")) >= 5, 30, "the first answers")
        killed_at = time.monotonic()
        bot.kill9()
        answered_before = len(fake.calls_of("sendMessage"))
        bot.start().wait_polling()
        keys = {keyed_hash(SECRET.encode(), f"telegram:{chat}:{mid}"): uid for uid, chat, mid in pushed}
        fake.wait_for(
            lambda: (
                bot.rows("SELECT count(*) FROM cases")[0][0] >= len(pushed) and not fake.take_updates(None)
            ),
            60,
            "every message logged",
        )
        time.sleep(1.0)  # anything answered twice would come now
        assert bot.stop() == 0
    finally:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.kill9()
        fake.stop()

    # The database the next start used is sound, and no case is half written.
    assert bot.rows("PRAGMA integrity_check") == [("ok",)]
    bot.rows("INSERT INTO cases_fts (cases_fts) VALUES ('integrity-check')")  # raises if the index is off
    assert bot.rows(
        "SELECT count(*) FROM cases WHERE signals IS NULL OR reply IS NULL OR kb_version IS NULL OR user_hash IS NULL"
    ) == [(0,)]
    # Every message logged exactly once.
    logged = Counter(k for (k,) in bot.rows("SELECT message_key FROM cases"))
    assert {k: logged[k] for k in keys} == dict.fromkeys(keys, 1)

    # In flight at the kill: handed to the killed process, not confirmed by its offsets.
    delivered = {u for at, ids in fake.pages if at < killed_at for u in ids}
    confirmed = max((o for at, o in fake.polls if at < killed_at and o is not None), default=0)
    in_flight = {u for u in delivered if u >= confirmed}
    assert in_flight, "the kill came when nothing was in flight"
    assert answered_before < len(pushed)
    case_update = {
        case_id: keys[key] for case_id, key in bot.rows("SELECT id, message_key FROM cases") if key in keys
    }
    # An answer carries its case's 👍/👎 buttons; an answer to a message already logged (a duplicate)
    # carries none, but repeats the text of the first answer.
    answers: Counter[int] = Counter()
    first_answer: dict[tuple[int, str], int] = {}
    unmatched = []
    for sent in sorted(fake.sent(), key=lambda m: "fb:" not in str(m.get("reply_markup"))):
        fb = [b for b in buttons(sent) if b.startswith("fb:")]
        update_id = case_update.get(int(fb[0].split(":")[1])) if fb else None
        update_id = update_id or first_answer.get((sent["chat_id"], sent["text"]))
        if update_id is None:
            unmatched.append(sent["text"][:40])
            continue
        answers[update_id] += 1
        first_answer.setdefault((sent["chat_id"], sent["text"]), update_id)
    assert not unmatched
    twice = {u for u, n in answers.items() if n > 1}
    never = {uid for uid, _, _ in pushed} - set(answers)
    assert twice <= in_flight and never <= in_flight, (twice, never, in_flight)
    assert not twice  # a re-delivered message whose case is logged is not answered again
    redelivered = {u for at, ids in fake.pages if at > killed_at for u in ids} & delivered
    assert redelivered, "Telegram re-delivered nothing: the killed bot had confirmed updates it never handled"
    stderr = bot.stderr
    assert TOKEN.encode() not in stderr and b"Traceback" not in stderr


# --- kill -9 with the webhook --------------------------------------------------------------------------


def test_webhook_answers_only_handled_updates_so_a_kill_9_loses_none(tmp_path):
    """Telegram re-sends a webhook update until it gets a 2xx. A 200 given only after handling means a
    kill -9 can cost an update its answer but never lose it: what got no 200 comes again and is handled."""
    fake = SlowSends(delay=0.3)
    port = free_port()
    hook = {
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/tg/hook",
        "TELEGRAM_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
    }
    bot = Bot(fake, serve(fake), tmp_path, **hook).start()
    bodies = [
        {"update_id": i + 1}
        | message(9100 + i, 9100 + i, f"【XX金融】第{i + 1}位客户：您已逾期{i + 3}天，再不还款就爆你通讯录。")
        for i in range(12)
    ]
    statuses: dict[int, int | None] = {}

    def deliver(body: dict[str, Any]) -> None:
        statuses[body["update_id"]] = post_update(port, body, None)

    try:
        assert bot.proc is not None
        wait_listening(port, bot.proc)
        posts = [threading.Thread(target=deliver, args=(body,)) for body in bodies]
        for post in posts:
            post.start()
        fake.wait_for(lambda: len(fake.calls_of("sendMessage")) >= 3, 30, "the first answers")
        bot.kill9()
        for post in posts:
            post.join(30)
        acknowledged = {u for u, status in statuses.items() if status == 200}
        assert acknowledged and len(acknowledged) < len(bodies), statuses  # the kill came mid-stream
        keys = {
            keyed_hash(
                SECRET.encode(), f"telegram:{b['message']['chat']['id']}:{b['message']['message_id']}"
            ): b
            for b in bodies
        }
        logged_at_kill = {k for (k,) in bot.rows("SELECT message_key FROM cases")}
        assert {keys[k]["update_id"] for k in logged_at_kill if k in keys} >= acknowledged

        bot.start()
        wait_listening(port, bot.proc)
        for body in bodies:  # Telegram's re-delivery of everything that got no 200
            if body["update_id"] not in acknowledged:
                assert post_update(port, body, None) == 200
        assert bot.stop() == 0
    finally:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.kill9()
        fake.stop()

    logged = Counter(k for (k,) in bot.rows("SELECT message_key FROM cases"))
    assert {k: logged[k] for k in keys} == dict.fromkeys(keys, 1)  # every message logged exactly once
    answered = {m["chat_id"] for m in fake.sent()}
    assert answered == {b["message"]["chat"]["id"] for b in bodies}  # and every chat answered
    assert bot.rows("PRAGMA integrity_check") == [("ok",)]
    stderr = bot.stderr
    assert TOKEN.encode() not in stderr and b"Traceback" not in stderr


def test_webhook_stop_finishes_the_updates_in_hand_and_answers_them(tmp_path):
    fake = SlowSends(delay=0.4)
    port = free_port()
    bot = Bot(
        fake,
        serve(fake),
        tmp_path,
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/tg/hook",
        TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
    ).start()
    bodies = [
        {"update_id": i + 1} | message(9200 + i, 9200 + i, f"第{i + 1}条：你再不还钱就等着坐牢")
        for i in range(4)
    ]
    statuses: dict[int, int | None] = {}
    try:
        assert bot.proc is not None
        wait_listening(port, bot.proc)
        posts = [
            threading.Thread(target=lambda b=b: statuses.update({b["update_id"]: post_update(port, b, None)}))
            for b in bodies
        ]
        for post in posts:
            post.start()
        fake.wait_for(lambda: bot.db.exists() and bot.rows("SELECT count(*) FROM cases")[0][0], 30, "a case")
        bot.proc.send_signal(signal.SIGTERM)
        for post in posts:
            post.join(30)
        assert bot.proc.wait(30) == 0
    finally:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.kill9()
        fake.stop()
    assert statuses == dict.fromkeys(range(1, 5), 200)
    assert len(fake.sent()) == 4 and bot.rows("SELECT count(*) FROM cases") == [(4,)]


# --- a Bot API that hangs for a while --------------------------------------------------------------------


class Hanging(FakeBotAPI):
    """Until ``hang_until``, every call hangs (longer than the bot's 5 s read timeout), then fails with 504
    without having done anything: a Bot API that stops answering for a while."""

    def __init__(self) -> None:
        super().__init__()
        self.hang_until = 0.0
        self.hung: Counter[str] = Counter()

    def _hang(self, method: str) -> tuple[int, dict[str, Any]] | None:
        left = self.hang_until - time.monotonic()
        if left <= 0:
            return None
        time.sleep(left)
        self.hung[method] += 1
        return 504, {"ok": False, "error_code": 504, "description": "Gateway Timeout"}

    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._hang(method) or super().answer(token, method, params)

    def get_updates(self, token: str, params: dict[str, Any], hold: bool) -> tuple[int, dict[str, Any]]:
        return self._hang("getUpdates") or super().get_updates(token, params, hold)


def test_a_bot_api_that_hangs_for_a_while_is_waited_out(tmp_path):
    fake = Hanging()
    bot = Bot(fake, serve(fake), tmp_path).start()
    chats = [9001, 9002, 9003]
    try:
        bot.wait_polling()
        fake.hang_until = time.monotonic() + 6.5
        for chat in chats:
            fake.push(
                message(chat, chat, "【XX金融】您的借款已逾期20天，再不还钱就爆你通讯录，通知你家人和单位。")
            )
        for chat in chats:
            wait_sends(fake, chat, 1, timeout=40)
        assert fake.hung["sendMessage"] + fake.hung["getUpdates"] >= 1  # the bot did run into the hang
        fake.push(message(9004, 9004, "上门催收合法吗"))  # and it still polls
        wait_sends(fake, 9004, 1, timeout=20)
        time.sleep(0.5)
        assert [len(fake.sent(chat)) for chat in [*chats, 9004]] == [1, 1, 1, 1]
        assert bot.stop() == 0
    finally:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.kill9()
        fake.stop()
    assert bot.rows("SELECT count(*) FROM cases") == [(4,)]
    stderr = bot.stderr
    assert b"retrying" in stderr and b"Traceback" not in stderr
    assert TOKEN.split(":")[1].encode() not in stderr

"""Load and fault benchmark of the Telegram channel: the real ``python -m bot telegram`` process against the
tests' fake Bot API (``tests/fake_bot_api.py``) on 127.0.0.1. Not part of ``make test``.

    .venv/bin/python benchmarks/load_telegram.py [--rate 60] [--users 2000] [--json FILE]

Phases, one bot process and one case database throughout (a second process after the kill):

1. **Steady load**: ``--users`` simulated users (one private chat each) send ``--per-user`` messages each
   (synthetic SMS from ``benchmarks/synth.py``, every fourth a question from ``tests/data/questions.jsonl``),
   arriving as a Poisson stream of ``--rate`` messages per second, each user's messages in order. Halfway
   through, one extra user floods ``--flood`` messages at once. ``USER_RATE_LIMIT`` stays at its default
   (10 a minute), ``TELEGRAM_RATE_LIMIT`` is raised for the fake server.
   Checked: every message answered once (``sendMessage`` calls mapped to messages through the 👍 button's
   case id and the case's ``message_key``, a keyed hash of channel, chat and message id) and logged once (case
   rows); the flooder gets ten answers, one notice, and the rest are logged as throttled, not answered.
   Reported: latency from ``push`` to the answer's ``sendMessage`` (p50/p99), throughput, and the other users'
   latency while the flood was being handled against the rest of the run.
2. **Capacity**: ``--burst`` more messages from fresh users pushed at once; throughput while draining them.
3. **Faults**: a stream at ``--fault-rate`` (above capacity, so a backlog is in flight) from ``--fault-users``
   fresh users; the bot is killed with SIGKILL once ``--kill-at`` of it is answered, users keep sending, and a
   new process starts on the same database a second later. Checked: ``PRAGMA integrity_check``, the
   full-text index's integrity check, no half-written case; every message logged exactly once; which
   messages were answered twice or not at all, against the updates in flight at the kill (delivered to the
   killed process, not yet confirmed by its offset). Also: the token in no log line, one log line per case.
4. The in-process time to analyse a 200 KB message, three shapes (median of three runs each).

Bounded: every wait has a deadline (``--deadline`` seconds for the whole run); the bot is stopped and the
temporary directory removed at the end (``--keep`` keeps it). Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.synth import jsonl_texts, long_message  # noqa: E402
from bot.service import THROTTLED_NOTICE  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.store import keyed_hash  # noqa: E402
from tests.fake_bot_api import TOKEN, FakeBotAPI, buttons, message  # noqa: E402

SECRET = "load-benchmark-user-hash-secret-0123456789"
QUESTIONS = ROOT / "tests" / "data" / "questions.jsonl"
LOAD_BASE, FLOODER, BURST_BASE, FAULT_BASE = 1_000_000, 1_900_000, 2_000_000, 3_000_000


# --- the fake Bot API, recording what the benchmark needs -------------------------------------------------


@dataclass
class Send:
    at: float
    chat_id: int
    case_id: int | None  # from the 👍 button; None for notices and follow-ups
    text: str


class RecordingAPI(FakeBotAPI):
    """The tests' fake, plus: when each getUpdates page was handed over, and every sendMessage in order."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[tuple[float, int | None, list[int]]] = []  # (answered at, offset, update ids)
        self.sends: list[Send] = []
        self.polls: list[tuple[float, int | None]] = []  # (asked at, offset): what a poll confirms

    def get_updates(self, token: str, params: dict[str, Any], hold: bool) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.polls.append((time.monotonic(), params.get("offset")))
        status, body = super().get_updates(token, params, hold)
        if status == 200:
            ids = [u["update_id"] for u in body["result"]]
            with self._cond:
                self.pages.append((time.monotonic(), params.get("offset"), ids))
        return status, body

    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, body = super().answer(token, method, params)
        if method == "sendMessage" and status == 200:
            fb = [b for b in buttons(params) if b.startswith("fb:")]
            case_id = int(fb[0].split(":")[1]) if fb else None
            with self._cond:
                self.sends.append(Send(time.monotonic(), int(params["chat_id"]), case_id, params["text"]))
        return status, body

    def start(self) -> str:
        url = super().start()
        assert self.server is not None
        server = self.server
        server.handle_error = lambda *a: None  # type: ignore[method-assign]  # resets from the killed bot
        return url

    def pending_updates(self) -> int:
        with self._cond:
            return len(self._updates)


# --- the bot process --------------------------------------------------------------------------------------


class Bot:
    def __init__(self, fake: RecordingAPI, base_url: str, workdir: Path):
        self.fake = fake
        self.db = workdir / "cases.db"
        self.stderr_path = workdir / "bot.stderr"
        settings_names = set(Settings.model_fields)
        self.env = {k: v for k, v in os.environ.items() if k not in settings_names}
        self.env |= {
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": base_url,
            "TELEGRAM_BASE_FILE_URL": fake.file_url,
            "TELEGRAM_RATE_LIMIT": "100000",  # the fake server has no limit; USER_RATE_LIMIT stays 10
            "SMSGUARD_DB": str(self.db),
            "SMSGUARD_SECRET": SECRET,
        }
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> float:
        """Start a process; returns seconds until its first getUpdates."""
        calls_before = len(self.fake.calls)
        started = time.monotonic()
        with self.stderr_path.open("a") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "telegram"],
                env=self.env,
                cwd=self.workdir,  # no developer's .env
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.starts += 1
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the bot exited with {self.proc.returncode}:\n{self.stderr()[-2000:]}")
            methods = [c.method for c in self.fake.calls[calls_before:]]
            if "getMe" in methods and "getUpdates" in methods[methods.index("getMe") :]:
                return time.monotonic() - started
            time.sleep(0.02)
        raise SystemExit("the bot did not start polling in time")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the running process so far (Linux /proc)."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


# --- messages ---------------------------------------------------------------------------------------------


@dataclass
class Pushed:
    chat_id: int
    message_id: int
    update_id: int
    at: float
    key: str  # the case's message_key

    answers: list[Send] = field(default_factory=list)


def message_key(chat_id: int, message_id: int) -> str:
    return keyed_hash(SECRET.encode(), f"telegram:{chat_id}:{message_id}")


def texts(count: int, seed: int) -> list[str]:
    questions = [json.loads(line)["text"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    return jsonl_texts(questions, count, seed)


def push(fake: RecordingAPI, chat_id: int, text: str) -> Pushed:
    body = message(chat_id, chat_id, text)
    msg = body["message"]
    at = time.monotonic()
    update_id = fake.push(body)
    return Pushed(chat_id, msg["message_id"], update_id, at, message_key(chat_id, msg["message_id"]))


def schedule(users: list[int], per_user: int, rate: float, rng: random.Random) -> list[tuple[float, int]]:
    """(offset in seconds, chat) for every message: a Poisson stream, users interleaved at random."""
    order = [u for u in users for _ in range(per_user)]
    rng.shuffle(order)
    t, out = 0.0, []
    for chat in order:
        out.append((t, chat))
        t += rng.expovariate(rate) if rate > 0 else 0.0
    return out


def run_schedule(
    fake: RecordingAPI,
    plan: list[tuple[float, int]],
    corpus: list[str],
    on_tick: Any = None,
    extra: tuple[float, list[tuple[int, str]]] | None = None,
) -> tuple[list[Pushed], list[Pushed], float]:
    """Push ``plan`` in real time; ``extra`` = (offset, [(chat, text)]) is pushed at once at that offset.
    Returns (planned messages, extra messages, the extra's push time)."""
    started = time.monotonic()
    pushed: list[Pushed] = []
    extra_pushed: list[Pushed] = []
    extra_at = float("nan")
    for i, (offset, chat) in enumerate(plan):
        if extra is not None and not extra_pushed and offset >= extra[0]:
            extra_at = time.monotonic()
            extra_pushed = [push(fake, c, text) for c, text in extra[1]]
        delay = started + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pushed.append(push(fake, chat, corpus[i % len(corpus)]))
        if on_tick is not None:
            on_tick()
    return pushed, extra_pushed, extra_at


# --- accounting -------------------------------------------------------------------------------------------


def attach_answers(bot: Bot, fake: RecordingAPI, messages: list[Pushed]) -> list[Send]:
    """Give every message its answers: the sendMessage carrying its case's 👍/👎 buttons, and any later send
    to the same chat repeating that text without buttons (what a message already logged would get if it were
    answered again). Returns the sends to these chats that match no message (notices, follow-ups)."""
    by_key = {m.key: m for m in messages}
    case_key = dict(bot.query("SELECT id, message_key FROM cases WHERE message_key IS NOT NULL"))
    for m in messages:
        m.answers.clear()
    chats = {m.chat_id for m in messages}
    with fake._cond:
        sends = [s for s in fake.sends if s.chat_id in chats]
    first: dict[tuple[int, str], Pushed] = {}
    rest = []
    for send in sends:
        target = by_key.get(case_key.get(send.case_id, "")) if send.case_id is not None else None
        if target is None:
            rest.append(send)
            continue
        target.answers.append(send)
        first.setdefault((send.chat_id, send.text), target)
    other = []
    for send in rest:
        target = first.get((send.chat_id, send.text))
        if target is None:
            other.append(send)
        else:
            target.answers.append(send)
    for m in messages:
        m.answers.sort(key=lambda s: s.at)
    return other


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latencies_ms(messages: list[Pushed]) -> list[float]:
    return [(m.answers[0].at - m.at) * 1000 for m in messages if m.answers]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    print(f"  !! timed out after {timeout:.0f} s waiting for {what}", file=sys.stderr)
    return False


def logged(bot: Bot, messages: list[Pushed]) -> Counter[str]:
    keys = {m.key for m in messages}
    rows = bot.query("SELECT message_key FROM cases WHERE message_key IS NOT NULL")
    return Counter(k for (k,) in rows if k in keys)


# --- phases -----------------------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.checks: list[tuple[str, bool]] = []
        self.figures: dict[str, Any] = {}

    def row(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"  {name}: {value}", flush=True)

    def check(self, name: str, ok: bool) -> None:
        self.checks.append((name, ok))
        print(f"  [{'ok' if ok else 'FAILED'}] {name}", flush=True)


def fmt_ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f} ms"


def phase_load(
    bot: Bot, fake: RecordingAPI, args: argparse.Namespace, rep: Report, rng: random.Random
) -> None:
    users = [LOAD_BASE + i for i in range(args.users)]
    plan = schedule(users, args.per_user, args.rate, rng)
    corpus = texts(len(plan), seed=7)
    flood_text = texts(args.flood, seed=99)
    flood = (plan[len(plan) // 2][0], [(FLOODER, t) for t in flood_text])
    n = len(plan)
    print(f"steady load: {args.users} users × {args.per_user} = {n} messages at {args.rate}/s, "
          f"flood of {args.flood} at {flood[0]:.0f} s", flush=True)  # fmt: skip
    cpu0 = bot.cpu_seconds()
    started = time.monotonic()
    pushed, flooded, flood_at = run_schedule(fake, plan, corpus, extra=flood)
    everyone = pushed + flooded
    flood_answers = 10 if args.flood > 10 else args.flood
    expected_cases = n + len(flooded)
    wait_until(
        lambda: (
            bot.query("SELECT count(*) FROM cases")[0][0] >= expected_cases
            and sum(1 for s in fake.sends if s.case_id is not None) >= n + flood_answers
        ),
        args.phase_timeout,
        "every load message logged and answered",
    )
    time.sleep(1.0)  # anything answered twice would arrive now
    ended = max((s.at for s in fake.sends), default=time.monotonic())
    cpu = bot.cpu_seconds() - cpu0
    other = attach_answers(bot, fake, everyone)
    counts = logged(bot, everyone)

    answered_once = sum(1 for m in pushed if len(m.answers) == 1)
    twice = sum(1 for m in pushed if len(m.answers) > 1)
    unanswered = sum(1 for m in pushed if not m.answers)
    logged_once = sum(1 for m in pushed if counts[m.key] == 1)
    lat = latencies_ms(pushed)
    elapsed = ended - started
    throughput = sum(len(m.answers) > 0 for m in pushed) / elapsed
    rep.row(
        "steady: messages (users × messages)",
        f"{n} ({args.users} × {args.per_user}) at {args.rate}/s offered",
    )
    rep.row("steady: answered once / twice / not", f"{answered_once} / {twice} / {unanswered}")
    rep.row("steady: logged once", f"{logged_once} of {n}")
    rep.row("steady: latency p50 / p99", fmt_ms(lat))
    rep.row("steady: latency max", f"{max(lat, default=float('nan')):.0f} ms")
    rep.row("steady: throughput", f"{throughput:.1f} answers/s over {elapsed:.1f} s")
    rep.row("steady: bot CPU", f"{cpu:.1f} s ({cpu / max(1, n + len(flooded)) * 1000:.2f} ms per message)")
    rep.check("steady: every message answered exactly once", answered_once == n)
    rep.check("steady: every message logged exactly once", logged_once == n)
    stray = [s for s in other if s.chat_id != FLOODER]
    rep.check("steady: no other sendMessage to the users", not stray)

    # The flooder.
    flood_sends = [s for s in fake.sends if s.chat_id == FLOODER]
    notices = [s for s in flood_sends if s.text == THROTTLED_NOTICE]
    answered_flood = [m for m in flooded if m.answers]
    throttled = bot.query(
        f"SELECT throttled, count(*) FROM cases WHERE message_key IN ({','.join('?' * len(flooded))}) GROUP BY 1",
        tuple(m.key for m in flooded),
    )
    throttled_rows = dict(throttled)
    rep.row(
        "flood: messages / answered / notices / logged (throttled)",
        f"{len(flooded)} / {len(answered_flood)} / {len(notices)} / "
        f"{sum(throttled_rows.values())} ({throttled_rows.get(1, 0)})",
    )
    rep.check(
        "flood: ten answered, one notice, the rest logged as throttled and not answered",
        len(answered_flood) == flood_answers
        and len(notices) == 1
        and len(flood_sends) == flood_answers + 1
        and throttled_rows.get(1, 0) == len(flooded) - flood_answers
        and sum(throttled_rows.values()) == len(flooded),
    )
    flood_done = max((s.at for s in flood_sends), default=flood_at)
    # the flood's throttled updates are handled after its last answer; give them the same span again
    window_end = flood_at + max(2.0, 2 * (flood_done - flood_at))
    during = [m for m in pushed if flood_at <= m.at <= window_end]
    outside = [m for m in pushed if not flood_at - 5 <= m.at <= window_end + 5]
    rep.row(
        "flood: others' latency while it was handled (n) vs rest",
        f"{fmt_ms(latencies_ms(during))} ({len(during)}) vs {fmt_ms(latencies_ms(outside))}",
    )
    if during and outside:
        slowed = percentile(latencies_ms(during), 0.5) > 2 * percentile(latencies_ms(outside), 0.5) + 20
        rep.check("flood: others not slowed (p50 within 2× + 20 ms of the rest)", not slowed)
    else:
        print("  (the run is too short to compare latencies around the flood)", flush=True)
    rep.figures["steady"] = {
        "messages": n,
        "offered_rate": args.rate,
        "latency_ms": {
            "p50": percentile(lat, 0.5),
            "p99": percentile(lat, 0.99),
            "max": max(lat, default=None),
        },
        "throughput": throughput,
        "bot_cpu_ms_per_message": cpu / max(1, n + len(flooded)) * 1000,
        "flood_window_latency_ms": {
            "p50": percentile(latencies_ms(during), 0.5),
            "p99": percentile(latencies_ms(during), 0.99),
            "n": len(during),
        },
        "rest_latency_ms": {
            "p50": percentile(latencies_ms(outside), 0.5),
            "p99": percentile(latencies_ms(outside), 0.99),
        },
    }


def phase_burst(bot: Bot, fake: RecordingAPI, args: argparse.Namespace, rep: Report) -> None:
    if args.burst <= 0:
        return
    users = args.burst // args.per_user
    plan = schedule([BURST_BASE + i for i in range(users)], args.per_user, 0, random.Random(3))
    print(f"capacity: {len(plan)} messages pushed at once", flush=True)
    corpus = texts(len(plan), seed=13)
    started = time.monotonic()
    pushed, _, _ = run_schedule(fake, plan, corpus)
    wait_until(
        lambda: sum(1 for s in fake.sends if s.chat_id >= BURST_BASE and s.chat_id < FAULT_BASE) >= len(plan),
        args.phase_timeout,
        "the burst answered",
    )
    attach_answers(bot, fake, pushed)
    ended = max((m.answers[-1].at for m in pushed if m.answers), default=time.monotonic())
    answered = sum(1 for m in pushed if len(m.answers) == 1)
    rep.row(
        "capacity: burst drained",
        f"{answered} of {len(plan)} in {ended - started:.1f} s = {answered / (ended - started):.1f} answers/s",
    )
    rep.check("capacity: every burst message answered once", answered == len(plan))
    rep.figures["capacity"] = {"messages": len(plan), "throughput": answered / (ended - started)}


def phase_fault(
    bot: Bot, fake: RecordingAPI, args: argparse.Namespace, rep: Report, rng: random.Random
) -> None:
    users = [FAULT_BASE + i for i in range(args.fault_users)]
    plan = schedule(users, args.per_user, args.fault_rate, rng)
    corpus = texts(len(plan), seed=21)
    kill_after = int(len(plan) * args.kill_at)
    print(
        f"faults: {len(plan)} messages at {args.fault_rate}/s, kill -9 after {kill_after} answers", flush=True
    )
    state: dict[str, Any] = {"killed_at": None, "restarted": None}

    def answered_in_phase() -> int:
        return sum(1 for s in fake.sends if s.chat_id >= FAULT_BASE and s.case_id is not None)

    def tick() -> None:
        if state["killed_at"] is None:
            if answered_in_phase() < kill_after:
                return
            state["killed_at"] = time.monotonic()
            bot.kill9()
            print(f"  killed at {answered_in_phase()} answers", flush=True)
        elif state["restarted"] is None and time.monotonic() - state["killed_at"] >= 1.0:
            # start in the background: users keep sending meanwhile
            state["restarted"] = time.monotonic()
            state["starter"] = threading.Thread(target=lambda: state.update(start_s=bot.start()))
            state["starter"].start()

    pushed, _, _ = run_schedule(fake, plan, corpus, on_tick=tick)
    if state["killed_at"] is None:  # the stream ended first: kill now
        state["killed_at"] = time.monotonic()
        bot.kill9()
    if state["restarted"] is None:
        time.sleep(max(0.0, 1.0 - (time.monotonic() - state["killed_at"])))
        state["restarted"] = time.monotonic()
        state["start_s"] = bot.start()
    if "starter" in state:
        state["starter"].join()
    wait_until(
        lambda: len(logged(bot, pushed)) >= len(plan) and fake.pending_updates() == 0,
        args.phase_timeout,
        "every fault message logged",
    )
    time.sleep(1.5)  # late duplicates
    code = bot.stop()
    killed_at = state["killed_at"]

    # What the killed process had: pages handed over before the kill, minus what its offsets confirmed.
    with fake._cond:
        pages = list(fake.pages)
    before = [p for p in pages if p[0] < killed_at]
    confirmed = max((o for t, o in fake.polls if t < killed_at and o is not None), default=0)
    delivered = {uid for p in before for uid in p[2]}
    ours = {m.update_id: m for m in pushed}
    in_flight = {u for u in delivered if u in ours and u >= confirmed}

    unmatched = attach_answers(bot, fake, pushed)
    counts = logged(bot, pushed)
    twice = [m for m in pushed if len(m.answers) > 1]
    never = [m for m in pushed if not m.answers]
    not_logged = [m for m in pushed if counts[m.key] == 0]
    answered_before = [
        m for m in pushed if m.update_id in in_flight and m.answers and m.answers[0].at < killed_at
    ]
    logged_unanswered = [m for m in never if counts[m.key] == 1]
    rep.row(
        "faults: messages / kill after / restart took",
        f"{len(plan)} / {kill_after} answers / {state['start_s']:.1f} s to first poll",
    )
    rep.row("faults: updates in flight at the kill", str(len(in_flight)))
    rep.row(
        "faults: in flight: answered before the kill / logged, unanswered / answered after restart",
        f"{len(answered_before)} / {len(logged_unanswered)} / "
        f"{sum(1 for m in pushed if m.update_id in in_flight and m.answers and m.answers[0].at >= killed_at)}",
    )
    rep.row("faults: answered twice / never / not logged", f"{len(twice)} / {len(never)} / {len(not_logged)}")
    rep.check("faults: no send to these users that answers none of their messages", not unmatched)
    rep.check(
        "faults: every message logged exactly once",
        not not_logged and all(counts[m.key] == 1 for m in pushed),
    )
    rep.check(
        "faults: answered twice only if in flight at the kill", all(m.update_id in in_flight for m in twice)
    )
    rep.check(
        "faults: unanswered only if in flight at the kill", all(m.update_id in in_flight for m in never)
    )
    rep.check("faults: the restarted bot stopped cleanly (exit 0)", code == 0)

    integrity = bot.query("PRAGMA integrity_check")
    rep.check("faults: PRAGMA integrity_check ok", integrity == [("ok",)])
    try:
        conn = sqlite3.connect(bot.db)
        conn.execute("INSERT INTO cases_fts (cases_fts) VALUES ('integrity-check')")
        conn.close()
        fts_ok = True
    except sqlite3.DatabaseError as exc:
        print(f"  fts: {exc}", file=sys.stderr)
        fts_ok = False
    rep.check("faults: full-text index integrity-check ok", fts_ok)
    half = bot.query(
        "SELECT count(*) FROM cases WHERE throttled = 0 AND (signals IS NULL OR topics IS NULL OR entities IS NULL"
        " OR reply IS NULL OR kb_version IS NULL OR user_hash IS NULL)"
    )[0][0]
    rep.check("faults: no half-written case", half == 0)
    rep.figures["faults"] = {
        "messages": len(plan),
        "in_flight": len(in_flight),
        "in_flight_answered_before_kill": len(answered_before),
        "in_flight_logged_unanswered": len(logged_unanswered),
        "answered_twice": len(twice),
        "never_answered": len(never),
        "not_logged": len(not_logged),
        "restart_seconds": state["start_s"],
    }


def phase_long_message(rep: Report) -> None:
    from bot.core import Analyzer
    from bot.knowledge import load_knowledge

    analyzer = Analyzer(load_knowledge())
    analyzer.warm_up()
    shapes = {
        "synthetic SMS run together": long_message(200 * 1024),
        "digits only": "1" * 204_800,
        "one threat repeated": "再不还钱就爆你通讯录。" * 6_206,
    }
    worst = 0.0
    for name, text in shapes.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            analyzer.analyze(text)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        worst = max(worst, median)
        rep.row(f"200 KB: {name} ({round(len(text.encode()) / 1024)} KB)", f"{median * 1000:.0f} ms")
    rep.figures["long_message_ms"] = worst * 1000


# --- main -------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=5, help="at most 10 (USER_RATE_LIMIT)")
    parser.add_argument("--rate", type=float, default=60.0, help="offered messages per second")
    parser.add_argument("--flood", type=int, default=100)
    parser.add_argument("--burst", type=int, default=2000, help="messages for the capacity phase (0: skip)")
    parser.add_argument("--fault-users", type=int, default=300)
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=150.0,
        help="offered rate of the fault stream (above capacity: a backlog)",
    )
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of the fault stream answered")
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    if not 1 <= args.per_user <= 10:
        parser.error("--per-user must be 1-10 (the per-user limit is 10 a minute)")
    args.phase_timeout = args.deadline / 3
    rng = random.Random(args.seed)

    rep = Report()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{when}; {machine()}", flush=True)

    def past_deadline(*_: Any) -> None:
        raise SystemExit(f"the deadline of {args.deadline:.0f} s passed")

    signal.signal(signal.SIGALRM, past_deadline)
    signal.alarm(int(args.deadline))

    workdir = Path(tempfile.mkdtemp(prefix="smsguard-load-"))
    fake = RecordingAPI()
    base = fake.start()
    bot = Bot(fake, base, workdir)
    try:
        rep.row("bot start (first getUpdates)", f"{bot.start():.1f} s")
        phase_load(bot, fake, args, rep, rng)
        phase_burst(bot, fake, args, rep)
        phase_fault(bot, fake, args, rep, rng)
        stderr = bot.stderr()
        rep.check("log: the token never appears", TOKEN not in stderr and TOKEN.split(":")[1] not in stderr)
        rep.check("log: no traceback", "Traceback" not in stderr)
        cases = bot.query("SELECT count(*) FROM cases")[0][0]
        lines = stderr.count("channel=telegram")
        rep.row("log lines for cases / cases", f"{lines} / {cases}")
        # a case committed just before the kill may miss its line; nothing else may
        rep.check("log: one line per case", 0 <= cases - lines <= rep.figures["faults"]["in_flight"])
        rep.row("cases in the database at the end", str(cases))
        phase_long_message(rep)
    finally:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.stop()
        fake.stop()
        signal.alarm(0)
        if args.keep:
            print(f"kept {workdir}")
        else:
            for path in sorted(workdir.glob("**/*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            workdir.rmdir()

    print(f"\n## Telegram load and faults ({when}; {machine()})\n")
    width = max(len(name) for name, _ in rep.rows)
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rep.rows:
        print(f"| {name.ljust(width)} | {value} |")
    failed = [name for name, ok in rep.checks if not ok]
    print(f"\nchecks: {len(rep.checks) - len(failed)} of {len(rep.checks)} passed")
    for name in failed:
        print(f"  FAILED: {name}")
    if args.json:
        args.json.write_text(json.dumps({"when": when, "machine": machine(), **rep.figures}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

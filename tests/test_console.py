"""The console chat, piped, as ``printf '...' | make run`` would drive it; cases land in SQLite."""

import datetime as dt
import io
import sqlite3
import threading
import time

from bot.adapters.console import compact, run_console
from bot.maintenance import KnowledgeReloader, maintenance_jobs
from bot.service import EMPTY_REPLY, Incoming, Service
from bot.store import CaseStore
from tests.helpers import run_cli


def test_piped_chat_answers_each_line_and_logs_cases(tmp_path, kb):
    db = tmp_path / "cases.db"
    stdin = "再不还钱就爆你通讯录\n上门催收合法吗\n\n详细\n"
    proc = run_cli("chat", stdin=stdin, env={"SMSGUARD_DB": str(db)})
    assert proc.returncode == 0, proc.stderr
    replies = proc.stdout[:-2].split("\n\n")  # each reply is followed by one empty line, none inside
    assert "违法催收" in proc.stdout
    assert proc.stdout.endswith("\n\n")
    assert "催收短信鉴别助手" not in proc.stdout.splitlines()[0]  # no banner when piped
    assert len(replies) == 4  # the empty line is a message too: it gets a hint
    assert replies[2] == compact(EMPTY_REPLY)
    assert replies[3] == compact(kb.topic("home-visit").details)  # "详细" about the previous message
    rows = sqlite3.connect(db).execute("SELECT channel, verdict, kind FROM cases ORDER BY id").fetchall()
    assert rows == [("console", "illegal_collection", "sms"), ("console", "unrelated", "question")]
    assert (tmp_path / "smsguard.secret").exists()


def test_run_without_token_starts_the_console(tmp_path):
    proc = run_cli("run", stdin="晚上一起吃火锅吗？\n", env={"SMSGUARD_DB": str(tmp_path / "c.db")})
    assert proc.returncode == 0, proc.stderr
    assert "未发现" in proc.stdout


def test_unwritable_database_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("chat", stdin="hi\n", env={"SMSGUARD_DB": str(blocker / "sub" / "cases.db")})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_chat_runs_retention_and_hot_reload_only_while_it_runs(tmp_path, analyzer):
    store = CaseStore(tmp_path / "cases.db", b"k" * 32)
    service = Service(analyzer, store)
    old = service.handle(Incoming("console", "u", "console", "晚上吃饭吗")).case_id
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).isoformat(timespec="seconds")
    store.db.execute("UPDATE cases SET created_at = ? WHERE id = ?", [long_ago, old])
    with maintenance_jobs(service, retention_days=7) as jobs:
        names = {t.name for t in threading.enumerate()}
        assert {"smsguard-knowledge-reload", "smsguard-retention", "smsguard-memory-sweep"} <= names
        assert isinstance(jobs[0], KnowledgeReloader) and jobs[0]._previous_handler is None  # no SIGHUP
        deadline = time.monotonic() + 10
        while jobs[1].runs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not {t.name for t in threading.enumerate()} & {"smsguard-knowledge-reload", "smsguard-retention"}
    assert store.get_case(old) is None  # purged once at start

    out = io.StringIO()
    assert run_console(service, Terminal("再不还钱就爆你通讯录\n\n"), out, retention_days=7) == 0
    assert "违法催收" in out.getvalue() and "再见" in out.getvalue()
    assert not {t.name for t in threading.enumerate()} & {"smsguard-knowledge-reload", "smsguard-retention"}
    store.close()

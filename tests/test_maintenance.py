"""Retention and knowledge hot-reload (bot/maintenance.py), run the way a long-running bot runs them."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import threading
import time

import pytest

from bot.core import Analyzer
from bot.knowledge import DEFAULT_DIR, load_knowledge
from bot.knowledge.edit import add_list_item
from bot.maintenance import KnowledgeReloader, RetentionScheduler, purge_expired
from bot.service import Incoming, Service
from bot.store import CaseStore


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def service(tmp_path, analyzer):
    store = CaseStore(tmp_path / "cases.db", b"k" * 32)
    yield Service(analyzer, store)
    store.close()


def age_cases(store, ids, days):
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(timespec="seconds")
    store.db.execute(f"UPDATE cases SET created_at = ? WHERE id IN ({','.join('?' * len(ids))})", [old, *ids])


def test_purge_expired_keeps_recent_cases(service):
    ids = [
        service.handle(Incoming("console", "u", "c", f"第{i}条：您的借款已逾期")).case_id for i in range(4)
    ]
    age_cases(service.store, ids[:2], days=200)
    age_cases(service.store, ids[2:3], days=179)
    assert purge_expired(service.store, 180) == 2
    assert [c for c in ids if service.store.get_case(c)] == ids[2:]


def test_retention_scheduler_runs_at_start_and_then_on_schedule(service):
    ids = [service.handle(Incoming("console", "u", "c", f"第{i}条：晚上吃饭吗")).case_id for i in range(3)]
    age_cases(service.store, ids[:1], days=10)
    scheduler = RetentionScheduler(service.store, retention_days=7, interval=0.2)
    scheduler.start()
    try:
        wait_for(lambda: scheduler.runs >= 1)
        assert scheduler.purged == 1 and service.store.get_case(ids[0]) is None
        age_cases(service.store, ids[1:2], days=30)  # ages while the bot runs: the next run takes it
        wait_for(lambda: scheduler.purged == 2)
    finally:
        scheduler.stop()
    assert service.store.get_case(ids[2]) is not None
    runs = scheduler.runs
    time.sleep(0.3)
    assert scheduler.runs == runs  # stopped


@pytest.fixture
def kb_copy(tmp_path):
    root = tmp_path / "knowledge"
    shutil.copytree(DEFAULT_DIR, root)
    return root


NEW_QUESTION = "催收员说下周三带着律师来我单位找领导谈"


def add_question(root, topic="home-visit", question=NEW_QUESTION):
    path = root / "topics" / f"{topic}.yaml"
    path.write_text(add_list_item(path.read_text(encoding="utf-8"), "questions", question), encoding="utf-8")


def test_reload_swaps_in_valid_knowledge_and_keeps_the_old_on_errors(service, kb_copy, caplog):
    reloader = KnowledgeReloader(service, kb_copy, warm=False)
    old = service.analyzer
    reloader.tick()
    assert service.analyzer is old  # nothing changed on disk

    add_question(kb_copy)
    reloader.tick()
    assert reloader.reloads == 1 and service.analyzer is not old
    assert NEW_QUESTION in service.analyzer.kb.topic_by_id["home-visit"].questions
    assert service.analyzer.kb.version != old.kb.version
    out = service.handle(Incoming("console", "u", "c", NEW_QUESTION))
    assert out.analysis.kb_version == service.analyzer.kb.version

    good = service.analyzer
    (kb_copy / "topics" / "negotiate.yaml").write_text("id: negotiate\ntitle: [broken\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="bot.maintenance"):
        reloader.tick()
    assert reloader.failures == 1 and service.analyzer is good  # still serving the last good knowledge
    assert "negotiate.yaml" in caplog.text
    reloader.tick()
    assert reloader.failures == 1  # the same broken files are not retried on every poll


def test_swap_while_messages_are_being_answered(service, kb):
    """Requests in flight finish with the analyzer they started with; none fails during swaps."""
    first, second = service.analyzer, Analyzer(kb)
    second.warm_up()
    versions: list[str] = []
    errors: list[BaseException] = []

    def talk(n: int) -> None:
        try:
            for i in range(30):
                out = service.handle(Incoming("console", f"u{n}-{i}", f"c{n}", "再不还钱就爆你通讯录"))
                versions.append(out.analysis.kb_version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        assert service.swap_analyzer(second if i % 2 == 0 else first) in (first, second)
    for t in threads:
        t.join()
    assert not errors and len(versions) == 120
    assert set(versions) <= {first.kb.version, second.kb.version}


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX only")
def test_polling_thread_and_sighup(service, kb_copy):
    reloader = KnowledgeReloader(service, kb_copy, interval=0.1, warm=False)
    before = signal.getsignal(signal.SIGHUP)
    assert reloader.install_sighup()
    reloader.start()
    try:
        add_question(kb_copy)  # picked up by polling
        wait_for(lambda: reloader.reloads == 1)
        reloader.interval = 3600.0  # from now on only a signal wakes it
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: reloader.reloads == 2)
    finally:
        reloader.stop()
    assert signal.getsignal(signal.SIGHUP) is before
    assert load_knowledge(kb_copy).version == service.analyzer.kb.version

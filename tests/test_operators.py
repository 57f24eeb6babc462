"""The operators' service (bot/operators.py) and its store queries, on databases filled through the console."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import yaml

from bot.knowledge import KnowledgeError, load_knowledge
from bot.knowledge.load import DEFAULT_DIR
from bot.operators import OperatorError, Operators, format_stats_short
from bot.service import Incoming, Service
from bot.store import CaseStore
from bot.store.admin import cutoff
from bot.store.queries import CaseFilter

SECRET = b"test-secret"


@pytest.fixture
def store(case_db):
    s = CaseStore(case_db, SECRET)
    yield s
    s.close()


def make_ops(store, kb, low=0.6):
    return Operators(store, low_confidence=low, knowledge=lambda: kb)


def texts(cases):
    return [c["text"] for c in cases]


def test_list_filters_and_case_objects(store, kb):
    ops = make_ops(store, kb)
    everything = ops.list_cases(CaseFilter(limit=None))
    assert len(everything) == 10 and [c["id"] for c in everything] == sorted(
        (c["id"] for c in everything), reverse=True
    )
    scams = ops.list_cases(CaseFilter(verdict="scam"))
    assert scams and all(c["verdict"] == "scam" for c in scams)
    assert all("监管账户" in t for t in texts(scams))
    with pytest.raises(OperatorError, match="unknown verdict"):
        ops.list_cases(CaseFilter(verdict="fraud"))
    lowest = min(c["confidence"] for c in everything)
    unsure = make_ops(store, kb, low=lowest + 0.001).list_cases(CaseFilter(below_confidence=lowest + 0.001))
    assert unsure and all(c["confidence"] <= lowest for c in unsure)
    assert len(ops.list_cases(CaseFilter(limit=3))) == 3


def test_personal_data_is_redacted_and_raw_text_never_listed(store, kb):
    ops = make_ops(store, kb)
    blast = ops.list_cases(CaseFilter(search="通讯录"))[0]
    assert "13812345678" not in blast["text"] and "张伟" not in blast["text"]
    assert "raw_text" not in blast
    row = ops.row(blast["id"])
    assert {"raw_text", "user_hash", "message_key"}.isdisjoint(row)
    # the fixture stored raw text (STORE_RAW_TEXT=true): it is in the table, but only there
    raw = store.db.execute("SELECT raw_text FROM cases WHERE id = ?", [blast["id"]]).fetchone()[0]
    assert "13812345678" in raw


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("催收", 2),  # two characters: below the trigram size, LIKE fallback
        ("上门走访", 3),  # FTS5 trigram index
        ("逾期 上门走访", 3),  # several terms: all must occur
        ("金融 监管账户", 1),
        ("[手机号]", 1),  # placeholders are searchable, FTS syntax characters are not operators
        ("100%", 0),  # LIKE wildcards are escaped
        ("火锅", 1),
    ],
)
def test_chinese_search_short_and_long_words(store, kb, query, expected):
    assert len(make_ops(store, kb).list_cases(CaseFilter(search=query))) == expected


def test_search_index_holds_only_redacted_text(store):
    db = store.db
    assert db.table("cases_fts").exists()
    match = "SELECT count(*) FROM cases_fts WHERE cases_fts MATCH ?"
    assert db.execute(match, ['"13812345678"']).fetchone()[0] == 0  # in raw_text only
    assert db.execute(match, ['"张伟先生"']).fetchone()[0] == 0
    assert db.execute(match, ['"手机号"']).fetchone()[0] == 1


def test_label_refuses_unknown_verdict_topic_and_case(store, kb):
    ops = make_ops(store, kb)
    case_id = ops.list_cases(CaseFilter(search="火锅"))[0]["id"]
    for bad in (
        lambda: ops.label(case_id, "fraud"),
        lambda: ops.label(case_id, "scam", topic="no-such-topic"),
    ):
        with pytest.raises(OperatorError):
            bad()
    with pytest.raises(OperatorError, match="no case #999"):
        ops.label(999, "scam")
    assert store.get_case(case_id)["label"] is None
    result = ops.label(case_id, "unrelated", topic="verify-official", note="张伟先生说13812345678是他的号")
    assert result.case["label"] == "unrelated" and not result.changed
    assert "13812345678" not in result.case["note"] and "张伟" not in result.case["note"]
    again = ops.label(case_id, "scam")  # a new verdict keeps the earlier topic and note
    assert again.changed and again.case["note"] == result.case["note"]
    assert ops.row(case_id)["label_topic"] == "verify-official"


def test_notify_only_users_who_asked_and_only_when_the_label_differs(store, kb):
    ops = make_ops(store, kb)
    first, second = (c["id"] for c in ops.list_cases(CaseFilter(search="上门走访", limit=2)))
    assert ops.request_notify(first, "telegram", "4242")
    assert ops.request_notify(first, "telegram", "4242")  # a second tap changes nothing
    assert ops.request_notify(second, "telegram", "77")
    assert not ops.request_notify(999, "telegram", "1")
    assert ops.due_notifications() == []  # nobody labelled yet

    same = ops.label(second, store.get_case(second)["verdict"])  # the operator agrees with the bot
    assert (
        same.notify == ()
        and store.db.execute("SELECT count(*) FROM case_notify WHERE case_id = ?", [second]).fetchone()[0]
        == 0
    )

    result = ops.label(first, "scam")
    assert [(n.chat_id, n.label) for n in result.notify] == [("4242", "scam")]
    due = ops.due_notifications("telegram")
    assert len(due) == 1 and ops.due_notifications("wechat") == []
    assert "疑似诈骗" in Operators.notification_text(due[0])
    ops.notified(due[0])
    assert ops.due_notifications() == []
    assert store.db.execute("SELECT count(*) FROM case_notify").fetchone()[0] == 0  # chat id deleted


def test_queue_groups_near_duplicates_unsure_and_thumbs_down_first(store, kb):
    everything = make_ops(store, kb).list_cases(CaseFilter(limit=None))
    by_text = {c["text"]: c for c in everything}
    reminder = next(c for t, c in by_text.items() if "工商银行" in t)
    store.set_feedback(reminder["id"], "down")
    confident = max(c["confidence"] for c in everything)
    ops = make_ops(store, kb, low=0.0)  # nothing is "unsure": the 👎 alone decides the first place
    groups = ops.queue()
    assert groups[0].case["id"] == reminder["id"] and groups[0].thumbs_down
    visits = [g for g in groups if "上门走访" in g.case["text"]]
    assert len(visits) == 1 and visits[0].count == 3  # 20天 / 25天 / 31天！ are one group
    rest = [g for g in groups[1:] if g.tier == groups[1].tier]
    assert rest[0] is visits[0] or rest[0].count >= visits[0].count  # most asked first within a tier
    assert sum(g.count for g in groups) == len(everything)

    unsure = make_ops(store, kb, low=confident + 0.01).queue()
    assert all(g.low_confidence for g in unsure)
    assert ops.next_case().case["id"] == reminder["id"]
    assert ops.next_case(exclude=[reminder["id"]]).case["id"] != reminder["id"]
    ops.label(reminder["id"], "reminder")
    assert all(reminder["id"] not in g.case_ids for g in ops.queue())  # labelled cases leave the queue


def test_stats(store, kb):
    store.set_feedback(1, "up")
    store.set_feedback(2, "down")
    store.set_feedback(3, "up")
    stats = make_ops(store, kb).stats()
    assert stats["cases"] == stats["analysed"] == 10 and stats["throttled"] == 0
    assert sum(stats["per_verdict"].values()) == 10 and stats["per_verdict"]["pressure"] >= 3
    assert sum(stats["per_day"].values()) == 10
    assert stats["per_platform"].get("jd-baitiao") == 1
    assert stats["feedback"] == {"up": 2, "down": 1, "helpful_ratio": 0.6667}
    assert 0.0 <= stats["unmatched_rate"] <= 1.0
    assert 0 < stats["analysis_ms"]["p50"] <= stats["analysis_ms"]["p99"]
    assert make_ops(store, kb).stats(since="2999-01-01")["cases"] == 0
    short = format_stats_short(stats)
    assert "案例 10 条" in short and "👎 1" in short and "67%" in short


def test_purge_and_backup(store, kb, tmp_path):
    ops = make_ops(store, kb)
    store.db.execute("UPDATE cases SET created_at = '2020-01-01T00:00:00+00:00' WHERE id <= 4")
    assert ops.request_notify(1, "telegram", "5")
    assert ops.purge_older_than(cutoff(__import__("datetime").timedelta(days=90))) == 4
    assert store.count() == 6 and store.get_case(1) is None
    assert store.db.execute("SELECT count(*) FROM case_notify").fetchone()[0] == 0  # cascade
    target = tmp_path / "backup.db"
    ops.backup(target)
    assert sqlite3.connect(target).execute("SELECT count(*) FROM cases").fetchone()[0] == 6
    assert target.stat().st_mode & 0o077 == 0
    with pytest.raises(OperatorError, match="exists"):
        ops.backup(target)


def _bytes(directory) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file() and ".db" in p.name)


def test_deleted_cases_leave_no_trigram_behind(tmp_path, analyzer):
    store = CaseStore(tmp_path / "c.db", SECRET)
    service = Service(analyzer, store)
    secret = "鳄鱼蜥蜴袋鼠考拉催我还钱"
    for i in range(12):
        service.handle(Incoming("console", f"other{i}", f"c{i}", f"普通的催收短信第{i}条，请按时还款"))
    service.handle(Incoming("console", "me", "me", secret))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    trigrams = [secret[i : i + 3].encode() for i in range(len(secret) - 2)]
    assert any(t in _bytes(tmp_path) for t in trigrams)
    assert service.forget_user("me") == 1
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not [t for t in trigrams if t in _bytes(tmp_path)]
    store.close()


# --- promote ------------------------------------------------------------------------------------------


@pytest.fixture
def kb_copy(tmp_path):
    root = tmp_path / "knowledge"
    shutil.copytree(DEFAULT_DIR, root)
    return root


def test_promote_appends_a_question_that_kb_check_accepts(store, kb, kb_copy):
    ops = make_ops(store, kb)
    case = ops.list_cases(CaseFilter(search="门口堵我"))[0]
    assert case["kind"] == "question"
    path = kb_copy / "topics" / "home-visit.yaml"
    before = path.read_text(encoding="utf-8")
    promotion = ops.prepare_promotion(case["id"], "home-visit", kb_copy)
    assert promotion.field == "questions" and promotion.phrasing == case["text"]
    new_kb = ops.promote(promotion)
    after = path.read_text(encoding="utf-8")
    assert case["text"] in new_kb.topic_by_id["home-visit"].questions
    assert len(after.splitlines()) == len(before.splitlines()) + 1  # one line added, nothing reformatted
    assert [line for line in after.splitlines() if line not in before.splitlines()] == [f"  - {case['text']}"]
    load_knowledge(kb_copy)  # kb check
    assert ops.row(case["id"])["promoted_topic"] == "home-visit"
    with pytest.raises(OperatorError, match="already promoted"):
        ops.prepare_promotion(case["id"], "home-visit", kb_copy)
    assert (DEFAULT_DIR / "topics" / "home-visit.yaml").read_text(encoding="utf-8") != after


def test_promote_message_with_placeholder_is_quoted_and_messages_list_extended(store, kb, kb_copy):
    ops = make_ops(store, kb)
    case = ops.list_cases(CaseFilter(search="通讯录"))[0]
    promotion = ops.prepare_promotion(case["id"], "contacts-harassment", kb_copy)
    assert promotion.field == "messages"
    ops.promote(promotion)
    data = yaml.safe_load((kb_copy / "topics" / "contacts-harassment.yaml").read_text(encoding="utf-8"))
    assert data["messages"][-1] == case["text"]


def test_promote_refusals_and_rollback(store, kb, kb_copy, monkeypatch):
    ops = make_ops(store, kb)
    case = ops.list_cases(CaseFilter(search="火锅"))[0]
    with pytest.raises(OperatorError, match="unknown topic"):
        ops.prepare_promotion(case["id"], "no-such-topic", kb_copy)
    with pytest.raises(OperatorError, match="no case"):
        ops.prepare_promotion(999, "home-visit", kb_copy)
    path = kb_copy / "topics" / "home-visit.yaml"
    original = path.read_bytes()
    promotion = ops.prepare_promotion(case["id"], "home-visit", kb_copy)
    import bot.operators

    real = bot.operators.add_list_item
    monkeypatch.setattr(bot.operators, "add_list_item", lambda *a: real(*a) + "no_such_key: 1\n")
    with pytest.raises(OperatorError, match="kb check failed"):
        ops.promote(promotion)
    assert path.read_bytes() == original
    assert ops.row(case["id"])["promoted_at"] is None
    assert not list((kb_copy / "topics").glob(".*.tmp"))
    load_knowledge(kb_copy)


def test_broken_knowledge_is_refused_before_any_edit(store, kb, kb_copy):
    (kb_copy / "topics" / "home-visit.yaml").write_text("id: [", encoding="utf-8")
    with pytest.raises(KnowledgeError):
        load_knowledge(kb_copy)
    with pytest.raises(OperatorError, match="invalid before the edit"):
        make_ops(store, kb).prepare_promotion(1, "negotiate", kb_copy)

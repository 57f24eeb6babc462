import sqlite3

import pytest

from bot.store import CaseStore, NewCase
from bot.store.migrations import migrations

PERSONAL = [
    "110105199003071234",
    "11010519900307123X",
    "6222021234567890123",
    "13812345678",
    "张伟",
]
MESSAGE = (
    "尊敬的张伟：您身份证110105199003071234名下尾号卡6222021234567890123的借款已逾期，"
    "再不还款就爆你通讯录，联系催收员13812345678。另一证件11010519900307123X。"
)


@pytest.fixture
def store(tmp_path):
    s = CaseStore(tmp_path / "cases.db", b"k" * 32)
    yield s
    s.close()


def _all_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


def test_round_trip_as_design_case_object(store, analyzer):
    analysis = analyzer.analyze(MESSAGE)
    case_id = store.log_case(NewCase("console", "user-1", MESSAGE, analysis))
    case = store.get_case(case_id)
    assert set(case) == {
        "id", "created_at", "channel", "kind", "verdict", "confidence", "text", "signals", "topics",
        "feedback", "label", "note", "throttled", "kb_version",
    }  # fmt: skip
    assert case["id"] == case_id and case["channel"] == "console"
    assert case["verdict"] == analysis.verdict == "illegal_collection"
    assert case["kb_version"] == analysis.kb_version
    assert case["signals"][0]["id"] == analysis.signals[0].id
    assert case["throttled"] is False


def test_nothing_personal_reaches_the_database_files(tmp_path, store, analyzer):
    store.log_case(NewCase("console", "user-1", MESSAGE, analyzer.analyze(MESSAGE)))
    store.log_case(NewCase("console", "user-1", MESSAGE, None, throttled=True))
    raw = _all_bytes(tmp_path)  # the database, its WAL and shared-memory files
    for secret in PERSONAL:
        assert secret.encode() not in raw, secret
    assert b"user-1" not in raw  # user ids are stored as keyed hashes
    assert "[身份证号]".encode() in raw


def test_raw_text_is_stored_only_when_asked(tmp_path, analyzer):
    s = CaseStore(tmp_path / "raw.db", b"k" * 32, store_raw_text=True)
    s.log_case(NewCase("console", "u", MESSAGE, analyzer.analyze(MESSAGE)))
    s.close()
    assert b"13812345678" in _all_bytes(tmp_path)


def test_wal_secure_delete_and_migrations(tmp_path, store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert migrations.pending(store.db) == []
    again = CaseStore(tmp_path / "cases.db", b"k" * 32)  # re-opening applies nothing twice
    assert again.count() == 0
    again.close()


def test_duplicate_delivery_is_logged_once(store, analyzer):
    key = store.message_key("telegram", "chat-1", "42")
    first = store.log_case(NewCase("telegram", "u", "晚上吃饭吗", analyzer.analyze("晚上吃饭吗"), key))
    second = store.log_case(NewCase("telegram", "u", "晚上吃饭吗", analyzer.analyze("晚上吃饭吗"), key))
    assert first is not None and second is None
    assert store.count() == 1


def test_delete_user_cases_overwrites_them(tmp_path, store, analyzer):
    marker = "独一无二的标记文字"
    store.log_case(NewCase("console", "alice", marker, analyzer.analyze(marker)))
    store.log_case(NewCase("console", "bob", "晚上吃饭吗", None))
    assert store.delete_user_cases("alice") == 1
    assert store.count() == 1
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert marker.encode() not in _all_bytes(tmp_path)


def test_feedback(store, analyzer):
    case_id = store.log_case(NewCase("console", "u", "晚上吃饭吗", analyzer.analyze("晚上吃饭吗")))
    assert store.set_feedback(case_id, "down")
    assert store.get_case(case_id)["feedback"] == "down"
    assert not store.set_feedback(999, "up")
    assert not store.set_feedback(case_id, "up", user_id="someone-else")  # only the asker rates
    assert store.get_case(case_id)["feedback"] == "down"
    assert store.set_feedback(case_id, "up", user_id="u")
    assert store.get_case(case_id)["feedback"] == "up"


def test_integrity(store):
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO cases (created_at, channel, kind, verdict) VALUES ('x','y','z','w')")


def test_database_files_are_private(tmp_path, store, analyzer):
    import stat

    store.log_case(NewCase("console", "u", "晚上吃饭吗", analyzer.analyze("晚上吃饭吗")))
    for path in tmp_path.iterdir():
        if path.name.startswith("cases.db"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name

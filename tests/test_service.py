import pytest

from bot.service import EMPTY_REPLY, THROTTLED_NOTICE, Incoming, Service
from bot.store import CaseStore


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def parts(tmp_path, analyzer):
    store = CaseStore(tmp_path / "cases.db", b"k" * 32)
    clock = FakeClock()
    service = Service(analyzer, store, user_rate_limit=3, raw_text_ttl_minutes=1, clock=clock)
    yield service, store, clock
    store.close()


def msg(text, user="u1", chat="c1", message_id=None):
    return Incoming("telegram", user, chat, text, message_id)


def test_flood_gets_one_notice_then_silence_and_nothing_is_lost(parts):
    service, store, clock = parts
    answers = [service.handle(msg(f"第{i}条：再不还钱就爆你通讯录")) for i in range(8)]
    assert [a is not None for a in answers[:3]] == [True, True, True]
    assert answers[3] is not None and answers[3].text == THROTTLED_NOTICE
    assert answers[4:] == [None, None, None, None]
    assert store.count() == 8  # every message logged; five as throttled
    throttled = store.db.execute("SELECT count(*) FROM cases WHERE throttled = 1").fetchone()[0]
    assert throttled == 5
    # Another user is not slowed down by the flood.
    assert service.handle(msg("晚上吃饭吗", user="u2", chat="c2")) is not None
    clock.now += 61  # a new window
    assert service.handle(msg("上门催收合法吗")).analysis is not None


def test_follow_up_details_uses_the_chats_last_case_within_the_ttl(parts):
    service, _, clock = parts
    first = service.handle(msg("【XX金融】我司将安排专员上门走访核实"))
    details = service.handle(msg("详细"))
    assert details.text == first.reply.details and len(details.text) > 50
    clock.now += 61  # RAW_TEXT_TTL_MINUTES=1 has passed: the raw text is forgotten
    assert "重新粘贴" in service.handle(msg("详细")).text


def test_redelivered_message_is_answered_the_same_and_logged_once(parts):
    service, store, _ = parts
    one = service.handle(msg("再不还钱就爆你通讯录", message_id="77"))
    two = service.handle(msg("再不还钱就爆你通讯录", message_id="77"))
    assert one.text == two.text and two.duplicate
    assert store.count() == 1


def test_empty_message_gets_a_hint_and_no_case(parts):
    service, store, _ = parts
    assert service.handle(msg("  \u200b ")).text == EMPTY_REPLY
    assert store.count() == 0


def test_forget_user_deletes_only_their_cases(parts):
    service, store, _ = parts
    service.handle(msg("晚上吃饭吗", user="alice", chat="a"))
    service.handle(msg("晚上吃饭吗", user="bob", chat="b"))
    assert service.forget_user("alice", "a") == 1
    assert store.count() == 1


def test_follow_up_steps_and_number_question(parts):
    service, _, _ = parts
    service.handle(msg("【XX金融】请联系催收专员13812345678，或登录 http://pay-xx.cc 还款，我司将上门"))
    steps = service.handle(msg("怎么办"))
    assert steps.text.startswith("怎么办：\n1. ")
    number = service.handle(msg("这个号码是真的吗？"))
    assert "13812345678" in number.text and "12368" in number.text


def test_answer_topic_and_feedback(parts):
    service, store, _ = parts
    out = service.answer_topic("home-visit")
    assert out.reply.headline is None and out.reply.answer and len(out.reply.steps) >= 3
    assert service.answer_topic("nope") is None
    case = service.handle(msg("晚上吃饭吗"))
    assert service.record_feedback(case.case_id, helpful=False)
    assert store.get_case(case.case_id)["feedback"] == "down"


def test_complaint_drafts_from_memory_and_expiry(parts):
    service, _, clock = parts
    assert service.complaint_drafts("c1") is None
    service.handle(msg("再不还钱就爆你通讯录，打断你的腿"))
    service.handle(msg("你就是个老赖，明天去你单位闹"))
    one = service.complaint_drafts("c1", "110")
    both = service.complaint_drafts("c1", "110", all_recent=True)
    assert "老赖" in one[0].body and "打断你的腿" not in one[0].body
    assert "老赖" in both[0].body and "打断你的腿" in both[0].body
    clock.now += 61
    assert service.complaint_drafts("c1") is None


def test_complaint_drafts_for_one_case_and_evidence_leaves_questions_out(parts):
    service, _, _ = parts
    first = service.handle(msg("再不还钱就爆你通讯录，打断你的腿"))
    service.handle(msg("你就是个老赖，明天去你单位闹"))
    service.handle(msg("他们说要爆我通讯录，合法吗"))
    [older] = service.complaint_drafts("c1", "110", case_id=first.case_id)
    assert "打断你的腿" in older.body and "老赖" not in older.body
    assert service.complaint_drafts("c1", case_id=999999) is None
    [both] = service.complaint_drafts("c1", "110", all_recent=True)
    assert "打断你的腿" in both.body and "老赖" in both.body and "合法吗" not in both.body


@pytest.mark.parametrize(
    "pragma",
    ["PRAGMA query_only = ON", "PRAGMA max_page_count = 1"],
    ids=["read-only", "disk-full"],
)
def test_a_refusing_database_still_answers_and_logs_a_warning(parts, caplog, pragma):
    service, store, _ = parts
    store.db.execute(pragma)  # SQLite then refuses writes exactly as on a read-only or full disk
    # A long message needs new pages, which a database at its page limit cannot get.
    out = service.handle(msg("再不还钱就爆你通讯录。" + "你" * 8000, message_id="9"))
    assert out is not None and out.analysis.verdict == "illegal_collection" and not out.duplicate
    assert out.case_id is None  # so no channel offers feedback on a case that does not exist
    assert "case not logged" in caplog.text


def test_padding_before_the_text_does_not_make_it_empty(parts):
    service, store, _ = parts
    out = service.handle(msg(" " * 250 + "\u200b" * 250 + "再不还钱就爆你通讯录"))
    assert out.analysis is not None and out.analysis.verdict == "illegal_collection"
    assert store.count() == 1


def test_sweep_forgets_expired_text_of_chats_that_went_quiet(parts):
    service, _, clock = parts
    service.handle(msg("再不还钱就爆你通讯录", user="quiet", chat="quiet"))
    assert service._recent and service._rates
    clock.now += 61  # past RAW_TEXT_TTL_MINUTES=1, and the rate window
    service.sweep()
    assert "quiet" not in service._recent and "quiet" not in service._rates

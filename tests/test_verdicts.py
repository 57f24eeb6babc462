"""Table-driven verdicts: tests/data/verdict_cases.yaml, written apart from the knowledge base.

Every bug found adds a row there.
"""

import pytest

from bot.settings import Settings
from tests.helpers import verdict_cases

CASES = verdict_cases()


def test_the_table_covers_every_verdict_well():
    counts = {}
    for case in CASES:
        counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    assert len(CASES) >= 40
    assert set(counts) == {"scam", "illegal_collection", "pressure", "legal_notice", "reminder", "unrelated"}
    assert min(counts.values()) >= 5


@pytest.mark.parametrize("case", CASES, ids=[f"{i:03d}-{c['verdict']}" for i, c in enumerate(CASES)])
def test_verdict(analyzer, case):
    result = analyzer.analyze(case["text"])
    assert result.verdict == case["verdict"], [h.id for h in result.signals]
    assert result.kind == case.get("kind", "sms")


def test_evidence_is_a_substring_of_the_original(analyzer):
    for case in CASES:
        result = analyzer.analyze(case["text"])
        for hit in result.signals:
            assert hit.evidence and hit.evidence in case["text"], (hit.id, hit.evidence)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("他们说要爆我通讯录", "illegal_collection"),
        ("上门催收合法吗", "unrelated"),
        ("律师函短信是真的吗", "unrelated"),
        ("会坐牢吗", "unrelated"),
    ],
)
def test_questions_get_the_verdict_of_the_situation_they_describe(analyzer, text, verdict):
    result = analyzer.analyze(text)
    assert result.kind == "question"
    assert result.verdict == verdict


def test_general_question_leads_with_the_answer(analyzer):
    result = analyzer.analyze("上门催收合法吗")
    assert result.reply.headline is None
    assert result.reply.answer
    assert result.topics and result.topics[0].id == "home-visit"


def test_a_real_court_never_asks_for_money(analyzer):
    text = "【12368】(2026)京0105民初23145号案件已立案，请于今日将诉讼费转入指定账户，否则强制执行。"
    result = analyzer.analyze(text)
    assert result.verdict == "scam"
    assert "legal_notice" not in result.alternatives


def test_official_anti_fraud_advice_is_not_a_scam(analyzer):
    result = analyzer.analyze("【国家反诈中心】凡是要求你把钱转入安全账户的，都是诈骗！")
    assert result.verdict == "unrelated"


def test_crisis_is_answered_first_and_verdict_stays_that_of_the_content(analyzer):
    result = analyzer.analyze("催收天天打电话骂我，还说要爆我通讯录，我真的不想活了")
    assert result.crisis
    assert result.verdict == "illegal_collection"
    text = result.reply.as_text()
    assert text.startswith("💛")
    assert "12356" in text
    assert result.topics[0].id == "crisis-support"  # the topic list leads with care too


@pytest.mark.parametrize(
    "text",
    [
        "每天一睁眼就是几十个催收电话，不知道还有什么意义",
        "借了八个平台，以贷养贷到现在，真的撑不住了",
        "看不到一点希望，家里人也不理解我",
        "欠了这么多钱，我觉得自己活着就是个累赘",
    ],
)
def test_quieter_despair_also_gets_care(analyzer, text):
    result = analyzer.analyze(text)
    assert result.crisis
    assert result.topics[0].id == "crisis-support"


@pytest.mark.parametrize("text", ["上门催收有什么意义吗", "这个月还不上，有什么办法", "催收说要上门"])
def test_ordinary_worries_are_not_crises(analyzer, text):
    assert not analyzer.analyze(text).crisis


def test_empty_and_garbage_input(analyzer):
    for text in ["", "   ", "\x00\x01", "😀" * 500, "\ud800abc"]:
        result = analyzer.analyze(text)
        assert result.verdict == "unrelated"


def test_crisis_without_anything_to_judge_gets_care_not_an_all_clear(analyzer):
    result = analyzer.analyze("欠了二十多万网贷，真的不想活了")
    assert result.crisis
    text = result.reply.as_text()
    assert text.startswith("💛") and "12356" in text
    assert "✅" not in text and "未发现" not in text


# Topics whose example messages may rightly carry no collection or scam sign (a lender's acknowledgement, a
# lawful offer of an extension, a cry for help).
_NOTHING_TO_JUDGE = {
    "complaint-channels",
    "crisis-support",
    "negotiate",
    "statute-limitations",
    "legit-reminder",
}


def test_the_knowledge_bases_own_example_messages_are_judged(kb, analyzer):
    for topic in kb.topics:
        for message in topic.messages:
            verdict = analyzer.analyze(message).verdict
            if topic.id.startswith("scam-"):
                assert verdict == "scam", (topic.id, message)
            elif topic.id not in _NOTHING_TO_JUDGE:
                assert verdict != "unrelated", (topic.id, message)


def test_an_all_clear_for_debt_talk_that_no_signal_explains_is_unsure(analyzer):
    unknown_wording = analyzer.analyze("关于那笔欠款的事情，麻烦抽空回个电话。")
    assert unknown_wording.verdict == "unrelated" and not unknown_wording.signals
    # Operators see it before the sure all-clears: the queue takes cases below the default LOW_CONFIDENCE.
    assert unknown_wording.confidence < Settings.model_fields["LOW_CONFIDENCE"].default
    chat = analyzer.analyze("今晚加班，晚饭不用等我了")
    assert chat.verdict == "unrelated" and chat.confidence >= 0.9

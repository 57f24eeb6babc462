"""Scam phrases that a message warns against are not scam signs."""

import pytest

from bot.core.detect import CANCELLING_CUES, cue_before


@pytest.mark.parametrize(
    ("text", "phrase", "warned"),
    [
        ("切勿向任何个人账户转账", "个人账户", True),
        ("本公司不会以任何理由要求您向个人账户还款", "个人账户", True),
        ("请勿将验证码告诉他人", "将验证码", True),
        ("请将验证码告诉客服", "验证码", False),
        ("不要告诉家人，把钱转到安全账户", "转到安全账户", False),  # the cue is in another clause
        ("钱转到个人账户，不要声张", "个人账户", False),  # a cue after the phrase warns of nothing
    ],
)
def test_warning_cues_only_count_just_before_in_the_same_clause(text, phrase, warned):
    assert cue_before(text, text.index(phrase), CANCELLING_CUES["scam"]) is warned


def test_a_later_unwarned_request_still_counts(analyzer):
    result = analyzer.analyze("切勿相信陌生来电。要结清的话，今天把钱转到这个卡：6222 0000 1111 2222 333")
    assert result.verdict == "scam"
    warned = analyzer.analyze("【某某银行】切勿向任何个人账户转账，还款请通过官方App。")
    assert "scam.personal-account" not in {h.id for h in warned.signals}


def test_a_court_document_threatened_for_later_is_no_legal_notice(analyzer):
    threat = analyzer.analyze("再不还，立案之后就会有法院传票寄到你家。")
    assert "legal_notice" not in {h.verdict for h in threat.signals}
    notice = analyzer.analyze("【某某区人民法院】本院已向你电子送达开庭传票，请登录人民法院在线服务查看。")
    assert notice.verdict == "legal_notice"


def test_a_denial_inside_the_phrase_cancels_a_scam_sign(analyzer):
    ad = analyzer.analyze("【某某消费金融】官方App申请，放款前不收取任何费用。回T退订")
    assert not [h for h in ad.signals if h.verdict == "scam"]
    assert analyzer.analyze("放款前需要先交1000元保证金").verdict == "scam"


def test_a_spoofed_anti_fraud_sender_does_not_excuse_a_transfer_request(analyzer):
    result = analyzer.analyze("【96110】您的银行卡涉及诈骗资金，请立即将余额转入临时监管账户配合调查。")
    assert result.verdict == "scam"


def test_pinyin_spelled_to_dodge_filters_is_read_back_and_quoted_as_written(analyzer):
    result = analyzer.analyze("你的白tiao还没zhu销，会影响征xin，联系客服处理")
    assert result.verdict == "scam"
    quotes = [hit.evidence for hit in result.signals]
    assert any("tiao" in q or "zhu销" in q for q in quotes), quotes  # the user's own words, not 白条/注销


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("请登录 jiebei-fh.com 完成复核", "jiebei-fh.com"),
        ("我的邮箱是 xin@qq.com 谢谢", "xin@qq.com"),
        ("today好忙", "today"),
    ],
)
def test_pinyin_in_addresses_and_apart_from_chinese_is_left_alone(text, kept):
    from bot.core.dodges import detection_view
    from bot.core.normalize import normalize

    assert kept in detection_view(normalize(text)).text


def test_dots_between_characters_and_pinyin_typed_apart_are_read_back():
    from bot.core.dodges import detection_view
    from bot.core.normalize import normalize

    view = detection_view(normalize("你的京.东.白.条走内部tong dao可以停.催，在zhi fu bao转给专员"))
    assert (
        "京东白条" in view.text and "内部通道" in view.text and "停催" in view.text and "支付宝" in view.text
    )
    start = view.text.index("支付宝")
    assert view.quote(start, start + 3) == "zhi fu bao"  # evidence quotes what the user was sent
    assert "12.50" in detection_view(normalize("金额12.50元")).text  # a decimal point is no splitter

"""Scam phrases that a message warns against are not scam signs."""

import pytest

from bot.core.detect import is_warned_against


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
    assert is_warned_against(text, text.index(phrase)) is warned


def test_a_later_unwarned_request_still_counts(analyzer):
    result = analyzer.analyze("切勿相信陌生来电。要结清的话，今天把钱转到这个卡：6222 0000 1111 2222 333")
    assert result.verdict == "scam"
    warned = analyzer.analyze("【某某银行】切勿向任何个人账户转账，还款请通过官方App。")
    assert "scam.personal-account" not in {h.id for h in warned.signals}

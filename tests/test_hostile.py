"""Hostile input: the whole analysis returns a result for anything, quickly, and quotes only what was sent."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VERDICTS = {"scam", "illegal_collection", "pressure", "legal_notice", "reminder", "unrelated"}

_pieces = st.sampled_from(
    [
        "再不还钱就爆你通讯录", "转入安全账户", "(2026)京0105民初23145号", "12368", "【XX金融】", "尊敬的张伟",
        "13812345678", "6222 0212 3456 7890 123", "http://x.cc/a", "<b>粗体</b>", "*markdown* _x_", "&amp;",
        "\u202e", "\u200b", "\ud800", "\x00", "😀" * 5, "ＡＢＣ１２３", "還款逾期", " ", "\n",
    ]
)  # fmt: skip
hostile_text = st.lists(st.one_of(_pieces, st.text(max_size=20)), max_size=30).map("".join)


@given(hostile_text)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_gets_a_well_formed_result(analyzer, text):
    result = analyzer.analyze(text)
    assert result.verdict in VERDICTS
    assert 0.0 <= result.confidence <= 1.0
    for hit in result.signals:
        assert hit.evidence in text
    assert result.reply.as_text()
    result.as_dict()  # serialisable shape


@pytest.mark.parametrize(
    "text",
    [
        "1" * 200_000,
        "1," * 100_000,
        "a." * 100_000,
        "http://" + "a" * 200_000,
        "1元" * 100_000,
        "再不还钱就爆你通讯录。" * 20_000,
    ],
    ids=["digits", "digit-commas", "dots", "long-url", "amounts", "repeated-threat"],
)
def test_200kb_inputs_finish(analyzer, text):
    # A generous bound that only catches super-linear blow-ups (the real figure is a benchmark number).
    started = time.perf_counter()
    result = analyzer.analyze(text)
    assert time.perf_counter() - started < 20
    assert result.verdict in VERDICTS

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.normalize import _one_pass, is_settled, normalize

# Text the way it arrives: CJK, full-width forms, ASCII, emoji, controls, zero-width and bidi marks,
# lone surrogates.
_alphabet = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(
        ["\u200b", "\u200d", "\ufeff", "\u202e", "\u3000", "\n", "\t", "\x00", "\x07", "\ud800", "😀", "︎"]
    ),
    st.characters(),
)
messy_text = st.text(alphabet=_alphabet, max_size=200)


@given(messy_text)
@settings(max_examples=300, deadline=None)
def test_normalize_never_raises_and_is_idempotent(text):
    once = normalize(text)
    assert normalize(once.text).text == once.text
    assert len(once.offsets) == len(once.text)
    assert all(0 <= o < len(text) for o in once.offsets)


@given(messy_text)
@settings(max_examples=300, deadline=None)
def test_the_settled_check_says_exactly_when_another_pass_changes_nothing(text):
    # normalize() skips its checking pass when is_settled() says so of a pass's output (spaces squeezed);
    # a wrong "settled" would break idempotence.
    first, _ = _one_pass(text, list(range(len(text))))
    for candidate in (first, normalize(text).text):
        again, _ = _one_pass(candidate, list(range(len(candidate))))
        if is_settled(candidate):
            assert again == candidate


def test_unsettled_text_is_recognised():
    assert is_settled("催收短信, abc")
    assert not is_settled("催收短信，abc")  # full-width comma folds
    assert not is_settled("催收簡訊")  # Traditional
    assert not is_settled("ＡＢＣ")
    assert not is_settled("a\u200bb")
    assert is_settled(_one_pass(" ", [0])[0])  # a lone space squeezes to nothing, which is settled


@given(messy_text, st.integers(0, 199), st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_any_span_maps_back_into_the_original(text, start, length):
    norm = normalize(text)
    if not norm.text:
        return
    start = min(start, len(norm.text) - 1)
    end = min(len(norm.text), start + length)
    a, b = norm.original_span(start, end)
    assert 0 <= a < b <= len(text)


def test_full_width_traditional_and_hidden_characters_fold_away():
    assert normalize("ＱＱ號碼１２３").text == "qq号码123"
    assert normalize("上\u200b门\u200d催\ufeff收").text == "上门催收"
    assert normalize("爆 你 通 讯 录").text == "爆你通讯录"
    assert normalize("還款  請  登錄 APP").text == "还款请登录app"
    assert normalize("hello   world").text == "hello world"


def test_evidence_quotes_the_original_characters():
    original = "您的帳戶將被凍結，請聯繫ＱＱ客服"
    norm = normalize(original)
    start = norm.text.index("冻结")
    assert norm.quote(start, start + 2) == "凍結"
    q = norm.text.index("qq")
    assert norm.quote(q, q + 2) == "ＱＱ"

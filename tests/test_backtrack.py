"""The Python translations of the signal patterns (bot/core/backtrack.py) must find what RE2 finds."""

from __future__ import annotations

import functools
import re

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.backtrack import HAN_RANGES, Untranslatable, compile_short, translate
from bot.core.prefilter import required_literals
from bot.knowledge import load_knowledge


def test_han_ranges_are_exactly_re2s_han_script():
    han = re2.compile(r"\p{Han}")
    in_ranges = [False] * 0x110000
    for first, last in HAN_RANGES:
        in_ranges[first : last + 1] = [True] * (last - first + 1)
    wrong = [
        cp
        for cp in range(0x110000)
        if not 0xD800 <= cp <= 0xDFFF and (han.fullmatch(chr(cp)) is not None) != in_ranges[cp]
    ]
    assert wrong == []


def _re2_span(pattern: str, text: str) -> tuple[int, int] | None:
    data = text.encode()
    match = re2.compile(pattern).search(data)
    if match is None:
        return None
    begin, end = match.span()
    return len(data[:begin].decode()), len(data[:end].decode())


def _python_span(pattern: str, text: str) -> tuple[int, int] | None:
    match = re.compile(translate(pattern)).search(text)
    return None if match is None else match.span()


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("还款$", "请还款\n"),  # RE2's $ is the very end; Python's would also match before a final newline
        ("还款$", "请还款"),
        (r"[\p{Han}x]{2,3}号", "(2025)京0105民初x号"),  # \p{Han} inside a class
        (r"\p{Han}{2}法院", "北京市朝阳区人民法院"),
        (r"[(\[〔][0-9]{4}[)\]〕]", "案号〔2025〕"),  # a "[" inside a class is a literal in RE2
        ("[]a]{1,3}b", "]]ab"),  # "]" first in a class is a literal in both
        ("[^]a]b", "]b xb"),
        ("逾期[0-9]+天", "已逾期12天"),
        (r"a\.b|a\+b", "a+b"),
    ],
)
def test_translation_finds_the_same_first_match(pattern, text):
    assert _python_span(pattern, text) == _re2_span(pattern, text)


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i)催收",  # flags
        "(?P<x>催收)",  # named group
        r"\d+天",  # \d is ASCII in RE2, Unicode in Python
        r"\p{Latin}",
        "[a-z0-9-]*(tuikuan|lipei)",  # unbounded class at the start: quadratic backtracking
        "(ab)+c",  # unbounded group
        "还款.*链接",  # unbounded any-character
        "[0-9x ]{16,}转到",  # an unbounded run of digits opening the pattern
        "[0-9",
    ],
)
def test_risky_or_foreign_syntax_is_refused(pattern):
    with pytest.raises(Untranslatable):
        translate(pattern)
    assert compile_short(pattern) is None


def test_most_knowledge_patterns_translate(kb):
    patterns = [p for c in kb.signals for p in c.signal.patterns]
    translated = [p for p in patterns if compile_short(p) is not None]
    # The rest (links, account numbers: unbounded runs) stay with RE2; a sudden drop means a broken translator.
    assert len(translated) >= 0.9 * len(patterns)


@functools.cache
def _patterns_and_pieces() -> tuple[list[tuple[str, re.Pattern[str]]], list[str]]:
    kb = load_knowledge()  # not the fixture: hypothesis would print all of it with a failing example
    patterns = [p for c in kb.signals for p in c.signal.patterns]
    pairs = [(p, regex) for p in patterns if (regex := compile_short(p)) is not None]
    pieces = {lit for p in patterns for clause in required_literals(p) or [] for lit in clause}
    return pairs, sorted(pieces) + list("，。！？,.!? \n的了你我他0123456789xabc*-:：()（）【】[]〔〕")


@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_every_translated_pattern_agrees_with_re2_on_generated_text(data):
    pairs, pieces = _patterns_and_pieces()
    text = "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=16)))
    for pattern, regex in pairs:
        found = regex.search(text)
        assert (None if found is None else found.span()) == _re2_span(pattern, text), (pattern, text)


def test_every_translated_pattern_agrees_with_re2_on_every_knowledge_text(kb):
    pairs, _ = _patterns_and_pieces()
    texts = [e for t in kb.topics for e in t.examples] + [e for c in kb.signals for e in c.signal.examples]
    data = [(t, t.encode()) for t in texts]
    for pattern, regex in pairs:
        reference = re2.compile(pattern)
        for text, raw in data:
            found, expected = regex.search(text), reference.search(raw)
            assert (found is None) == (expected is None), (pattern, text)
            if found is not None:
                assert found.span() == (
                    len(raw[: expected.start()].decode()),
                    len(raw[: expected.end()].decode()),
                )

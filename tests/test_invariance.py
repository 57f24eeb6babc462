"""A message rewritten in full-width or Traditional characters, with zero-width characters or stray spaces
between Chinese characters, gets the same verdict as the original."""

import random

import opencc
import pytest

from tests.helpers import verdict_cases

TEXTS = [c["text"] for c in verdict_cases()]
_S2T = opencc.OpenCC("s2t")


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in text)


def traditional(text: str) -> str:
    return _S2T.convert(text)


def zero_width(text: str) -> str:
    return "\u200b".join(text)


def stray_spaces(text: str) -> str:
    rng = random.Random(len(text))
    return "".join(c + (" " if "\u4e00" <= c <= "\u9fff" and rng.random() < 0.3 else "") for c in text)


@pytest.mark.parametrize("rewrite", [full_width, traditional, zero_width, stray_spaces])
def test_rewritten_messages_keep_their_verdict(analyzer, rewrite):
    same = sum(analyzer.analyze(rewrite(t)).verdict == analyzer.analyze(t).verdict for t in TEXTS)
    assert same / len(TEXTS) >= 0.95, f"{rewrite.__name__}: {same}/{len(TEXTS)}"

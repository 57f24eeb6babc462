"""Normalize user text for matching while keeping a map back to what the user actually sent.

Patterns and entity finders run on the normalized text (NFKC, Simplified, lower-case ASCII, no zero-width or
control characters, no stray spaces between Chinese characters); evidence is quoted from the original text
through ``Normalized.original_span``.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import opencc

# Characters that only hide words from a matcher: zero-width joiners, bidi marks, BOM, variation selectors.
_DROP_CATEGORIES = {"Cf", "Cs", "Co", "Cn"}
_VARIATION_SELECTORS = range(0xFE00, 0xFE10)
_MAX_PASSES = 3


@functools.cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@dataclass(frozen=True)
class Normalized:
    original: str
    text: str
    # offsets[i] is the index in ``original`` of the character that produced ``text[i]``.
    offsets: tuple[int, ...]
    # ends[i], when given, is where that stretch of ``original`` ends (one character of text standing for
    # several of the original, as in a detection view's 条 for "tiao"); else the character after offsets[i].
    ends: tuple[int, ...] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of ``text`` to the smallest span of ``original`` that produced it."""
        if not self.text or start >= end:
            return (0, 0)
        first = self.offsets[start]
        if self.ends is not None:
            return first, self.ends[end - 1]
        # Extend to the end of the last original character (an NFKC expansion maps many to one).
        return first, self.offsets[end - 1] + 1

    def quote(self, start: int, end: int) -> str:
        a, b = self.original_span(start, end)
        return self.original[a:b]


def _is_cjk(ch: str) -> bool:
    return ch > "\u2e7f" and unicodedata.category(ch)[0] in "LP"  # CJK letters and CJK/full-width punctuation


@functools.lru_cache(maxsize=65536)
def _clean_char(ch: str) -> str:
    """NFKC, lower-case; invisible characters vanish, controls and line breaks become spaces."""
    cat = unicodedata.category(ch)
    if cat in _DROP_CATEGORIES or ord(ch) in _VARIATION_SELECTORS:
        return ""
    if cat == "Cc" or cat in ("Zl", "Zp"):
        return " "
    out = []
    for c in unicodedata.normalize("NFKC", ch).lower():
        if unicodedata.category(c) in _DROP_CATEGORIES:
            continue
        out.append(" " if c.isspace() or unicodedata.category(c) == "Cc" else c)
    return "".join(out)


def _clean_chars(text: str, offsets: list[int]) -> tuple[list[str], list[int]]:
    chars: list[str] = []
    where: list[int] = []
    for ch, origin in zip(text, offsets, strict=True):
        for out in _clean_char(ch):
            chars.append(out)
            where.append(origin)
    return chars, where


def _to_simplified(chars: list[str]) -> list[str]:
    joined = "".join(chars)
    converted = _t2s().convert(joined)
    if len(converted) == len(joined):
        return list(converted)
    # A phrase rule changed the length: convert character by character so the offset map stays exact.
    out = []
    for ch in chars:
        c = _t2s().convert(ch)
        out.append(c if len(c) == 1 else ch)
    return out


def _squeeze_spaces(chars: list[str], where: list[int]) -> tuple[str, tuple[int, ...]]:
    """Collapse whitespace; drop it entirely next to Chinese text, where it is never meaningful."""
    out: list[str] = []
    out_where: list[int] = []
    n = len(chars)
    i = 0
    while i < n:
        if chars[i] != " ":
            out.append(chars[i])
            out_where.append(where[i])
            i += 1
            continue
        j = i
        while j < n and chars[j] == " ":
            j += 1
        before = out[-1] if out else ""
        after = chars[j] if j < n else ""
        if before and after and not _is_cjk(before) and not _is_cjk(after):
            out.append(" ")
            out_where.append(where[i])
        i = j
    return "".join(out), tuple(out_where)


# Characters that _clean_char returns unchanged, learnt as texts arrive (bounded: a flood of rare characters
# only stops the learning, never the answer).
_SETTLED_CHARS: set[str] = set()
_MAX_SETTLED = 1 << 16


def is_settled(text: str) -> bool:
    """True when another pass would return ``text`` unchanged: every character is its own cleaned form and
    OpenCC changes nothing (spaces are already squeezed, and squeezing twice changes nothing). Checking is
    several times cheaper than the pass itself."""
    for ch in set(text) - _SETTLED_CHARS:
        if _clean_char(ch) != ch:
            return False
        if len(_SETTLED_CHARS) < _MAX_SETTLED:
            _SETTLED_CHARS.add(ch)
    return _t2s().convert(text) == text


def _one_pass(text: str, offsets: list[int]) -> tuple[str, tuple[int, ...]]:
    chars, where = _clean_chars(text, offsets)
    chars = _to_simplified(chars)
    return _squeeze_spaces(chars, where)


def normalize(text: str) -> Normalized:
    """Normalize ``text``; never raises, and ``normalize(normalize(t).text).text == normalize(t).text``."""
    if not isinstance(text, str):
        raise TypeError("normalize expects str")
    result, offsets = _one_pass(text, list(range(len(text))))
    # Conversions can feed each other (NFKC output that OpenCC maps again); iterate to a fixed point.
    for _ in range(_MAX_PASSES):
        if is_settled(result):
            break
        again, again_offsets = _one_pass(result, list(offsets))
        if again == result:
            break
        result, offsets = again, again_offsets
    return Normalized(original=text, text=result, offsets=offsets)


@functools.lru_cache(maxsize=8192)
def normalized_text(text: str) -> str:
    """``normalize(text).text``, remembered: for knowledge-base texts, which start-up reads several times over
    (the topic index, the tokenizer's corpus, synonyms), never for user messages."""
    return normalize(text).text

"""Signal patterns (RE2 syntax) translated for Python's ``re``, which runs them on short texts.

Why: RE2 builds its DFA lazily, state by state, as texts explore it. The patterns' "[^。]{0,40}" windows
give it many states, so on text it has not seen, a pattern's search cost 100–1,500 µs until its states were
built: about 450 µs a message on first sight, against about 20 µs for ``re``, which needs no warm-up.
Backtracking is only bounded when texts are short and no repetition is unbounded over a class that what
follows can also match, so:
- the detector uses ``re`` only on texts up to ``SHORT_TEXT`` characters (an SMS and a comment) and RE2,
  linear in the text, on longer ones;
- ``translate`` refuses a pattern with an unbounded repetition over anything but a literal or a class of digits,
  or over one at the start of an alternative, and RE2 runs that pattern on every text. ``benchmarks/backtrack_worst.py`` prints each pattern's time on
  crafted worst-case texts.

A translated pattern finds the same first match as RE2: both take the leftmost match and, among those,
prefer alternatives in order (RE2 emulates Perl's leftmost-first semantics). Tests check this on every
knowledge text and on generated ones.
"""

from __future__ import annotations

import re

SHORT_TEXT = 1000  # characters of normalized text

# RE2's \p{Han} (Unicode script Han), as code point ranges; a test checks them against RE2 itself.
HAN_RANGES = (
    (0x2E80, 0x2E99),
    (0x2E9B, 0x2EF3),
    (0x2F00, 0x2FD5),
    (0x3005, 0x3005),
    (0x3007, 0x3007),
    (0x3021, 0x3029),
    (0x3038, 0x303B),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFA6D),
    (0xFA70, 0xFAD9),
    (0x16FE2, 0x16FE3),
    (0x16FF0, 0x16FF1),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B739),
    (0x2B740, 0x2B81D),
    (0x2B820, 0x2CEA1),
    (0x2CEB0, 0x2EBE0),
    (0x2EBF0, 0x2EE5D),
    (0x2F800, 0x2FA1D),
    (0x30000, 0x3134A),
    (0x31350, 0x323AF),
)
_HAN_ITEMS = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in HAN_RANGES)

# Escapes with the same meaning in both syntaxes: escaped punctuation.
_PLAIN_ESCAPES = frozenset(r".[](){}*+?|^$\/-:：")
_DIGIT_CLASS = re.compile(r"\[[0-9一二三四五六七八九十两零〇百千万x*. -]*\]")


class Untranslatable(ValueError):
    """The pattern uses syntax this translation does not cover, or could backtrack badly."""


def translate(pattern: str) -> str:
    """``pattern`` (RE2 syntax) as a Python ``re`` pattern with the same matches; raises ``Untranslatable``."""
    out: list[str] = []
    in_class = False
    class_start = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            escaped = pattern[i + 1 : i + 2]
            if pattern.startswith(r"\p{Han}", i):
                out.append(_HAN_ITEMS if in_class else f"[{_HAN_ITEMS}]")
                i += len(r"\p{Han}")
                continue
            if escaped not in _PLAIN_ESCAPES:  # also a backslash at the very end ("" is not in the set)
                raise Untranslatable(f"escape \\{escaped} is not translated")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]" and i > class_start + 1:
                in_class = False
            elif ch == "[":
                out.append("\\[")  # a literal "[" in RE2; Python would warn of a nested set
                i += 1
                continue
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class, class_start = True, i
            if pattern.startswith("[^", i) or pattern.startswith("[]", i):
                class_start = i + 1  # a "]" right after "[" or "[^" is a literal in both
        elif ch == "(" and pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
            raise Untranslatable("flags and named groups are not translated")
        elif ch == "$":
            out.append(r"\Z")  # RE2's $ is the end of the text; Python's also matches before a final "\n"
            i += 1
            continue
        elif ch in "*+" or (ch == "{" and re.match(r"\{\d+,\}", pattern[i:])):
            _check_unbounded(pattern, i)
        out.append(ch)
        i += 1
    if in_class:
        raise Untranslatable("unterminated class")
    return "".join(out)


def _check_unbounded(pattern: str, at: int) -> None:
    """An unbounded repetition may only repeat one literal character or a class of digits: anything wider can
    make backtracking retry the same characters from every start."""
    before = pattern[:at]
    if before.endswith("]"):
        start = before.rfind("[")
        # A run of digits is safe after a literal ("逾期[0-9]+天"), not at the start of an alternative, where
        # every start inside a long run would try the whole run again.
        if start > 0 and _DIGIT_CLASS.fullmatch(before[start:]) and pattern[start - 1] not in "(|":
            return
        raise Untranslatable("unbounded repetition of a class")
    if before.endswith(")") or before.endswith("\\p{Han}") or not before:
        raise Untranslatable("unbounded repetition of a group")
    if before.endswith("."):
        raise Untranslatable("unbounded repetition of any character")


def compile_short(pattern: str) -> re.Pattern[str] | None:
    """The Python regex for short texts, or None when the pattern must stay with RE2."""
    try:
        return re.compile(translate(pattern))
    except (Untranslatable, re.error):
        return None

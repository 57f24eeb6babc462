"""Which signal patterns can match a text at all, from the literal words each one cannot match without.

"(缴纳|支付)[^。]{0,50}(后方可|才能)放款" cannot match a text that lacks 缴纳 and 支付, or lacks 后方可 and 才能,
or lacks 放款. One Aho-Corasick pass over such literals tells which patterns are still possible; only those
run. The alternative, RE2 sets of the patterns themselves, builds huge automata: every "[^。]{0,50}" window
multiplies the states, which cost ~1 ms a message to build over the first few hundred varied messages and
~100 MiB once built. Even an RE2 set of the plain literals builds its automaton lazily, ~400 µs a message on
text it has not seen; the Aho-Corasick automaton is built whole, in ~3 ms, and costs ~25 µs from the first
message on.

The reading of a pattern is deliberately partial: it understands literals, groups, alternation, classes and
repetition, and gives up (the pattern then always runs) on anything else, such as flags. Giving up costs
speed, never a match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import ahocorasick

# A clause is a set of literals of which every match contains at least one; a pattern needs all its clauses.
Clause = frozenset[str]

_REPEAT = re.compile(r"\{(\d+)(,\d*)?\}")
_ESCAPED_CLASSES = frozenset("dDwWsSpPbBAzCx")  # escapes read as "some character" (\x: not worth decoding)


class _Unreadable(Exception):
    """The pattern uses syntax this reader does not model."""


@dataclass(frozen=True)
class _Literal:
    char: str


@dataclass(frozen=True)
class _Opaque:  # a class, ".", an anchor or an escape like \d: some character(s), no literal
    pass


@dataclass(frozen=True)
class _Repeat:
    item: object
    at_least: int


@dataclass(frozen=True)
class _Alternation:
    branches: tuple[tuple[object, ...], ...]


class _Reader:
    def __init__(self, pattern: str):
        self.pattern = pattern
        self.at = 0

    def alternation(self, closing: str | None) -> _Alternation:
        branches = [self.sequence()]
        while self.at < len(self.pattern) and self.pattern[self.at] == "|":
            self.at += 1
            branches.append(self.sequence())
        if closing is not None:
            if self.at >= len(self.pattern) or self.pattern[self.at] != closing:
                raise _Unreadable
            self.at += 1
        elif self.at != len(self.pattern):
            raise _Unreadable  # a stray ")"
        return _Alternation(tuple(branches))

    def sequence(self) -> tuple[object, ...]:
        items: list[object] = []
        while self.at < len(self.pattern) and self.pattern[self.at] not in "|)":
            char = self.pattern[self.at]
            if char in "*+?":
                items.append(self._repeated(items, 1 if char == "+" else 0))
                self.at += 1
            elif char == "{" and (repeat := _REPEAT.match(self.pattern, self.at)):
                items.append(self._repeated(items, int(repeat.group(1))))
                self.at = repeat.end()
            else:
                items.append(self.atom())
                continue
            if self.at < len(self.pattern) and self.pattern[self.at] == "?":
                self.at += 1  # a lazy repeat matches the same texts
        return tuple(items)

    @staticmethod
    def _repeated(items: list[object], at_least: int) -> _Repeat:
        if not items or isinstance(items[-1], _Repeat):
            raise _Unreadable
        return _Repeat(items.pop(), at_least)

    def atom(self) -> object:
        char = self.pattern[self.at]
        if char == "(":
            if self.pattern.startswith("(?:", self.at):
                self.at += 3
            elif self.pattern.startswith("(?P<", self.at):
                self.at = self.pattern.index(">", self.at) + 1
            elif self.pattern.startswith("(?", self.at):
                raise _Unreadable  # flags such as (?i) change what a literal matches
            else:
                self.at += 1
            return self.alternation(")")
        if char == "[":
            self._skip_class()
            return _Opaque()
        if char == "\\":
            if self.at + 1 >= len(self.pattern):
                raise _Unreadable
            escaped = self.pattern[self.at + 1]
            if escaped.isalnum():
                if escaped not in _ESCAPED_CLASSES:
                    raise _Unreadable  # \n, \t, \1...: not worth modelling
                self.at += 2
                if escaped in "pPx" and self.at < len(self.pattern) and self.pattern[self.at] == "{":
                    self.at = self.pattern.index("}", self.at) + 1
                elif escaped in "pP":
                    self.at += 1  # \pN: one-letter class name
                elif escaped == "x":
                    self.at += 2  # \xhh
                return _Opaque()
            self.at += 2
            return _Literal(escaped)
        self.at += 1
        if char in ".^$":
            return _Opaque()
        return _Literal(char)

    def _skip_class(self) -> None:
        end = self.at + 1
        if end < len(self.pattern) and self.pattern[end] == "^":
            end += 1
        if end < len(self.pattern) and self.pattern[end] == "]":
            end += 1  # a "]" first in a class is a literal
        while end < len(self.pattern) and self.pattern[end] != "]":
            if self.pattern[end] == "\\":
                end += 1
            elif self.pattern.startswith("[:", end):
                end = self.pattern.index(":]", end) + 1
            end += 1
        if end >= len(self.pattern):
            raise _Unreadable
        self.at = end + 1


def _clauses(node: object) -> list[Clause]:
    if isinstance(node, _Alternation):
        if len(node.branches) == 1:
            return _sequence_clauses(node.branches[0])
        either: set[str] = set()
        for branch in node.branches:
            clauses = _sequence_clauses(branch)
            if not clauses:
                return []  # one branch needs no literal, so the whole alternation needs none
            # The branch's most selective need stands for it: its shortest literal is the longest.
            either |= max(clauses, key=lambda clause: (min(map(len, clause)), -len(clause)))
        return [frozenset(either)]
    if isinstance(node, _Repeat):
        return _clauses(node.item) if node.at_least >= 1 else []
    if isinstance(node, _Literal):
        return [frozenset([node.char])]
    return []


def _sequence_clauses(items: Sequence[object]) -> list[Clause]:
    clauses: list[Clause] = []
    run: list[str] = []
    for item in items:
        if isinstance(item, _Literal):
            run.append(item.char)
            continue
        if run:
            clauses.append(frozenset(["".join(run)]))
            run = []
        clauses += _clauses(item)
    if run:
        clauses.append(frozenset(["".join(run)]))
    return clauses


def required_literals(pattern: str) -> list[Clause] | None:
    """What every match of ``pattern`` contains: for each clause, at least one of its literals. None when the
    pattern uses syntax not modelled here (it must then be run on every text)."""
    try:
        return _clauses(_Reader(pattern).alternation(None))
    except (_Unreadable, ValueError):  # ValueError: an unclosed "{", "}" or "[:" in str.index
        return None


def alternatives(pattern: str) -> list[list[Clause]] | None:
    """``required_literals`` for each top-level alternative of ``pattern``: a match needs all the clauses of
    one of them. Much sharper than the pattern's own clauses, which keep only one clause per alternative (a
    pattern of ten alternatives would otherwise run whenever any of ten short words occurs)."""
    try:
        top = _Reader(pattern).alternation(None)
    except (_Unreadable, ValueError):
        return None
    return [_sequence_clauses(branch) for branch in top.branches]


def _selectivity(clause: Clause) -> tuple[int, int]:
    return min(map(len, clause)), -len(clause)  # long literals are rare in a text; few of them, rarer still


class LiteralPrefilter:
    """The patterns (by index) that may match a text, in order.

    Each top-level alternative of a pattern is a unit that needs all its clauses. Clauses are bits of one
    integer; a unit is looked at only when a literal of its most selective clause occurs, and then it is
    complete when all its bits are among the bits the found literals set."""

    def __init__(self, patterns: Sequence[str]):
        self._pattern_of: list[int] = []  # each unit's pattern
        self._unit_bits: list[int] = []  # each unit's clauses, as bits
        self._always: set[int] = set()  # patterns with an alternative that needs nothing: run on every text
        bits_of: dict[str, int] = {}  # literal -> the clauses it satisfies
        key_units: dict[str, list[int]] = {}  # literal -> the units whose most selective clause holds it
        clause_count = 0
        for index, pattern in enumerate(patterns):
            for clauses in alternatives(pattern) or [[]]:
                if not clauses:
                    self._always.add(index)
                    continue
                unit = len(self._pattern_of)
                self._pattern_of.append(index)
                unit_bits = 0
                for clause in clauses:
                    bit = 1 << clause_count
                    clause_count += 1
                    unit_bits |= bit
                    for literal in clause:
                        bits_of[literal] = bits_of.get(literal, 0) | bit
                self._unit_bits.append(unit_bits)
                for literal in max(clauses, key=_selectivity):
                    key_units.setdefault(literal, []).append(unit)
        literals = list(bits_of)
        self._bits = [bits_of[literal] for literal in literals]
        self._keys = [tuple(key_units.get(literal, ())) for literal in literals]
        self._automaton = literal_automaton(literals)

    def candidates(self, text: str) -> list[int]:
        met = 0
        looked_at: set[int] = set()
        if self._automaton is not None:
            for found in {index for _, index in self._automaton.iter(text)}:
                met |= self._bits[found]
                looked_at.update(self._keys[found])
        unit_bits, pattern_of = self._unit_bits, self._pattern_of
        found_patterns = {pattern_of[u] for u in looked_at if unit_bits[u] & met == unit_bits[u]}
        return sorted(found_patterns | self._always)


def literal_automaton(literals: Sequence[str]) -> ahocorasick.Automaton | None:
    """An Aho-Corasick automaton whose matches give each literal's index; None for no literals (the library's
    ``iter`` refuses an automaton that was never built)."""
    if not literals:
        return None
    automaton = ahocorasick.Automaton()
    for index, literal in enumerate(literals):
        automaton.add_word(literal, index)
    automaton.make_automaton()
    return automaton

"""Run the knowledge base's signal patterns (RE2, linear time) over normalized text."""

from __future__ import annotations

from collections.abc import Iterable

from bot.core.models import SignalHit
from bot.core.normalize import Normalized
from bot.knowledge import CompiledSignal

# Evidence is a short quote; a pattern that matches a long stretch is cut to this many characters.
MAX_EVIDENCE = 60


def detect_signals(norm: Normalized, signals: Iterable[CompiledSignal]) -> tuple[SignalHit, ...]:
    """One hit per signal: the first of its patterns that matches, quoted from the original text."""
    hits = []
    for compiled in signals:
        for regex in compiled.regexes:
            match = regex.search(norm.text)
            if match is None or match.end() == match.start():
                continue
            start, end = match.start(), min(match.end(), match.start() + MAX_EVIDENCE)
            s = compiled.signal
            hits.append(SignalHit(s.id, s.label, s.verdict, s.weight, norm.quote(start, end), s.topics))
            break
    return tuple(hits)

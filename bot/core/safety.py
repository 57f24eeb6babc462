"""The safety check that runs before anything else: words of wanting to die or to hurt oneself.

The words are data (``knowledge/safety.yaml``, whose header explains the kinds); the reading is here. It errs
towards care: a needless word of care costs little, a missed cry for help may cost a life. What it leaves
out is what a counsellor would not call a cry for help: idioms (笑死, 想死你了), a collector's words quoted
in a forwarded SMS ("你怎么不去死"), and news or fiction told without worry for oneself.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Iterable, Iterator

import re2

from bot.core.prefilter import LiteralPrefilter
from bot.knowledge.load import expand_safety_pattern, without_lookarounds
from bot.knowledge.models import SafetyPhrases

# Quoted words are someone else's: a collector's SMS, unless a "quoted" pattern says otherwise.
_QUOTED = re.compile(r"“[^”]*”|「[^」]*」|『[^』]*』|\"[^\"]*\"|'[^']*'")
_QUOTE_MARKS = "“「『\"'"
_SENTENCE = re.compile(r"[^。!?\n]+")
_CLOSE_ONE_SAID = re.compile(
    r"(老公|老婆|老伴|丈夫|妻子|爸|妈|哥|姐|弟|妹|儿子|女儿|闺蜜|朋友|室友|同学|同事|男朋友|女朋友|表[哥姐弟妹]|堂[哥姐弟妹])"
    r"[^。]{0,12}(说|念叨|发了?句?|写了?|留言|留了?句)"
)
_COLLECTOR_SAID = re.compile(r"催收|短信|他们|对方|骂")
_PAUSES = re.compile(r"[。.,!?~…\s]")
_NEVER = re.compile(r"[^\s\S]")  # matches nothing, in re and RE2 alike

# Python's re tries each of the hundreds of alternatives at every position (~0.5 ms a message, seconds for a
# 200 KB one); RE2 runs them all in one linear pass but has no lookarounds. So RE2 finds what *may* be a
# crisis (the patterns without their lookarounds: more, never fewer, matches) and re confirms, sentence by
# sentence, only where it found something.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 64 << 20  # all crisis patterns together need more DFA memory than RE2's default 8 MB
_RE2_OPTIONS.log_errors = False


def _joined(groups: Iterable[SafetyPhrases], kind: str) -> str:
    patterns = [expand_safety_pattern(p) for g in groups if g.kind == kind for p in g.patterns]
    return "|".join(f"(?:{p})" for p in patterns)


def _compiled(groups: Iterable[SafetyPhrases], kind: str) -> re.Pattern[str]:
    joined = _joined(groups, kind)
    return re.compile(joined) if joined else _NEVER


class CrisisDetector:
    """Built once per knowledge base; :meth:`detect` is pure and thread-safe."""

    def __init__(self, groups: Iterable[SafetyPhrases]):
        groups = tuple(groups)
        self._crisis_pattern = _joined(groups, "crisis") or _NEVER.pattern
        self._maybe = re2.compile(without_lookarounds(self._crisis_pattern), _RE2_OPTIONS)
        # Cheaper still for the usual text, which has none of the words any crisis pattern needs: the union's
        # automaton costs ~75 µs a text even when warm, the word list a few.
        self._words_needed = LiteralPrefilter(
            [
                without_lookarounds(expand_safety_pattern(p))
                for g in groups
                if g.kind == "crisis"
                for p in g.patterns
            ]
        )
        idioms = _joined(groups, "idiom")  # no lookarounds (the loader checks): RE2 runs them as they are
        self._idioms = re2.compile(idioms, _RE2_OPTIONS) if idioms else None
        self._quoted = _compiled(groups, "quoted")
        self._agreeing = _compiled(groups, "agreeing")
        self._about_others = _compiled(groups, "about-others")
        self._me_too = _compiled(groups, "me-too")

    def warm_up(self) -> None:
        self._crisis  # noqa: B018  # compiles the confirming pattern now rather than for the first cry for help

    @functools.cached_property
    def _crisis(self) -> re.Pattern[str]:
        # Compiled on first need (~40 ms): most messages never get past the RE2 prefilter.
        return re.compile(self._crisis_pattern)

    def _bare_deaths(self, text: str) -> Iterator[int]:
        """Where a 死 stands that no idiom explains, in order (lazily: long texts)."""
        excuses = self._idioms.finditer(text) if self._idioms is not None else iter(())
        excuse = next(excuses, None)
        at = text.find("死")
        while at >= 0:
            while excuse is not None and excuse.end() <= at:
                excuse = next(excuses, None)
            if excuse is None or at < excuse.start():
                yield at
            at = text.find("死", at + 1)

    def _sentences_to_read(self, text: str) -> Iterator[str]:
        """The sentences where RE2 found something that may be a crisis, or a bare 死 stands, in order and
        lazily: on a long message the Python patterns read a few sentences, not thousands."""
        spots = heapq.merge((m.start() for m in self._maybe.finditer(text)), self._bare_deaths(text))
        sentences = _SENTENCE.finditer(text)
        sentence = next(sentences, None)
        for spot in spots:
            while sentence is not None and sentence.end() <= spot:
                sentence = next(sentences, None)
            if sentence is None:
                return
            if sentence.start() <= spot:
                yield sentence.group()
                sentence = next(sentences, None)  # each sentence once

    @staticmethod
    def _keep_close_ones(quote: re.Match[str]) -> str:
        """A quotation is dropped (a collector's words), unless someone close said it: "我老伴老念叨'我死了你们
        就清净了'" is a worry about them."""
        before = quote.string[max(0, quote.start() - 20) : quote.start()]
        if _CLOSE_ONE_SAID.search(before) and not _COLLECTOR_SAID.search(before):
            return "。" + quote.group()[1:-1] + "。"
        return "。"

    def _said(self, sentence: str) -> bool:
        cried = self._crisis.search(sentence) or next(self._bare_deaths(sentence), None) is not None
        return bool(cried) and bool(self._me_too.search(sentence) or not self._about_others.search(sentence))

    def _may_cry(self, text: str) -> bool:
        return bool(self._words_needed.candidates(text)) and self._maybe.search(text) is not None

    def detect(self, normalized_text: str) -> bool:
        stripped = _PAUSES.sub("", normalized_text)
        quoted = any(mark in normalized_text for mark in _QUOTE_MARKS)
        # The text without pauses matches whatever the text matches (the windows never span a pause), and more.
        if not quoted and "死" not in normalized_text and not self._may_cry(stripped):
            return False
        unquoted = _QUOTED.sub(self._keep_close_ones, normalized_text)
        if any(self._said(sentence) for sentence in self._sentences_to_read(unquoted)):
            return True
        joined = _PAUSES.sub("", unquoted)
        if (
            not self._about_others.search(unquoted)
            and self._maybe.search(joined)
            and self._crisis.search(joined)
        ):
            return True  # "我。真的。不想。再活了": words cut apart for weight
        # A farewell someone wrote ("永别了") is quoted as it was sent; a collector does not write one.
        return bool(self._agreeing.search(normalized_text) or self._quoted.search(normalized_text))

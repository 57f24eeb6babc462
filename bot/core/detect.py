"""Run the knowledge base's signal patterns over normalized text: Python's ``re`` on short texts, RE2 (linear
time) on long ones and for the few patterns ``bot/core/backtrack.py`` will not translate."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from bot.core.backtrack import SHORT_TEXT, compile_short
from bot.core.dodges import detection_view
from bot.core.models import SignalHit
from bot.core.normalize import Normalized
from bot.core.prefilter import LiteralPrefilter
from bot.knowledge import CompiledSignal

# Evidence is a short quote; a pattern that matches a long stretch is cut to this many characters.
MAX_EVIDENCE = 60


# Words before a phrase, in the same clause, that change what it says:
# - a scam phrase that is warned against ("切勿向个人账户转账", "请勿将验证码告诉他人") is advice: lenders and
#   banks quote the scam to warn of it;
# - a court document spoken of as a future or a condition ("立案之后会有法院传票", "否则等着收传票"), or as a
#   lender's own plan ("我司拟向法院申请诉前调解"), is a threat, not a notice: a real notice states what has
#   happened, in the court's name;
# - a pressure word named as a pretext a lender never uses is no pressure.
CANCELLING_CUES: dict[str, tuple[str, ...]] = {
    "scam": tuple(
        "切勿 请勿 勿 不要 不得 谨防 警惕 防范 提防 谨记 严禁 不会 绝不 从不 决不 千万别 不可 避免 无需 无须 不需要 不收取 别信 不要信 别相信 不要相信".split()
    ),
    "legal_notice": tuple(
        "会有 将会 就会 到时候 到时 等着 等你 否则 不然 如果 要是 我司拟 我司将 我司已将 我司准备 我方拟 我方将 第三方".split()
    ),
    # A lender's anti-fraud line names the pretexts it never uses ("不会以“降额”“冻结”为由要求转账").
    "pressure": ("不会以", "不会因", "绝不会以"),
}
_CUE_WINDOW = 20
_CLAUSE_ENDS = frozenset("，。！？；,.!?;：:\n")


# Denials inside the matched phrase itself ("放款前不收取任何费用") cancel it too.
_DENIALS_INSIDE = ("不收", "无需", "无须", "不需要", "不会", "从不", "绝不", "不存在", "勿")


def cue_before(text: str, start: int, cues: tuple[str, ...]) -> bool:
    """True when one of ``cues`` stands in the same clause within a few characters before ``start``."""
    lo = start
    while lo > 0 and start - lo < _CUE_WINDOW and text[lo - 1] not in _CLAUSE_ENDS:
        lo -= 1
    before = text[lo:start]
    if text.startswith("请", start):
        before += text[start : start + 2]  # a pattern may begin with 请, and then 请勿 is half inside it
    return any(cue in before for cue in cues)


def _char_offset(data: bytes, byte_offset: int) -> int:
    return len(data[:byte_offset].decode("utf-8"))


def _re2_spans(regex, data: bytes) -> Iterator[tuple[int, int]]:
    """Successive non-empty matches of an RE2 pattern, as character spans. It searches ``data``, the text as
    UTF-8: the re2 wrapper re-encodes a str and maps offsets back on every call, which cost more than the
    matching."""
    position = 0
    while (match := regex.search(data, position)) is not None:
        begin, finish = match.span()  # one call: the wrapper's group() and start() are slow Python
        if finish == begin:
            return
        start = _char_offset(data, begin)
        yield start, start + len(data[begin:finish].decode("utf-8"))
        position = finish


def _python_spans(regex: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
    position = 0
    while (match := regex.search(text, position)) is not None:
        start, end = match.span()
        if end == start:
            return
        yield start, end
        position = end


def _hit(norm: Normalized, compiled: CompiledSignal, spans: Iterator[tuple[int, int]]) -> SignalHit | None:
    """The signal's first uncancelled match among ``spans``."""
    s = compiled.signal
    cues = CANCELLING_CUES.get(s.verdict)
    for start, end in spans:
        # A cancelled occurrence is no sign; a later occurrence that stands on its own still is.
        if cues and (
            cue_before(norm.text, start, cues)
            or (s.verdict == "scam" and any(d in norm.text[start:end] for d in _DENIALS_INSIDE))
        ):
            continue
        damps = s.damps if s.verdict == "unrelated" else ()
        quote = norm.quote(start, min(end, start + MAX_EVIDENCE))
        return SignalHit(s.id, s.label, s.verdict, s.weight, quote, s.topics, damps)
    return None


# Patterns bound their windows by clause punctuation ([^,，。]{0,8}); normalization folds "，" to ",", which is
# also the thousands separator in "1,000元". Inside numbers it becomes "_" (same length, so quotes still map).
def detect_signals(norm: Normalized, signals: Iterable[CompiledSignal]) -> tuple[SignalHit, ...]:
    """One hit per signal: the first of its patterns that matches, quoted from the original text."""
    norm = detection_view(norm)
    data = norm.text.encode("utf-8")
    hits = []
    for compiled in signals:
        for regex in compiled.regexes:
            hit = _hit(norm, compiled, _re2_spans(regex, data))
            if hit is not None:
                hits.append(hit)
                break
    return tuple(hits)


_UNCOMPILED = re.compile("")  # placeholder: this pattern's Python regex has not been asked for yet


class SignalDetector:
    """Same result as :func:`detect_signals`, faster:
    - a literal prefilter (``bot/core/prefilter.py``) names the few patterns a text can match at all (about 5
      of ~510), and only those are searched;
    - on a short text they run as Python regexes (``bot/core/backtrack.py``), which need no warm-up, where RE2
      builds its automata on each new text."""

    def __init__(self, signals: Sequence[CompiledSignal]):
        self._signals = tuple(signals)
        self._owners = [
            (si, pi) for si, c in enumerate(self._signals) for pi in range(len(c.signal.patterns))
        ]
        self._patterns = [self._signals[si].signal.patterns[pi] for si, pi in self._owners]
        self._prefilter = LiteralPrefilter(self._patterns)
        # Compiled on first use; None for a pattern that stays with RE2.
        self._short: list[re.Pattern[str] | None] = [_UNCOMPILED] * len(self._owners)

    def warm_up(self) -> None:
        """Compile every pattern, both ways (about 0.3 s); otherwise each compiles on its first candidate."""
        for index, (si, pi) in enumerate(self._owners):
            self._signals[si].regexes[pi]
            self._short_regex(index)

    def _short_regex(self, index: int) -> re.Pattern[str] | None:
        regex = self._short[index]
        if regex is _UNCOMPILED:
            regex = self._short[index] = compile_short(self._patterns[index])
        return regex

    def detect(self, norm: Normalized) -> tuple[SignalHit, ...]:
        if not self._signals or not norm.text:
            return ()
        norm = detection_view(norm)
        short = len(norm.text) <= SHORT_TEXT
        data = b""  # the text as UTF-8, made only when RE2 is asked (a long text or an untranslated pattern)
        hits = []
        done = -1  # the last signal that hit: its other patterns need not run
        for index in self._prefilter.candidates(norm.text):  # in signal order, then pattern order
            si, pi = self._owners[index]
            if si == done:
                continue
            compiled = self._signals[si]
            regex = self._short_regex(index) if short else None
            if regex is not None:
                spans = _python_spans(regex, norm.text)
            else:
                data = data or norm.text.encode("utf-8")
                spans = _re2_spans(compiled.regexes[pi], data)
            hit = _hit(norm, compiled, spans)
            if hit is not None:
                hits.append(hit)
                done = si
        return tuple(hits)

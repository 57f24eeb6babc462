"""Run the knowledge base's signal patterns (RE2, linear time) over normalized text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
# - a court document spoken of as a future or a condition ("立案之后会有法院传票", "否则等着收传票") is a
#   collector's threat, not a notice: a real notice states what has happened;
# - a pressure word named as a pretext a lender never uses is no pressure.
CANCELLING_CUES: dict[str, tuple[str, ...]] = {
    "scam": tuple(
        "切勿 请勿 勿 不要 不得 谨防 警惕 防范 提防 谨记 严禁 不会 绝不 从不 决不 千万别 不可 避免 无需 无须 不需要 不收取 别信 不要信 别相信 不要相信".split()
    ),
    "legal_notice": tuple("会有 将会 就会 到时候 到时 等着 等你 否则 不然 如果 要是".split()),
    # A lender's anti-fraud line names the pretexts it never uses ("不会以“降额”“冻结”为由要求转账").
    "pressure": ("不会以", "不会因", "绝不会以"),
}
_CUE_WINDOW = 20
_CLAUSE_ENDS = frozenset("，。！？；,.!?;：:\n")


# Denials inside the matched phrase itself ("放款前不收取任何费用") cancel it too.
_DENIALS_INSIDE = tuple(
    d.encode() for d in ("不收", "无需", "无须", "不需要", "不会", "从不", "绝不", "不存在", "勿")
)


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


def _hit(norm: Normalized, data: bytes, compiled: CompiledSignal, regex) -> SignalHit | None:
    """The signal's first uncancelled match in ``data`` (``norm.text`` as UTF-8: the re2 wrapper re-encodes a
    str and maps offsets back on every call, which cost more than the matching)."""
    s = compiled.signal
    cues = CANCELLING_CUES.get(s.verdict)
    position = 0
    while True:
        match = regex.search(data, position)
        if match is None:
            return None
        begin, finish = match.span()  # one call: the wrapper's group() and start() are slow Python
        if finish == begin:
            return None
        start = _char_offset(data, begin)
        # A cancelled occurrence is no sign; a later occurrence that stands on its own still is.
        if cues and (
            cue_before(norm.text, start, cues)
            or (s.verdict == "scam" and any(d in data[begin:finish] for d in _DENIALS_INSIDE))
        ):
            position = finish
            continue
        break
    end = min(start + len(data[begin:finish].decode("utf-8")), start + MAX_EVIDENCE)
    damps = s.damps if s.verdict == "unrelated" else ()
    return SignalHit(s.id, s.label, s.verdict, s.weight, norm.quote(start, end), s.topics, damps)


# Patterns bound their windows by clause punctuation ([^,，。]{0,8}); normalization folds "，" to ",", which is
# also the thousands separator in "1,000元". Inside numbers it becomes "_" (same length, so quotes still map).
def detect_signals(norm: Normalized, signals: Iterable[CompiledSignal]) -> tuple[SignalHit, ...]:
    """One hit per signal: the first of its patterns that matches, quoted from the original text."""
    norm = detection_view(norm)
    data = norm.text.encode("utf-8")
    hits = []
    for compiled in signals:
        for regex in compiled.regexes:
            hit = _hit(norm, data, compiled, regex)
            if hit is not None:
                hits.append(hit)
                break
    return tuple(hits)


class SignalDetector:
    """Same result as :func:`detect_signals`, faster: a literal prefilter (``bot/core/prefilter.py``) names the
    few patterns a text can match at all (about 5 of ~450), and only those are searched."""

    def __init__(self, signals: Sequence[CompiledSignal]):
        self._signals = tuple(signals)
        self._owners = [
            (si, pi) for si, c in enumerate(self._signals) for pi in range(len(c.signal.patterns))
        ]
        self._prefilter = LiteralPrefilter([self._signals[si].signal.patterns[pi] for si, pi in self._owners])

    def warm_up(self) -> None:
        """Compile every pattern (about 0.1 s); otherwise each compiles on its first candidate message."""
        for si, pi in self._owners:
            self._signals[si].regexes[pi]

    def detect(self, norm: Normalized) -> tuple[SignalHit, ...]:
        if not self._signals or not norm.text:
            return ()
        norm = detection_view(norm)
        data = norm.text.encode("utf-8")
        hits = []
        done = -1  # the last signal that hit: its other patterns need not run
        for index in self._prefilter.candidates(data):  # in signal order, then pattern order
            si, pi = self._owners[index]
            if si == done:
                continue
            compiled = self._signals[si]
            hit = _hit(norm, data, compiled, compiled.regexes[pi])
            if hit is not None:
                hits.append(hit)
                done = si
        return tuple(hits)

"""Decide the headline verdict and its confidence from the signal hits (DESIGN's order and disqualifiers)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.models import SignalHit
from bot.knowledge.models import VERDICT_ORDER

# A verdict holds when its combined signal strength reaches this; below it the hits are only hints.
PRESENT = 0.5
ADVICE_DAMPING = 0.6


@dataclass(frozen=True)
class Decision:
    verdict: str
    confidence: float
    alternatives: tuple[str, ...]  # other verdicts whose signals also hold, in headline order
    scores: dict[str, float]


def combined_scores(hits: Iterable[SignalHit]) -> dict[str, float]:
    """Noisy-OR per verdict: independent pieces of evidence each close part of the remaining doubt."""
    doubt: dict[str, float] = defaultdict(lambda: 1.0)
    for hit in hits:
        doubt[hit.verdict] *= 1.0 - hit.weight
    return {verdict: 1.0 - d for verdict, d in doubt.items()}


# Nothing matched, yet the message talks about a debt: the lexicon may simply not know this wording, so the
# all-clear is unsure and goes to the front of the operators' queue, which takes cases *below* LOW_CONFIDENCE
# (0.6 by default; 0.6 itself would not count).
UNSURE_ALL_CLEAR = 0.55


def decide_verdict(
    hits: Iterable[SignalHit], *, general_question: bool = False, about_debt: bool = False
) -> Decision:
    hits = tuple(hits)
    scores = combined_scores(hits)
    scores.pop("unrelated", None)
    # "unrelated" signals are official advice ("凡是要求转账到安全账户的都是诈骗") or a settled-repayment
    # confirmation: they quote alarming words without asking anything of the reader, so they damp the verdicts
    # their signal names (by default the alarms, not a court notice or a reminder: both often carry the same
    # advice, "本院不会要求你向个人账户转账").
    for verdict in list(scores):
        doubt = 1.0
        for hit in hits:
            if verdict in hit.damps:
                doubt *= 1.0 - hit.weight
        scores[verdict] *= 1.0 - ADVICE_DAMPING * (1.0 - doubt)
    present = [v for v in VERDICT_ORDER if scores.get(v, 0.0) >= PRESENT]
    # A real court never asks for a transfer, threatens or accuses by SMS: those disqualify legal_notice.
    if "legal_notice" in present and ({"scam", "illegal_collection"} & set(present)):
        present.remove("legal_notice")
    if general_question:
        # "上门催收合法吗" describes no message of the asker's: nothing to judge, the answer leads.
        return Decision("unrelated", 0.9, tuple(present), scores)
    if not present:
        strongest = max(scores.values(), default=0.0)
        # Nothing holds: sure when nothing fired at all, less so when weak hints did.
        confidence = 0.95 - 0.6 * strongest
        if about_debt:
            confidence = min(confidence, UNSURE_ALL_CLEAR)
        return Decision("unrelated", round(confidence, 3), (), scores)
    headline = present[0]
    others = [scores[v] for v in present[1:] if not _compatible(headline, v)]
    competing = max(others, default=0.0)
    strength = scores[headline]
    # Logistic squash of strength minus competition: one signal of weight 0.7 ~0.7, 0.9 ~0.9.
    confidence = 1.0 / (1.0 + math.exp(-6.0 * (strength - 0.55 * competing - 0.55)))
    return Decision(headline, round(min(0.99, confidence), 3), tuple(present[1:]), scores)


def _compatible(headline: str, other: str) -> bool:
    """Verdicts that naturally stand together and so do not make the headline less certain."""
    if headline in ("scam", "illegal_collection", "pressure") and other in ("pressure", "reminder"):
        return True
    return headline == "legal_notice" and other in ("pressure", "reminder")

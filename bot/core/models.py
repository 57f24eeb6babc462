"""Neutral result types of the analysis core: no transport, database or environment in here."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.extract import Entities


@dataclass(frozen=True)
class SignalHit:
    id: str
    label: str
    verdict: str
    weight: float
    evidence: str  # substring of the user's original text
    topics: tuple[str, ...] = ()
    damps: tuple[str, ...] = ()  # for advice-like `unrelated` signals: the verdicts they weaken

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label, "verdict": self.verdict, "evidence": self.evidence}


@dataclass(frozen=True)
class TopicMatch:
    id: str
    title: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "score": round(self.score, 3)}


@dataclass(frozen=True)
class Reply:
    """What the user sees, as parts each adapter renders in its own way (plain text, HTML, WeChat)."""

    headline: str | None  # the verdict line; None for general questions, which lead with the answer
    answer: str | None = None
    why: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    related: tuple[tuple[str, str], ...] = ()  # (topic id, title) for "你是不是想问"
    crisis: str | None = None  # the care message, shown before anything else
    also: str | None = None  # what else it could be
    details: str | None = None  # the long answer behind "详细"
    sources: tuple[str, ...] = ()
    footer: str = ""
    answer_first: bool = False  # questions lead with the answer, not the verdict line (DESIGN)

    def sections(self) -> list[tuple[str, object]]:
        """The parts in display order, for every renderer: care first; a question leads with its answer."""
        head: list[tuple[str, object]] = []
        if self.crisis:
            head.append(("crisis", self.crisis))
        verdict = [("headline", self.headline)] if self.headline else []
        answer = [("answer", self.answer)] if self.answer else []
        head += answer + verdict if self.answer_first else verdict + answer
        rest: list[tuple[str, object]] = [
            ("why", self.why),
            ("also", self.also),
            ("steps", self.steps),
            ("channels", self.channels),
            ("sources", self.sources),
            ("related", self.related),
            ("footer", self.footer),
        ]
        return head + [(name, value) for name, value in rest if value]

    def as_text(self) -> str:
        parts: list[str] = []
        for name, value in self.sections():
            if name == "why":
                parts.append("为什么：\n" + "\n".join(f"· {line}" for line in self.why))
            elif name == "steps":
                parts.append("怎么办：\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps, 1)))
            elif name == "channels":
                parts.append("官方渠道：\n" + "\n".join(f"· {c}" for c in self.channels))
            elif name == "sources":
                parts.append("依据：" + "；".join(self.sources))
            elif name == "related":
                parts.append("你是不是想问：\n" + "\n".join(f"· {title}" for _, title in self.related))
            else:
                parts.append(str(value))
        return "\n\n".join(parts)


@dataclass(frozen=True)
class Analysis:
    kind: str  # "sms" | "question"
    verdict: str
    confidence: float
    signals: tuple[SignalHit, ...]
    entities: Entities
    topics: tuple[TopicMatch, ...]
    crisis: bool
    reply: Reply
    kb_version: str
    alternatives: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The ``check --json`` object of DESIGN's command-line contract."""
        return {
            "kind": self.kind,
            "verdict": self.verdict,
            "confidence": round(self.confidence, 3),
            "signals": [h.as_dict() for h in self.signals],
            "entities": self.entities.as_dict(),
            "topics": [t.as_dict() for t in self.topics],
            "crisis": self.crisis,
            "reply": self.reply.as_text(),
            "kb_version": self.kb_version,
        }

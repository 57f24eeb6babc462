"""Typed, immutable shapes of the knowledge base (topics, signals, platforms, sources, templates).

The YAML files in ``knowledge/`` are validated against these models at load time; any unknown key is an
error so that a typo by an operator never silently drops content.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Verdict = Literal["scam", "illegal_collection", "pressure", "legal_notice", "reminder", "unrelated"]

#: Headline order when signals of several verdicts hold (DESIGN.md).
VERDICT_ORDER: tuple[Verdict, ...] = (
    "scam",
    "legal_notice",
    "illegal_collection",
    "pressure",
    "reminder",
    "unrelated",
)

VERDICT_LABELS_ZH: dict[str, str] = {
    "scam": "疑似诈骗",
    "illegal_collection": "违法催收",
    "pressure": "施压式催收（措辞吓人，但未见具体法律程序）",
    "legal_notice": "可能是真实的法律程序通知",
    "reminder": "正常的还款提醒",
    "unrelated": "未发现催收或诈骗迹象",
}

SLUG = r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$"
# A source reference: fact-base id, optionally followed by one space and an article ("L4 第128条").
SOURCE_REF = re.compile(r"^(?P<id>(?:L|W|S)[0-9A-Za-z-]+)(?: (?P<article>\S.*))?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_source_refs(refs: tuple[str, ...]) -> tuple[str, ...]:
    for ref in refs:
        if not SOURCE_REF.match(ref):
            raise ValueError(f"source {ref!r} is not an id like 'L4' or 'L4 第128条'")
    return refs


class Channel(_Strict):
    """An official verification or complaint channel named in a topic."""

    name: str = Field(min_length=1)
    contact: str | None = None  # a number or address confirmed by the fact base; None = "see official app"
    note: str | None = None
    sources: tuple[str, ...] = Field(min_length=1)

    _refs = field_validator("sources")(_check_source_refs)


class Topic(_Strict):
    id: str = Field(pattern=SLUG)
    title: str = Field(min_length=2)
    questions: tuple[str, ...] = ()  # phrasings people type or search
    messages: tuple[str, ...] = ()  # example SMS texts that should reach this topic
    keywords: tuple[str, ...] = ()  # short domain words that point here (also added to jieba)
    answer: str = Field(min_length=10)  # short answer, fits one phone screen with the steps
    details: str | None = None  # the long answer behind "详细"
    steps: tuple[str, ...] = Field(min_length=3)
    channels: tuple[Channel, ...] = ()
    sources: tuple[str, ...] = Field(min_length=1)
    related: tuple[str, ...] = ()
    reviewed: dt.date
    valid_until: dt.date | None = None

    _refs = field_validator("sources")(_check_source_refs)

    @property
    def examples(self) -> tuple[str, ...]:
        return self.questions + self.messages


class Signal(_Strict):
    id: str = Field(pattern=SLUG)
    label: str = Field(min_length=2)  # Chinese label shown to users
    verdict: Verdict
    weight: float = Field(gt=0.0, le=1.0)
    patterns: tuple[str, ...] = Field(min_length=1)  # RE2 syntax, matched on normalized text
    topics: tuple[str, ...] = ()  # topics this signal points to (boosts them in matching)
    examples: tuple[str, ...] = Field(min_length=1)  # texts it must fire on (checked by tests)
    # Only for `unrelated` signals (advice, confirmations): the verdicts whose strength they damp.
    damps: tuple[Verdict, ...] = ("scam", "illegal_collection", "pressure")


class Platform(_Strict):
    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    company: str | None = None
    contact: str | None = None  # only where the fact base confirms it
    sources: tuple[str, ...] = ()
    note: str | None = None

    _refs = field_validator("sources")(_check_source_refs)


class Synonym(_Strict):
    """Words people type for a knowledge-base term: pinyin initials, slang, frequent typos."""

    id: str = Field(pattern=SLUG)
    term: str = Field(min_length=1)
    variants: tuple[str, ...] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _no_blank_variant(cls, variants: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v.strip() for v in variants):
            raise ValueError("a variant is empty")
        return variants


class Source(_Strict):
    id: str = Field(pattern=r"^(?:L|W|S)[0-9A-Za-z-]+$")
    title: str = Field(min_length=2)
    url: str | None = None
    status: Literal["confirmed", "secondary", "unconfirmed", "contested"] = "confirmed"


class Rule(_Strict):
    text: str = Field(min_length=4)
    sources: tuple[str, ...] = Field(min_length=1)

    _refs = field_validator("sources")(_check_source_refs)


class ConductRule(_Strict):
    """What one kind of conduct breaks; matches signals whose id starts with one of ``signals``."""

    id: str = Field(pattern=SLUG)
    signals: tuple[str, ...] = Field(min_length=1)
    conduct: str = Field(min_length=4)
    rules: tuple[Rule, ...] = Field(min_length=1)
    reviewed: dt.date

    def covers(self, signal_id: str) -> bool:
        return any(signal_id.startswith(prefix) for prefix in self.signals)


class ComplaintChannel(_Strict):
    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=2)
    to: str = Field(min_length=2)
    verdicts: tuple[Verdict, ...] = Field(min_length=1)
    when_signals: tuple[str, ...] = ()  # if given, only when a signal with one of these id prefixes fired
    subject: str = Field(min_length=2)  # may use {lender}
    opening: str = Field(min_length=4)
    asks: tuple[str, ...] = Field(min_length=1)
    note: str | None = None
    sources: tuple[str, ...] = Field(min_length=1)
    reviewed: dt.date

    _refs = field_validator("sources")(_check_source_refs)

    def fits(self, verdict: str, signal_ids: tuple[str, ...]) -> bool:
        if verdict not in self.verdicts:
            return False
        return not self.when_signals or any(s.startswith(p) for s in signal_ids for p in self.when_signals)


SafetyKind = Literal["crisis", "idiom", "quoted", "agreeing", "about-others", "me-too"]


class SafetyPhrases(_Strict):
    """A group of the safety check's patterns (``knowledge/safety.yaml``; its header explains the kinds)."""

    id: str = Field(pattern=SLUG)
    kind: SafetyKind
    patterns: tuple[str, ...] = Field(min_length=1)
    examples: tuple[str, ...] = ()  # must be caught (crisis, quoted, agreeing) or matched (the other kinds)
    lookalikes: tuple[str, ...] = ()  # must not be caught

"""Compose the neutral reply: verdict line, quoted evidence, numbered steps, channels, sources, related."""

from __future__ import annotations

import functools
import re

from bot.core.decide import Decision
from bot.core.models import Reply, SignalHit, TopicMatch
from bot.knowledge import Knowledge
from bot.knowledge.models import SOURCE_REF, VERDICT_LABELS_ZH, Topic

MAX_WHY = 5
MAX_STEPS = 5
MAX_RELATED = 3
MAX_SOURCES = 3
RUNNER_UP_SHARE = 0.6  # a runner-up topic is offered when it scores at least this share of the best
CRISIS_TOPIC = "crisis-support"

_EDITION_SUFFIX = re.compile(r"\s+[(][^()]*[)]\s*$")

VERDICT_ICONS = {
    "scam": "🚫",
    "illegal_collection": "⛔",
    "pressure": "⚠️",
    "legal_notice": "⚖️",
    "reminder": "ℹ️",
    "unrelated": "✅",
}

# The topic whose steps fit a verdict when no topic matched the text itself.
DEFAULT_TOPIC = {
    "scam": "verify-official",
    "illegal_collection": "collection-rules",
    "pressure": "collection-rules",
    "legal_notice": "court-sms-verify",
    "reminder": "legit-reminder",
}

UNRELATED_HINT = (
    "这条内容里没有看到催收、法律程序或诈骗的迹象。如果你担心的是另一条短信，请把全文粘贴过来；"
    "也可以直接提问，比如“上门催收合法吗”。"
)


def confidence_words(confidence: float) -> str:
    if confidence >= 0.85:
        return "把握较大"
    if confidence >= 0.6:
        return "有一定把握"
    return "把握不大，请结合下面的核实方法自己再判断"


@functools.cache  # a handful of titles, asked for in every reply
def short_title(title: str) -> str:
    """ "中华人民共和国民事诉讼法 (2023年9月1日第五次修正)" -> "民事诉讼法": what a reader recognises."""
    while _EDITION_SUFFIX.search(title):  # "(2022) (Art. 30: …)": strip every trailing note
        title = _EDITION_SUFFIX.sub("", title)
    return title.removeprefix("中华人民共和国")


def format_sources(kb: Knowledge, refs: tuple[str, ...]) -> tuple[str, ...]:
    """Legal texts by name and article ("民法典·人格权编第1033条"), then other material by fact-base id."""
    laws: list[str] = []
    other: list[str] = []
    for ref in refs:
        match = SOURCE_REF.match(ref)
        if not match or match["id"] not in kb.sources:
            continue
        if match["id"].startswith("L"):
            laws.append(short_title(kb.sources[match["id"]].title) + (match["article"] or ""))
        else:
            other.append(match["id"])
    laws = list(dict.fromkeys(laws))[:MAX_SOURCES]
    if other:
        laws.append("资料 " + "、".join(list(dict.fromkeys(other))[:MAX_SOURCES]))
    return tuple(laws)


def _topic_or_none(kb: Knowledge, topic_id: str | None) -> Topic | None:
    return kb.topic_by_id.get(topic_id) if topic_id else None


def _channels(topic: Topic) -> tuple[str, ...]:
    lines = []
    for channel in topic.channels:
        line = channel.name + (f" {channel.contact}" if channel.contact else "")
        if channel.note:
            line += f"（{channel.note}）"
        lines.append(line)
    return tuple(lines)


def _why(hits: tuple[SignalHit, ...], verdict: str) -> tuple[str, ...]:
    # The headline's own evidence first, then the rest, strongest first.
    ordered = sorted(hits, key=lambda h: (h.verdict != verdict, -h.weight))
    return tuple(f"{h.label}：“{h.evidence}”" for h in ordered[:MAX_WHY])


def _related(
    kb: Knowledge, kind: str, primary: Topic | None, topics: tuple[TopicMatch, ...]
) -> tuple[tuple[str, str], ...]:
    """ "你是不是想问": for a question, the close runners-up first; then the primary topic's own related list."""
    ids: list[str] = []
    if kind == "question" and topics:
        ids += [t.id for t in topics[1:] if t.score >= RUNNER_UP_SHARE * topics[0].score]
    ids += list(primary.related) if primary else []
    chosen = [
        tid for tid in dict.fromkeys(ids) if tid in kb.topic_by_id and (not primary or tid != primary.id)
    ]
    return tuple((tid, kb.topic_by_id[tid].title) for tid in chosen[:MAX_RELATED])


def compose_reply(
    kb: Knowledge,
    *,
    kind: str,
    decision: Decision,
    hits: tuple[SignalHit, ...],
    topics: tuple[TopicMatch, ...],
    crisis: bool,
    general_question: bool,
) -> Reply:
    verdict = decision.verdict
    primary = _topic_or_none(kb, topics[0].id if topics else None)
    if primary is None or (kind == "sms" and verdict != "unrelated" and not general_question):
        # For a message, steps must fit the verdict: prefer the best topic a fired signal points to.
        signal_topics = {t for h in hits if h.verdict == verdict for t in h.topics}
        linked = next((t.id for t in topics if t.id in signal_topics), None)
        primary = _topic_or_none(kb, linked) or primary or _topic_or_none(kb, DEFAULT_TOPIC.get(verdict))

    crisis_text = None
    if crisis and CRISIS_TOPIC in kb.topic_by_id:
        care = kb.topic_by_id[CRISIS_TOPIC]
        crisis_text = "💛 " + care.answer + ("\n" + "\n".join(_channels(care)) if care.channels else "")
        if verdict == "unrelated":
            # Nothing to judge: "✅ no signs of anything" would read as dismissing the person. Care only.
            return Reply(
                headline=None,
                crisis=crisis_text,
                steps=tuple(care.steps[:MAX_STEPS]),
                related=_related(kb, kind, care, topics),
                details=care.details or care.answer,
                footer=_footer(kb, care),
            )

    leads_with_answer = kind == "question" and (general_question or verdict == "unrelated")
    headline = None
    if not leads_with_answer:
        lead = "你说的情况属于" if kind == "question" else "判断"
        headline = f"{VERDICT_ICONS[verdict]} {lead}：{VERDICT_LABELS_ZH[verdict]}（{confidence_words(decision.confidence)}）"
    also = None
    if decision.alternatives and not general_question:
        also = "也可能是：" + "、".join(VERDICT_LABELS_ZH[v] for v in decision.alternatives)

    answer = primary.answer if primary and (kind == "question") else None
    if verdict == "unrelated" and kind == "sms" and not hits:
        answer = UNRELATED_HINT
        primary = None if not topics else primary
    show_topic = primary is not None and (verdict != "unrelated" or kind == "question")
    related = _related(kb, kind, primary, topics)
    return Reply(
        headline=headline,
        answer=answer,
        why=() if general_question else _why(hits, verdict),
        steps=tuple(primary.steps[:MAX_STEPS]) if show_topic and primary else (),
        channels=_channels(primary) if show_topic and primary else (),
        related=related,
        crisis=crisis_text,
        also=also,
        details=(primary.details or primary.answer) if primary else None,
        sources=format_sources(kb, primary.sources) if show_topic and primary else (),
        footer=_footer(kb, primary if show_topic else None),
        answer_first=kind == "question",
    )


def compose_topic_reply(kb: Knowledge, topic: Topic) -> Reply:
    """A topic's own answer, for "你是不是想问" buttons and "回复 1/2/3": it leads with the answer."""
    return Reply(
        headline=None,
        answer=topic.answer,
        steps=tuple(topic.steps[:MAX_STEPS]),
        channels=_channels(topic),
        related=tuple((tid, kb.topic_by_id[tid].title) for tid in topic.related if tid in kb.topic_by_id)[
            :MAX_RELATED
        ],
        details=topic.details or topic.answer,
        sources=format_sources(kb, topic.sources),
        footer=_footer(kb, topic),
    )


def _footer(kb: Knowledge, topic: Topic | None = None) -> str:
    """Dated by the topic the reply used; without one, by the oldest review in the knowledge base."""
    reviewed = topic.reviewed if topic else min(t.reviewed for t in kb.topics)
    return f"（自动判断，不构成法律意见。知识库 {kb.version}，内容核对于 {reviewed.isoformat()}。）"

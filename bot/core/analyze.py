"""The analysis pipeline: normalize → safety → entities → signals → kind → verdict → topics → reply."""

from __future__ import annotations

import time

from bot.core.classify import classify_kind, is_general_question, talks_about_debt
from bot.core.compose import CRISIS_TOPIC, compose_reply
from bot.core.decide import decide_verdict
from bot.core.detect import SignalDetector
from bot.core.extract import AliasFinder, extract_entities
from bot.core.match import MAX_TOPICS, TopicMatcher
from bot.core.models import Analysis, TopicMatch
from bot.core.normalize import normalize, normalized_text
from bot.core.safety import CrisisDetector
from bot.core.tokenize import ChineseTokenizer
from bot.knowledge import Knowledge

# Topic matching looks at the head of very long inputs only; signals still scan all of it (RE2 is linear).
MATCH_WINDOW = 4000


def _platform_aliases(kb: Knowledge) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for platform in kb.platforms:
        for alias in (platform.name, *platform.aliases):
            key = normalized_text(alias)
            if len(key) >= 2:
                aliases.setdefault(key, platform.id)
    return aliases


class Analyzer:
    """Holds everything built from one knowledge base; ``analyze`` is pure and thread-safe after warm-up."""

    def __init__(self, kb: Knowledge):
        self.kb = kb
        domain_words = [k for t in kb.topics for k in t.keywords]
        domain_words += [a for p in kb.platforms for a in (p.name, *p.aliases)]
        # The texts the topic index holds: the only words that can ever carry weight in matching.
        corpus = [normalized_text(text) for t in kb.topics for text in (t.title, *t.examples)]
        self.tokenizer = ChineseTokenizer((normalized_text(w) for w in domain_words), corpus)
        self.matcher = TopicMatcher(kb.topics, self.tokenizer, kb.synonyms)
        self.platforms = AliasFinder(_platform_aliases(kb))
        self.detector = SignalDetector(kb.signals)
        self.safety = CrisisDetector(kb.safety)

    def warm_up(self) -> None:
        """Load jieba, index the topics and compile every pattern now, so the first users do not wait for it
        (long-running channels and ``eval``; a one-off ``check`` compiles only what its message needs)."""
        self.tokenizer.warm_up()
        self.matcher.warm_up()
        self.detector.warm_up()
        self.safety.warm_up()

    def _care_first(self, topics: tuple[TopicMatch, ...]) -> tuple[TopicMatch, ...]:
        # The safety check outranks similarity: the reply leads with care, so the topic list does too.
        care = self.kb.topic_by_id.get(CRISIS_TOPIC)
        if care is None:
            return topics
        rest = tuple(t for t in topics if t.id != CRISIS_TOPIC)
        return (TopicMatch(care.id, care.title, 1.0), *rest)[:MAX_TOPICS]

    def analyze(self, text: str) -> Analysis:
        started = time.perf_counter()
        norm = normalize(text)
        crisis = self.safety.detect(norm.text)
        entities = extract_entities(norm, self.platforms)
        hits = self.detector.detect(norm)
        kind = classify_kind(norm.text, entities)
        general_question = kind == "question" and is_general_question(norm.text)
        decision = decide_verdict(
            hits, general_question=general_question, about_debt=kind == "sms" and talks_about_debt(norm.text)
        )
        topics = self.matcher.match(norm.text[:MATCH_WINDOW], hits)
        if crisis:
            topics = self._care_first(topics)
        reply = compose_reply(
            self.kb,
            kind=kind,
            decision=decision,
            hits=hits,
            topics=topics,
            crisis=crisis,
            general_question=general_question,
        )
        elapsed = (time.perf_counter() - started) * 1000
        return Analysis(
            kind=kind,
            verdict=decision.verdict,
            confidence=decision.confidence,
            signals=hits,
            entities=entities,
            topics=topics,
            crisis=crisis,
            reply=reply,
            kb_version=self.kb.version,
            alternatives=decision.alternatives,
            timings_ms={"analyze": round(elapsed, 3)},
        )

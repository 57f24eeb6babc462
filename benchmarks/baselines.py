"""Lexical baselines for topic ranking, indexing exactly the phrasings the engine indexes.

Both rank a topic by its best phrasing (nearest neighbour): a query is scored against every phrasing, and a
topic takes the highest score among its own. Texts are normalized by the caller (the project's ``normalize``)
so every method sees the same characters.

- :class:`TfidfCharBaseline`: scikit-learn ``TfidfVectorizer(analyzer="char", ngram_range=(1, 3))``, cosine.
- :class:`Bm25Baseline`: bm25s (its defaults: Lucene variant, k1 1.5, b 0.75) over token lists from a given
  tokenizer (jieba words in the benchmark; bm25s's own tokenizer does not split Chinese).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import bm25s
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

Phrasing = tuple[str, str]  # (topic id, normalized text)


class _TopicLike(Protocol):
    id: str
    title: str
    questions: tuple[str, ...]
    messages: tuple[str, ...]


def collect_phrasings(topics: Iterable[_TopicLike], normalize_text: Callable[[str], str]) -> list[Phrasing]:
    """Every topic's title, questions and messages (each once per topic), normalized, grouped by topic."""
    phrasings: list[Phrasing] = []
    for topic in topics:
        for text in dict.fromkeys((topic.title, *topic.questions, *topic.messages)):
            norm = normalize_text(text)
            if norm:
                phrasings.append((topic.id, norm))
    return phrasings


class _BestPhrasing:
    """Turns per-phrasing scores into per-topic scores (max over each topic's phrasings) and a ranking."""

    def __init__(self, phrasings: Sequence[Phrasing]):
        if not phrasings:
            raise ValueError("no phrasings to index")
        topic_ids = list(dict.fromkeys(topic for topic, _ in phrasings))
        position = {t: i for i, t in enumerate(topic_ids)}
        # Stable sort by topic, so each topic's phrasings are one contiguous run for np.maximum.reduceat.
        self.order = np.array(sorted(range(len(phrasings)), key=lambda i: position[phrasings[i][0]]))
        groups = [position[phrasings[i][0]] for i in self.order]
        self.starts = np.array([i for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]])
        self.topic_ids = topic_ids

    def rank(self, phrasing_scores: np.ndarray, limit: int) -> list[tuple[str, float]]:
        topic_scores = np.maximum.reduceat(phrasing_scores[self.order], self.starts)
        ranked = np.argsort(-topic_scores, kind="stable")[:limit]
        return [(self.topic_ids[i], float(topic_scores[i])) for i in ranked if topic_scores[i] > 0]


class TfidfCharBaseline:
    name = "TF-IDF char 1–3-gram NN (scikit-learn)"

    def __init__(self, phrasings: Sequence[Phrasing]):
        self._vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
        # Rows are L2-normalised, so a dot product with a transformed query is the cosine.
        self._matrix_t = self._vectorizer.fit_transform([text for _, text in phrasings]).T.tocsr()
        self._topics = _BestPhrasing(phrasings)

    def rank(self, normalized_query: str, limit: int = 5) -> list[tuple[str, float]]:
        query = self._vectorizer.transform([normalized_query])
        cosines = (query @ self._matrix_t).toarray().ravel()
        return self._topics.rank(cosines, limit)


class Bm25Baseline:
    name = "BM25 over jieba words (bm25s)"

    def __init__(self, phrasings: Sequence[Phrasing], tokenize: Callable[[str], list[str]]):
        self._tokenize = tokenize
        self._model: Any = bm25s.BM25()
        self._model.index([tokenize(text) for _, text in phrasings], show_progress=False)
        self._vocab: dict[str, int] = self._model.vocab_dict
        self._n = len(phrasings)
        self._topics = _BestPhrasing(phrasings)

    def rank(self, normalized_query: str, limit: int = 5) -> list[tuple[str, float]]:
        # bm25s rejects an empty token list, and words it never indexed cannot score: drop them first.
        tokens = [t for t in self._tokenize(normalized_query) if t in self._vocab]
        if not tokens:
            return []
        scores = np.asarray(self._model.get_scores(tokens), dtype=np.float64)
        return self._topics.rank(scores, limit)

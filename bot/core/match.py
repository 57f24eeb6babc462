"""Rank knowledge topics for a message or question.

Each topic is indexed by its title and every example phrasing. A query is scored against each phrasing by
TF-IDF cosine over jieba words plus character bigrams (bigrams survive typos and unknown words), refined by
rapidfuzz's edit-distance ratio on the best candidates; a topic takes its best phrasing's score, plus boosts
from its keywords and from the signals that point to it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from bot.core.extract import AliasFinder
from bot.core.models import SignalHit, TopicMatch
from bot.core.prefilter import literal_automaton
from bot.core.tokenize import ChineseTokenizer
from bot.knowledge.models import Synonym, Topic

MAX_TOPICS = 5
MATCH_THRESHOLD = 0.2  # below this a topic is not offered at all; a case with none is "unmatched"
_CANDIDATES = 40  # phrasings refined with rapidfuzz
_KEYWORD_BOOST = 0.12
CENTROID_WEIGHT = 0.7
QUERY_FEATURES = 48  # strongest query features used for ranking
_SIGNAL_BOOST = 0.25


def char_bigrams(text: str) -> list[str]:
    chars = [c for c in text if c.isalnum()]
    if len(chars) == 1:
        return chars
    return ["".join(pair) for pair in itertools.pairwise(chars)]


_LATIN = re.compile("[a-z]")


class SynonymExpander:
    """Adds a knowledge-base term to a text that contains one of its variants (证信 → 征信), so slang and typos
    reach the phrasings written with the term. Latin variants (cs, cuishou) count only as whole words and
    are replaced by the term where they stand."""

    def __init__(self, synonyms: Iterable[Synonym] = ()):
        from bot.core.normalize import normalized_text

        self._term_of: dict[str, str] = {}
        for synonym in synonyms:
            for variant in synonym.variants:
                self._term_of.setdefault(normalized_text(variant), normalized_text(synonym.term))
        # Two passes: Chinese variants as plain aliases, Latin ones (with word-boundary lookarounds, the slow
        # part) only when the text has Latin letters at all.
        self._chinese = AliasFinder({v: t for v, t in self._term_of.items() if v and not v.isascii()})
        latin = [
            self._pattern_for(v) for v in sorted(self._term_of, key=len, reverse=True) if v and v.isascii()
        ]
        # Literal alternatives only: no nested repetition, so matching stays linear in the text.
        self._latin = re.compile("|".join(latin)) if latin else None

    @staticmethod
    def _pattern_for(variant: str) -> str:
        # Pinyin and English count as whole words; pinyin syllables may be typed apart ("zheng xin").
        letters = " ?".join(re.escape(c) for c in variant.replace(" ", ""))
        return rf"(?<![a-z0-9]){letters}(?![a-z0-9])"

    def expand(self, text: str) -> str:
        if self._latin is not None and _LATIN.search(text):
            # A Latin spelling is replaced where it stands ("cuishou电话" → "催收电话"): its letters would only
            # add stray bigrams, and the term then joins the words around it. A pinyin match may hold the
            # spaces typed between syllables.
            text = self._latin.sub(lambda m: self._term_of[m.group().replace(" ", "")], text)
        terms = dict.fromkeys(self._chinese.find(text))
        return text + " " + " ".join(terms) if terms else text


class _KeywordFinder:
    """How many distinct keywords of each topic occur in a text, in one Aho-Corasick pass instead of a
    substring test per keyword (~450 of them)."""

    def __init__(self, keywords_per_topic: Iterable[Iterable[str]]):
        owners: dict[str, list[int]] = defaultdict(list)
        for topic_index, keywords in enumerate(keywords_per_topic):
            for keyword in dict.fromkeys(k.lower() for k in keywords if k):
                owners[keyword].append(topic_index)
        self._owners = list(owners.values())
        self._automaton = literal_automaton(list(owners))

    def counts(self, text: str) -> dict[int, int]:
        found: dict[int, int] = defaultdict(int)
        if self._automaton is not None:
            for index in {index for _, index in self._automaton.iter(text)}:
                for topic_index in self._owners[index]:
                    found[topic_index] += 1
        return found


class _Postings:
    """Feature → (column, weight) lists held as CSR arrays, so a query's dot product with every column (a
    phrasing or a topic centroid) is a few numpy calls instead of a Python loop over ~250 postings."""

    def __init__(self, rows: Sequence[Sequence[tuple[int, float]]], n_columns: int):
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        self._starts = np.concatenate(([0], np.cumsum(lengths)))
        self._columns = np.array([c for r in rows for c, _ in r], dtype=np.int64)
        self._values = np.array([v for r in rows for _, v in r], dtype=np.float64)
        self._n_columns = n_columns

    def dot(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Σ weights[k] · row[rows[k]] as a dense vector over the columns."""
        starts = self._starts[rows]
        lengths = self._starts[rows + 1] - starts
        # The position of every posting of the chosen rows, one flat index array without a Python loop.
        firsts = np.cumsum(lengths) - lengths
        positions = np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum()))
        return np.bincount(
            self._columns[positions],
            weights=self._values[positions] * np.repeat(weights, lengths),
            minlength=self._n_columns,
        )


@dataclass(frozen=True)
class _Doc:
    topic_index: int
    text: str
    weights: dict[int, float]  # L2-normalised tf-idf vector, by feature id


class TopicMatcher:
    def __init__(
        self, topics: Sequence[Topic], tokenizer: ChineseTokenizer, synonyms: Iterable[Synonym] = ()
    ):
        self._topics = tuple(topics)
        self._expander = SynonymExpander(synonyms)
        self._tokenizer = tokenizer
        self._index = {t.id: i for i, t in enumerate(self._topics)}
        self._keyword_finder = _KeywordFinder(t.keywords for t in self._topics)
        self._raw_docs = [
            (i, text) for i, t in enumerate(self._topics) for text in dict.fromkeys((t.title, *t.examples))
        ]
        self._docs: list[_Doc] | None = None
        # The query side looks words and bigrams up by their text directly (no "w:"/"c:" strings per query).
        self._word_ids: dict[str, int] = {}
        self._bigram_ids: dict[str, int] = {}
        self._idf_of_id: list[float] = []

    # Building the index tokenizes every phrasing, so it is done once, on first use or at warm-up.
    def warm_up(self) -> None:
        if self._docs is not None:
            return
        from bot.core.normalize import normalized_text

        features = [self._features(normalized_text(text)) for _, text in self._raw_docs]
        df: Counter[str] = Counter()
        for feats in features:
            df.update(set(feats))
        n = len(features)
        idf = {f: math.log((n + 1) / (c + 0.5)) for f, c in df.items()}
        feature_ids = {f: i for i, f in enumerate(idf)}
        self._word_ids = {f[2:]: i for f, i in feature_ids.items() if f.startswith("w:")}
        self._bigram_ids = {f[2:]: i for f, i in feature_ids.items() if f.startswith("c:")}
        self._idf_of_id = list(idf.values())
        docs = []
        postings: list[list[tuple[int, float]]] = [[] for _ in feature_ids]
        # A topic's centroid: what all its phrasings say together, so a new wording that shares words with
        # several phrasings (but none closely) still finds the topic.
        centroids: list[dict[int, float]] = [defaultdict(float) for _ in self._topics]
        for doc_id, ((topic_index, text), feats) in enumerate(zip(self._raw_docs, features, strict=True)):
            weights = self._weigh(feature_ids[f] for f in feats)
            docs.append(_Doc(topic_index, normalized_text(text), weights))
            for f, w in weights.items():
                postings[f].append((doc_id, w))
                centroids[topic_index][f] += w
        self._centroids = [dict(c) for c in centroids]
        self._centroid_norms = np.array([math.sqrt(sum(v * v for v in c.values())) or 1.0 for c in centroids])
        # One matrix for both: a phrasing is a column, a topic's centroid is column len(docs) + topic index.
        for topic_index, vec in enumerate(self._centroids):
            for f, v in vec.items():
                postings[f].append((len(docs) + topic_index, v))
        self._postings = _Postings(postings, len(docs) + len(self._topics))
        self._doc_topics = np.array([d.topic_index for d in docs], dtype=np.int64)
        self._docs = docs

    def _dot(self, query: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        """The query's dot products with every phrasing and with every topic centroid."""
        assert self._docs is not None
        dots = self._postings.dot(
            np.fromiter(query.keys(), dtype=np.int64, count=len(query)),
            np.fromiter(query.values(), dtype=np.float64, count=len(query)),
        )
        return dots[: len(self._docs)], dots[len(self._docs) :]

    def _centroid_scores(self, query: dict[int, float], dots: np.ndarray, exclude: str | None) -> np.ndarray:
        assert self._docs is not None
        scores = dots / self._centroid_norms
        if exclude is not None:
            for doc in (d for d in self._docs if d.text == exclude):
                vec = dict(self._centroids[doc.topic_index])
                for f, w in doc.weights.items():
                    vec[f] -= w
                norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
                scores[doc.topic_index] = sum(qw * vec.get(f, 0.0) for f, qw in query.items()) / norm
        return scores

    def _features(self, text: str) -> list[str]:
        words = self._tokenizer.words(text)
        return [f"w:{w}" for w in words] + [f"c:{b}" for b in char_bigrams(text)]

    def _query_features(self, text: str) -> list[int]:
        """The ids of ``text``'s words and bigrams, words first; a feature no phrasing has is left out (its
        weight would be 0)."""
        word_ids, bigram_ids = self._word_ids, self._bigram_ids
        ids = [i for w in self._tokenizer.words(text) if (i := word_ids.get(w)) is not None]
        ids += [i for b in char_bigrams(text) if (i := bigram_ids.get(b)) is not None]
        return ids

    def _weigh(self, feature_ids: Iterable[int]) -> dict[int, float]:
        idf = self._idf_of_id
        # Sublinear tf: a count of 1 (nearly all of them) keeps the bare idf, 1 + log(1) being exactly 1.
        vec = {f: idf[f] if c == 1 else (1.0 + math.log(c)) * idf[f] for f, c in Counter(feature_ids).items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {f: v / norm for f, v in vec.items()}

    def match(
        self, text: str, hits: Iterable[SignalHit] = (), limit: int = MAX_TOPICS, exclude: str | None = None
    ) -> tuple[TopicMatch, ...]:
        """Best topics for normalized ``text``, best first, scores in 0..1, at most ``limit``.

        ``exclude`` leaves the phrasing with that normalized text out of the index (leave-one-out checks).
        """
        self.warm_up()
        assert self._docs is not None
        scores = np.zeros(len(self._topics))
        if text:
            expanded = self._expander.expand(text)
            query = self._weigh(self._query_features(expanded))
            if len(query) > QUERY_FEATURES:
                # A long message's weakest features move no ranking but cost most of the time.
                query = dict(heapq.nlargest(QUERY_FEATURES, query.items(), key=lambda kv: kv[1]))
            sims, centroid_dots = self._dot(query)
            if exclude is not None:
                for doc_id, doc in enumerate(self._docs):
                    if doc.text == exclude:
                        sims[doc_id] = 0.0
            # Candidates: the phrasings sharing a feature with the query (all weights are positive).
            candidates = np.flatnonzero(sims)
            if len(candidates) > _CANDIDATES:
                candidates = candidates[np.argpartition(-sims[candidates], _CANDIDATES - 1)[:_CANDIDATES]]
            if len(candidates):
                # Edit-distance ratio rewards phrasings close as a whole, not only sharing rare words.
                texts = [self._docs[i].text for i in candidates.tolist()]
                ratios = process.cdist([text], texts, scorer=fuzz.ratio, processor=None, dtype=np.float64)[0]
                # A topic takes its best phrasing's score.
                np.maximum.at(scores, self._doc_topics[candidates], 0.8 * sims[candidates] + 0.002 * ratios)
            scores += CENTROID_WEIGHT * self._centroid_scores(query, centroid_dots, exclude)
            for i, found in self._keyword_finder.counts(expanded).items():
                scores[i] += _KEYWORD_BOOST * min(found, 3)
        for hit in hits:
            for topic_id in hit.topics:
                index = self._index.get(topic_id)
                if index is not None:
                    scores[index] += _SIGNAL_BOOST * hit.weight
        ranked = np.argsort(-scores, kind="stable")[:limit].tolist()  # stable: ties keep the topics' order
        values = scores.tolist()
        return tuple(
            TopicMatch(self._topics[i].id, self._topics[i].title, min(1.0, values[i]))
            for i in ranked
            if values[i] >= MATCH_THRESHOLD
        )

"""Smoke test of the benchmark's baselines and load generators (the benchmark itself runs with `make bench`)."""

from types import SimpleNamespace

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("bm25s")

from benchmarks.baselines import Bm25Baseline, TfidfCharBaseline, collect_phrasings
from benchmarks.synth import jsonl_texts, long_message

TOPICS = [
    SimpleNamespace(
        id="home-visit", title="上门 催收", questions=("上门催收合法吗", "上门催收合法吗", " "), messages=()
    ),
    SimpleNamespace(
        id="credit-report", title="征信", questions=("逾期会影响征信吗",), messages=("已上报征信",)
    ),
    SimpleNamespace(id="arbitration", title="仲裁", questions=("仲裁委短信是真的吗",), messages=()),
]


def test_collect_phrasings_takes_each_phrasing_once_per_topic_normalized():
    phrasings = collect_phrasings(TOPICS, lambda text: text.replace(" ", ""))
    assert phrasings[:2] == [("home-visit", "上门催收"), ("home-visit", "上门催收合法吗")]
    assert len(phrasings) == 7  # the duplicate and the phrasing that normalizes to nothing are left out


@pytest.mark.parametrize(
    "make",
    [TfidfCharBaseline, lambda phrasings: Bm25Baseline(phrasings, lambda text: list(text))],
    ids=["tfidf", "bm25"],
)
def test_baselines_rank_the_obvious_topic_first(make):
    baseline = make(collect_phrasings(TOPICS, lambda text: text.replace(" ", "")))
    ranked = baseline.rank("催收的人说明天上门")
    assert ranked[0][0] == "home-visit"
    assert baseline.rank("征信会受影响吗")[0][0] == "credit-report"
    assert all(score > 0 for _, score in ranked)
    assert baseline.rank("") == []


def test_load_generators_are_reproducible_and_sized():
    texts = jsonl_texts(["问题一", "问题二"], 10)
    assert len(texts) == 10 and texts[0] == "问题一" and texts[4] == "问题二"
    assert texts == jsonl_texts(["问题一", "问题二"], 10)
    assert len(long_message(200 * 1024).encode("utf-8")) >= 200 * 1024

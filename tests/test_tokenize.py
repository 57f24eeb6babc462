import jieba
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.normalize import normalize
from bot.core.tokenize import ChineseTokenizer, _Segmenter, build_reduced_dictionary


def test_reduced_dictionary_keeps_corpus_words_and_single_characters():
    text, total = build_reduced_dictionary(["上门催收合法吗"])
    words = {line.split(" ")[0] for line in text.splitlines()}
    assert {"上门", "催收", "合法"} <= words
    assert "通讯录" not in words  # not in the corpus
    assert total > 10_000_000  # the full dictionary's total, not the reduced one's


def test_reduced_dictionary_segments_knowledge_texts_like_the_full_one(kb, tmp_path):
    corpus = [normalize(x).text for t in kb.topics for x in (t.title, *t.examples)]
    reduced = ChineseTokenizer(corpus=corpus, cache_dir=tmp_path)
    full = ChineseTokenizer()
    same = sum(reduced.words(text) == full.words(text) for text in corpus)
    assert same / len(corpus) >= 0.97
    assert list(tmp_path.glob("jieba-*.dict"))  # cached for the next start


def test_domain_words_stay_whole(tmp_path):
    tokenizer = ChineseTokenizer(["爆通讯录"], corpus=["他们说要爆通讯录"], cache_dir=tmp_path)
    assert "爆通讯录" in tokenizer.words("他们说要爆通讯录")


# The segmenter replaces jieba's own cut for speed; it must give jieba's tokens exactly, on any text.
_SEGMENT_ALPHABET = "催收逾期还款法院传票短信电话家人通讯录征信违法合法骗子转账账户的了我你abcXYZ0123456789+#&._%-，。！？ \r\n\t😀ａ한かな"


def _jieba_tokens(tokenizer: ChineseTokenizer, text: str) -> list[str]:
    assert tokenizer._jieba is not None
    return [t for t in tokenizer._jieba.lcut(text, HMM=False) if not t.isspace()]


def test_segmenter_cuts_every_knowledge_text_as_jieba_does(analyzer, kb):
    tokenizer = analyzer.tokenizer
    tokenizer.warm_up()
    texts = [x for t in kb.topics for x in (t.title, *t.examples)]
    texts += [normalize(x).text for x in texts]
    assert len(texts) > 500
    for text in texts:
        assert tokenizer._segmenter.cut(text) == _jieba_tokens(tokenizer, text), text


@given(st.text(alphabet=_SEGMENT_ALPHABET, max_size=40) | st.text(max_size=40))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_segmenter_cuts_any_text_as_jieba_does(analyzer, text):
    tokenizer = analyzer.tokenizer
    tokenizer.warm_up()
    assert tokenizer._segmenter.cut(text) == _jieba_tokens(tokenizer, text)


def test_segmenter_breaks_a_tie_as_jieba_does(tmp_path):
    # 甲乙|丙 and 甲|乙丙 score exactly the same (the same two frequencies added in either order); jieba's max()
    # over (score, end) takes the longer first word.
    dictionary = tmp_path / "tie.dict"
    dictionary.write_text("甲乙 10\n乙丙 10\n甲 5\n乙 5\n丙 5\n", encoding="utf-8")
    reference = jieba.Tokenizer(dictionary=str(dictionary))
    reference.tmp_dir = str(tmp_path)
    reference.initialize()
    segmenter = _Segmenter(reference.FREQ, reference.total)
    assert reference.lcut("甲乙丙", HMM=False) == ["甲乙", "丙"]
    assert segmenter.cut("甲乙丙") == ["甲乙", "丙"]


def test_segmenter_joins_ascii_runs_and_keeps_domain_words_whole(tmp_path):
    tokenizer = ChineseTokenizer(["爆通讯录"], corpus=["他们说要爆通讯录 abc12"], cache_dir=tmp_path)
    tokenizer.warm_up()
    for text in ("他们说要爆通讯录", "abc12催收", "a.b-c", "通讯录通讯录", ""):
        assert tokenizer._segmenter.cut(text) == _jieba_tokens(tokenizer, text)
    assert "爆通讯录" in tokenizer._segmenter.cut("他们说要爆通讯录")
    assert "abc12" in tokenizer._segmenter.cut("abc12催收")

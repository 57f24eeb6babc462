from bot.core.normalize import normalize
from bot.core.tokenize import ChineseTokenizer, build_reduced_dictionary


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

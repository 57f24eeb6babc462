"""Topic matching: self-consistency of the knowledge base and behaviour on ordinary text."""

from pathlib import Path

import pytest

from bot.core.normalize import normalize

ORDINARY = [
    "晚上一起吃火锅吗？",
    "妈，我周末回家，帮我留点饺子",
    "您的验证码是482913，5分钟内有效，请勿泄露。",
    "【顺丰速运】您的快递已放至小区丰巢柜，取件码6621。",
    "明天开会改到下午三点，记得带电脑",
    "生日快乐！祝你天天开心",
    "【美团】您的外卖已由骑手取货，预计18:40送达",
    "今天降温了，多穿点衣服",
    "周末去爬山吗？天气不错",
    "【中国移动】您本月话费账单已生成，可登录App查询。",
    "老师您好，孩子今天有点发烧，想请一天假",
    "你的银行卡号发过来，我把上次吃饭的钱转你",
    "房子装修好了，周末来家里吃饭",
    "高铁改签成功，G102次明早8点发车",
]


def test_leave_one_out_phrasings_still_reach_their_topic(kb, analyzer):
    from bot.core.detect import detect_signals

    total = hits = 0
    misses = []
    for topic in kb.topics:
        for phrasing in topic.examples:
            text = normalize(phrasing).text
            signals = detect_signals(normalize(phrasing), kb.signals)  # as the pipeline would
            ranked = [m.id for m in analyzer.matcher.match(text, signals, exclude=text)][:3]
            total += 1
            if topic.id in ranked:
                hits += 1
            else:
                misses.append((topic.id, phrasing, ranked))
    assert hits / total >= 0.9, misses[:20]


def test_every_topic_has_enough_distinct_phrasings(kb):
    for topic in kb.topics:
        assert len(set(topic.examples)) >= 8, topic.id


def test_no_signal_fires_on_ordinary_messages(kb):
    from bot.core.detect import detect_signals

    for text in ORDINARY:
        fired = [h.id for h in detect_signals(normalize(text), kb.signals)]
        assert fired == [], (text, fired)


def test_ordinary_messages_are_unrelated(analyzer):
    for text in ORDINARY:
        assert analyzer.analyze(text).verdict == "unrelated", text


def test_synonym_variants_add_their_term_latin_ones_only_as_whole_words(kb):
    from bot.core.match import SynonymExpander

    expander = SynonymExpander(kb.synonyms)
    assert expander.expand("cs说我yq了") == "催收说我逾期了"  # Latin spellings replaced where they stand
    assert expander.expand("崔收说我证信花了") == "崔收说我证信花了 催收 征信"  # Chinese variants: term added
    assert expander.expand("登录zxgk.court.gov.cn查询") == "登录zxgk.court.gov.cn查询"  # not 征信
    assert expander.expand("普通的一句话") == "普通的一句话"


@pytest.mark.parametrize(
    ("slang", "plain"),
    [
        ("cs天天打电话给我紧联，合法吗", "催收天天打电话给我的紧急联系人，合法吗"),
        ("证信上有yq记录能删掉吗", "征信上有逾期记录能删掉吗"),
        ("cuishou电话可以不接吗 一直响", "催收电话可以不接吗 一直响"),
        ("tingxi guazhang zenme shenqing", "停息挂账怎么申请"),
    ],
)
def test_slang_reaches_the_topic_of_the_plain_question(analyzer, slang, plain):
    # Among the first three: signals still read the plain words only (紧急联系人 fires, 紧联 does not).
    best_plain = analyzer.analyze(plain).topics[0].id
    assert best_plain in [t.id for t in analyzer.analyze(slang).topics[:3]]


def test_a_blank_synonym_variant_is_refused(tmp_path):
    import shutil

    from bot.knowledge import KnowledgeError, load_knowledge

    root = tmp_path / "knowledge"
    shutil.copytree(Path(__file__).resolve().parents[1] / "knowledge", root)
    (root / "synonyms.yaml").write_text("- id: x\n  term: 催收\n  variants: ['  ']\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"synonyms\.yaml"):
        load_knowledge(root)


def test_whole_pinyin_is_read_whether_syllables_are_joined_or_apart(kb):
    from bot.core.match import SynonymExpander

    expander = SynonymExpander(kb.synonyms)
    assert expander.expand("zhengxin能查吗") == "征信能查吗"
    assert expander.expand("zheng xin 能查吗") == "征信 能查吗"
    assert expander.expand("zhengxing") == "zhengxing"  # another word, not 征信

"""The safety check (bot/core/safety.py) on texts of our own; the blind sets are scored by the benchmark."""

from __future__ import annotations

import re

import pytest

from bot.core.normalize import normalize
from bot.core.safety import CrisisDetector
from bot.knowledge import load_knowledge
from bot.knowledge.load import expand_safety_pattern
from bot.knowledge.models import SafetyPhrases

_KB = load_knowledge()  # once for the module: the parametrized helper below needs it outside a fixture
_DETECTOR = CrisisDetector(_KB.safety)


def crisis(text: str) -> bool:
    return _DETECTOR.detect(normalize(text).text)


@pytest.mark.parametrize(
    "text",
    [
        "欠了四十万，这日子过不下去了，真不想活了",
        "我想死，谁都别劝我",
        "死了反而是种解脱吧，欠的钱也不用还了",
        "在楼顶站了半天，风很大",
        "药已经攒够了，就等周末",
        "手腕上又多了几道，是我自己划的",
        "遗书写好了，放在抽屉里",
        "把我家狗托付给室友了，以后就拜托他了",
        "我老婆说还不上就跳江，我现在很怕",
        "活着真没意思，每天睁眼就是催收",
        "我这种人活着就是拖累家里",
        "我。不想。再活了",
        "同事转给我他发的朋友圈“永别了，各位”，人找不到了",
        "催收说“你还不如去死”，我想了想，他说得对",
        "如果我出事了，保险够不够还债",
        "外公走了以后没人管我了，欠了一身债，好想去找他",
        "钱的事交代清楚了，我的游戏装备也都送给我弟了",
        "今晚去江边，不打算回来了",
        "我妹说“要是我不在了你们别难过”，她欠了很多网贷",
        "想给自己买个意外险，再出点意外，爸妈就能还上债",
        "我爸这几天老说'我走了以后你们别难过'，他欠了不少钱",  # someone close, in plain quotes
        "人生进度条到头了",
        "以后不会再麻烦大家了，谢谢",
        "網貸逾期半年，真的不想活了",  # Traditional characters
        "ｗｏ真的想死，欠太多了",  # full-width letters
    ],
)
def test_despair_in_its_many_forms_is_caught(text):
    assert crisis(text)


@pytest.mark.parametrize(
    "text",
    [
        "笑死，催收说要给我寄律师函",
        "想死你了，过年回来吃饭",
        "累死了，今天加班到十点",
        "吓死我了，这短信是真的吗",
        "气死我了，他们又打给我妈",
        "催收短信：“不还钱就等着跳楼吧”，这个能报警吗",  # the collector's words, quoted
        "你个老赖装死是吧，明天去你单位",  # a forwarded insult
        "新闻说有人被网贷逼得跳河，催收公司要坐牢吗",  # news, no worry for oneself
        "我爸去世了，他的信用卡要我还吗",  # inheritance: a question of law
        "借款人死亡后债务由谁偿还",
        "压力好大，不知道怎么办，能协商吗",
        "拼死拼活一年还是没还完",
        "催收发来'你怎么还不去死'，这种话能报警吗",  # a collector's words, in plain quotes
        "今晚加班，不用给我留饭了",
        "宿舍熄灯了，灯灭了明天再问",
        "刷题刷到想死，考完请自己喝奶茶",
        "【XX保险】您的意外险保单已生效，理赔请拨打客服电话",
        "把狗托付给邻居照看几天，我去外地出差",
        "紫砂壶能卖多少钱，想先还点信用卡",
        "我不想活得这么憋屈，明天就去跟银行谈",
        "",
    ],
)
def test_idioms_quotes_news_and_law_are_not_crises(text):
    assert not crisis(text)


def test_news_told_with_worry_for_oneself_is_a_crisis():
    assert crisis("看到新闻有人欠网贷跳楼了，我也想这样")


def test_a_long_text_is_read_to_its_end():
    long_text = "你装死是吧，欠钱不还。" * 15000 + "我真的不想活了"
    assert crisis(long_text)
    assert not crisis("你装死是吧，欠钱不还。" * 15000)


def test_every_group_catches_its_examples_and_not_its_lookalikes():
    for group in _KB.safety:
        if group.kind in ("crisis", "quoted", "agreeing"):
            assert all(crisis(e) for e in group.examples), group.id
        else:  # idioms, news words, "me too": their examples are what their own patterns match
            matcher = re.compile("|".join(expand_safety_pattern(p) for p in group.patterns))
            assert all(matcher.search(normalize(e).text) for e in group.examples), group.id
        assert not any(crisis(e) for e in group.lookalikes), group.id


def test_without_crisis_phrases_nothing_is_caught_and_idioms_alone_change_nothing():
    assert not CrisisDetector(()).detect("我不想活了")
    idioms_only = CrisisDetector([SafetyPhrases(id="i", kind="idiom", patterns=("笑死",))])
    assert not idioms_only.detect("笑死")
    assert idioms_only.detect("我死了算了")  # a bare 死 still counts

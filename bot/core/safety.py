"""The safety check that runs before anything else: words of wanting to die or to hurt oneself.

It errs towards care: a needless word of care costs little, a missed cry for help may cost a life. What it
leaves out is what a counsellor would not call a cry for help: idioms (笑死, 想死你了), a collector's words
quoted in a forwarded SMS ("你怎么不去死"), and news or fiction told without worry for oneself.

Patterns run on normalized text (full-width punctuation folded to ASCII except 。, no spaces, Simplified
characters). In them ``~N`` stands for up to N characters within one clause.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator

import re2

# Each group is one way people say it.
_SAYINGS: dict[str, list[str]] = {
    "wanting to die": [
        r"不想活(?![得在成])|不想(或|火|获)了|活不下去|活不成|不活了|(我|自己)~6不配活|不该活|活够了|活腻了|生不如死|不如死了|死了算了|死了也好",
        r"死了就好|死了就解脱|死了就不用|死了以后~8(什么都不知道|一了百了|解脱|不用还)",
        r"饿死了也(好|就)|一死了之|大不了一死|一了百了|想去死|寻死|求死|(?<!慢性)自杀|轻生|自尽|紫砂(?![壶锅杯茶煲])|zisha",
        r"(?<!是不是)(?<!你)(?<!到)想死(?![你您他她它我吗]|啦|咯|人)|(想|好想|真想|真的想)(zs|s|si|鼠)(?![a-z])|想重开|endital|killmyself",  # not 想死你了 ("miss you")
        r"(?<![你他她])(我|自己)(就|只能|只有|干脆)?去死|死的勇气|死~4(选择|解脱|出路)",
        r"了断|了结自己|结束自己|结束生命|结束(这)?一切(?![-—:]*[把先]|[-—:]*就是|[-—:]*也就是|[-—:]*结束)|早点结束|结束算了|同归于尽",
        r"另一个世界|离开这个世界|来世|下辈子(再|还|见|做)|等我(死了|不在了)|我不在了",
        r"不想(再)?醒来|永远(的|地)?消失|想消失|让我消失|不如消失|永远不回来|(这条)?命~8不想要",
        r"想不开|轻生的念头|自残|伤害自己|自鲨|自sha|紫砂了|安乐死|人间不值得|睡(过去|着)~3(不醒|不再醒|别醒)",
        r"再也不(用)?醒|没有我~4(更好|会好|就好)|如果没有我|不想待在这个世界|世界上~4没有我|活不起",
        r"不想活下去|没有勇气活|活着~3痛苦|坚持不下去了|撑不过去了|熬不住了|撑不到|不想(再)?挣扎",
        r"为什么还要活|为什么要活着|活着干(嘛|什么)|活着~4浪费|浪费空气|这辈子就(这样|到头)了|投个好胎",
        r"buxianghuo|xiangsi|qingsheng|(今晚|今天|明天|马上|就)解脱|(不要|别|不想|不用)再?醒(来|过来)",
        r"(哪种|什么|怎么)(方式|办法)~3走|走得~3(快|不痛苦)|不痛苦~3(方式|办法|死法)|真的想走了",
        r"(?<![爸妈])我(要是|哪天|如果|哪天要是)?不在了|不想再活|(我|自己)(是|就是)~6(累赘|拖累|负担)|没有我~6(更好|会好|就好)",
        r"(祈祷|希望|盼着)~6(得(个)?绝症|出(个)?意外|出事|被车撞)|如果我出事|我要是出事|给自己买~4意外险",
        r"(本人|我)(如果|要是)?(去世|死)了?~6(不用还|就不用|还要还)",
        # Euphemisms and hints gathered from texts people in debt write (crisis_texts3.jsonl).
        r"(去|到)(那边|天上|天堂)~4(找|见|陪)|想去(那边|天上|天堂)|天堂~10(想去|去看看)|想去见(外婆|奶奶|爷爷|外公|姥姥|姥爷|阿嬷|我爸|我妈)",
        r"(走了|走之前|去世|不在了)[^。]{0,40}(想|好想)(去)?(那边)?找(她|他)",
        r"没有任何希望|没有未来|不期待明天|期待过明天|怎么还活着|为什么还活着|不要再过生日|最后一个(心愿|愿望|生日)",
        r"早点(去|走)了|还不如去了|我也快了|反正快了|还能坚持多久|很快就(都)?结束了|慢慢没了|就这样没了",
        r"(打算|准备|决定)结束了|日子(定了|选好了)|解脱的(办法|方法)|什么都想通了|决定好了~10平静|(特别|突然)平静",
        r"没有我的位置|我该离开了|没脸再待|(我|自己)消失了~10(清净|清静|更好)|家里反而~4(清净|清静)|消失掉|世界上~3消失",
        r"不打算回来|不会再回来了|就不回来了|就当没生过|人生~6到此为止|江湖再见|如果有下辈子|下辈子不想再做人",
        r"(我|我这种人)~4不配(吃饭|活)|一具空壳|行尸走肉|自己的葬礼|我的葬礼|那(大概|应该)就是我|有人发现我",
        r"以后不用再回我|不用再回我消息|不用再找我|以后就不麻烦你了|认识你(挺|真|很)好|不陪你们了|别等我|不会再登",
        r"再也不回(了|消息)|(在|跟)~6道别|注销~4我自己|注销自己|安心(地)?走|今晚一起走|连死都不敢|怎么死(?!的)|唯一的出路",
        r"别问为什么|到时候帮我转|就说~4出远门|(以后)?照顾好(孩子|爸妈|我妈|我爸|家里|女儿|儿子)|帮我照顾(好)?(我的?)?(爸妈|孩子|女儿|儿子|我妈|我爸)",
        r"我走了~10(债|就不用|没关系)|(要是|如果)我走了|(装备|东西|账号)~10都送(给|人)|(东西|东西都)~4(分给|送给|送人)",
        r"(以后|反正)~4用不上了|以后(爸妈|家里)就靠(我|你)了|(银行卡|存折|日记)~10留给|照片都删了|好友~4删",
        r"谁(也|都)找不到(我)?了|命(卖|抵|赔)(了|给)|(安安静静|安静|悄悄|默默)地?(走掉|走了|离开)|就是我(走|去)了",
        r"(所有|一切)的?(问题|烦恼|痛苦)~4(都|就)?没了|(少了|没有)我~8(一样|更好|会好)|(彻底|永远)~3消失|从这个世界~4消失",
        r"(人|我)(没了|不在了|走了)~10(一笔勾销|不用还|就不用|还要还|会不会被催)|再见(了)?~6世界|🪦|⚰",
        r"以后(照顾|养)不了(它|他|她)|以后照顾好(爸妈|我妈|我爸|孩子|家里)|帮我照顾(好)?(爸妈|孩子|我妈|我爸)",
        r"这辈子最后~4一次|最后(看|见)一(次|眼)|突然(很|好)?平静|(给|回了|发了)~6最后一(条|封)|帮我跟~6说(声)?对不起",
    ],
    "means and acts": [
        r"跳楼|跳河|跳江|跳海|跳桥|跳下去|卧轨|上吊|割腕|割~3手腕|划(自己|手腕|手臂)",
        r"吞了~4药|吃安眠药|喝农药|喝药|百草枯|老鼠药|敌敌畏|烧炭|买了?~4安眠药|(攒|囤|藏)了?~4药",
        r"(一整瓶|一整板|一把|好多|一堆)(的)?药|买了?~4绳子|煤气~4(打开|开着|没关)|刀片|拿刀~4(自己|手腕)|划了~3(几道|好几道|一道)",
        r"爬(到|上)?(天台|楼顶)|从~4楼~4跳|(楼顶|天台|窗户|楼上|窗台)~3下去|楼~4(应该)?(够高|不算矮|不矮)",
        r"(窗边|窗户边|窗台|窗前)~4站了|(地铁|火车|列车|铁轨)~8(往前|跳|冲)|(哪|哪座|哪个)~3(桥|楼)~3(最高|高)",
        r"炭~6胶带|胶带~6炭|绳子~3(买好|准备好)|买好了?绳子|烫自己|烟头烫|伤自己|已经吃了药",
        r"药~4(攒|囤|存)(够|好)|自己划|手腕上~6(几道|划|口子|伤)",
        r"(吃|吞)多少~8(会|能)?(死|伤|救不回|致死)|救不回来|(哪种|什么)药~6(不痛苦|能死|会死)|安眠药~8(酒|一起吃)|攒够了?~4一起吃",
        r"故意(没|不)吃~4药|(停|断)了~4(心脏病|降压|救命)的?药|农药[^。]{0,20}想起|想起那瓶|带了炭|开好房~10炭",
        r"砸自己|掐自己|(掐|抓)到出血|烟头~4(按|烫)|(打火机|烟头)~6(烧|烫)~4(手|自己)|划了~3(刀|血|深)|流了好多血",
        r"(胳膊|手腕|手臂|大腿)上的?~3疤|忍不住~4(划|割)|(看|挑|买)~12绳子|意外险~12出(点|个)|(多高|几楼)~8(成功|能死|会死)|一次成功",
        r"(现在就在|我现在在|正在|人坐在|坐在|站在)(顶楼|楼顶|天台|窗台|桥上|江边|海边)|(楼顶|天台)的风|一直往(里|海里|水里)走",
        r"进站[^。]{0,12}(往前|挪了|迈了)|单程票[^。]{0,20}(结束|不回)|(输了|失败)就~3(不回来|去死|跳)|遗嘱写好|写(好)?了?遗嘱|🕯~10(给自己|再见|就这样)|给自己点的|就这样吧~4再见|都是4的事|想4的事",
        r"安眠药~8(多少|几片|会走|致死|够)|吃多少片|(吃|吞)了(一板|一瓶|一把|好多)|一板药|保险单|保单~6(放|在)",
        r"方向盘~4(往|一)~2(打|拐)|(想|差点)~6(撞过去|冲过去|撞上去|冲下去)|砸墙",
        r"(那|一)瓶(农药|安眠药|药)|方向盘~8(护栏|撞)|看着车流|(想|好想)冲过去|撞(过来|死)~4(就好|也好|算了)",
        r"(站|坐|待)在?(天台|楼顶|江边|河边|桥上|桥边|铁轨|阳台上)|(现在|正)在(桥上|天台|楼顶|江边|河边)|(就|我)去(河边|江边|桥上)|万一我[.…]*$",
        r"(天台|楼顶|江边|河边|桥上|阳台上?)~4(站|坐)了(很久|一下午|一夜|好久|半天|一会|一个多?小时|几个小时|一整晚|一晚上)",
        r"(半夜|深夜|一个人)~8(江边|河边|桥上|天台|楼顶)|刀~6(枕头|要不要)|差一点就[。.…!]*$",
    ],
    "goodbyes and plans": [
        r"遗书|遗言|交代后事|安排后事|保险受益人|受益人(也)?改|密码~8(发你|留给|写在)",
        r"最后一次(来|跟你|和你|说话)|永别|再见了[,。]?(谢谢|对不起|各位|大家|这个世界|爸|妈)",
        r"托付给(?![^。]{0,8}一段时间|[^。]{0,8}几天|[^。]{0,8}暂时)|以后(家里)?就(拜托|靠)你(们)?了|不想留下~3痕迹|留言~6别找我|最后一点钱|该交代的~4交代|我走了(以后|之后)|我走了~4(就|家里)|(明天|今晚|今天)(之后|以后|过后)就(不用|不会)再",
        r"带着孩子一起走|抱着孩子一起走|一起走了算了|对不起(爸妈|家人|父母)~6(先走|走了)",
    ],
    "no way out": [
        r"没有活路|没活路|没有路了|没路了|走投无路|绝望|撑不下去了|撑不住了|扛不住了|熬不下去|不想再撑|放弃自己",
        r"想解脱|活着太累|活着~3(没劲|没意思|没意义|太累|好累|挺累|辛苦|太苦)",
        r"没脸活|救救我|活着~4(没啥|没有)?盼头|(活着|人生|活下去|生活|撑下去)~4(还有|有)?什么(意义|意思)|不知道还有什么意义|没有(活下去的)?意义了",
        r"看不到~3(希望|出路|活路|尽头)|没(有)?(一点)?希望了",
        r"活着~4(就是|只是)?~2(拖累|累赘|多余)|(我|自己)(就是|只是|成了)~4(拖累|累赘)",
        r"(不想|不愿)(再)?(拖累|连累)(任何人|家里|家人|我们|你们|孩子)",
    ],
}


def _expand(patterns: list[str]) -> str:
    return "|".join(f"(?:{p})" for p in (re.sub(r"~(\d+)", r"[^,。!?]{0,\1}", p) for p in patterns))


def _compile(patterns: list[str]) -> re.Pattern[str]:
    return re.compile(_expand(patterns))


_CRISIS = _compile([p for patterns in _SAYINGS.values() for p in patterns])

# Any other 死 counts too ("死其实是个不错的选择", "他要是死了我们就不用还了"), unless it is one of these: an
# idiom or hyperbole, an insult or threat aimed at the reader, a death spoken of in law, or a 去死 (the first
# person's 去死 is in the sayings above; anyone else's is a collector's curse).
_NOT_DEATH = _compile(
    [
        r"装死|社死|社会性死亡|不得好死|死光|死绝|找死|作死|该死|去死|往死里|死死|逼死",
        r"(撞|弄|打|整|砍|捅|揍|搞|淹|毒|烧|摔|掐)死",
        r"吓死|吓得半死|半死|气死|笑死|累死|烦死|急死|饿死|热死|冷死|困死|忙死|痛死|疼死|渴死|撑死",
        r"闷死|丑死|美死|帅死|馋死|羡慕死|想死[你您他她它]|呼死你|要死不活|死马当活马医|死了这条心|死猪不怕开水烫",
        r"穷死|难死|难受死|恶心死|郁闷死|倒霉死|后悔死|尴尬死|(饿|冻|累|撑|打|穷)不死|拼死|死拼|死也不|死都不|死也要",
        r"死机|死党|死磕|死活|死心|死定|死板|死角|死亡率|死胡同|死循环|死记|死扣|死者|死刑|死缓|死账|死帐|死期",
        r"是不是想死|你想死|本人已死|有事烧纸|到想死|死亡证明|死卡|死透|要死要活|死去活来|死缠烂打|死皮赖脸|死要面子|死撑|死不(还|承认|认账|悔改|要脸|了)",
        r"死(骗子|老赖|赖皮|东西|鬼|狗|猪|全家|妈|人头)|死(你|您)|[你您]~3死",
        r"(借款人|欠款人|债务人|当事人|老人|父亲|母亲|爸爸|妈妈|我爸|我妈|爷爷|奶奶|老公|丈夫|妻子|老婆|配偶|亲人|家人)"
        r"~2(死了|死后|死亡|去世)|死亡(后|以后|之后)|死后(债|还|遗产|继承)",
    ]
)


_NOT_DEATH_RE2 = re2.compile(_NOT_DEATH.pattern)  # no lookarounds there: RE2 runs it in one linear pass


def _bare_deaths(text: str) -> Iterator[int]:
    """Where a 死 stands that none of the exceptions above explains, in order (lazily: long texts)."""
    excuses = _NOT_DEATH_RE2.finditer(text)
    excuse = next(excuses, None)
    at = text.find("死")
    while at >= 0:
        while excuse is not None and excuse.end() <= at:
            excuse = next(excuses, None)
        if excuse is None or at < excuse.start():
            yield at
        at = text.find("死", at + 1)


# A collector's "去死" quoted, and the reader taking it up: the quote is theirs, the agreement the reader's.
_AGREEING = _compile(
    [
        r"(死路一条|去死|不如死|跳楼)[”」』\"]?[^!?]{0,24}"
        r"(我想也是|我也这么想|我自己也这么觉得|说得对|骂得对|我确实|确实在想|认真想了|想了想)"
    ]
)

# ... and words of dying quoted from someone close ("他说“要是我死了你别哭”") are theirs to worry about.
_QUOTED_FAREWELL = _compile(
    [
        r"[“「『\"][^”」』\"]{0,10}(永别|下辈子(再|还)|再见了|对不起(爸妈|家人|父母)|晚安[,，]?永远)",
        r"[“「『\"][^”」』\"]{0,10}(我死了|我不在了|我走了以后|我只能去死|我就去死|我不活了)",
    ]
)

# Quoted words are someone else's (a collector's SMS); news and fiction are about someone else.
_QUOTED = re.compile(r"“[^”]*”|「[^」]*」|『[^』]*』|\"[^\"]*\"")
_SENTENCE = re.compile(r"[^。!?\n]+")
_ABOUT_OTHERS = re.compile(
    r"新闻|报道|电视剧|电影|小说|剧里|网上看到|看到网上|听说有|听说是|帖子说|有人被|有人因为"
)
_PAUSES = re.compile(r"[。.,!?~…\s]")
_ME_TOO = re.compile(r"我也|我都想|我真想|我好想|那(大概|应该)就是我")


# Python's re tries each of the hundreds of alternatives at every position (~0.5 ms a message, seconds for
# a 200 KB one); RE2 runs them all in one linear pass but has no lookarounds. So RE2 finds what *may* be a
# crisis (the sayings without their lookarounds: more, never fewer, matches) and re confirms, sentence by
# sentence, only where it found something.
_LOOKAROUND = re.compile(r"\(\?<?[!=][^()]*\)")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 64 << 20  # the sayings together need more DFA memory than RE2's default 8 MB
_MAYBE = re2.compile(_LOOKAROUND.sub("", _CRISIS.pattern), _RE2_OPTIONS)


def _unquoted(text: str) -> str:
    return _QUOTED.sub("。", text)


def _sentences_to_read(text: str) -> Iterator[str]:
    """The sentences where RE2 found something that may be a crisis, or a bare 死 stands, in order and
    lazily: on a long message the Python patterns read a few sentences, not thousands."""
    spots = heapq.merge((m.start() for m in _MAYBE.finditer(text)), _bare_deaths(text))
    sentences = _SENTENCE.finditer(text)
    sentence = next(sentences, None)
    for spot in spots:
        while sentence is not None and sentence.end() <= spot:
            sentence = next(sentences, None)
        if sentence is None:
            return
        if sentence.start() <= spot:
            yield sentence.group()
            sentence = next(sentences, None)  # each sentence once


def detect_crisis(normalized_text: str) -> bool:
    stripped = _PAUSES.sub("", normalized_text)
    quoted = any(mark in normalized_text for mark in '“「『"')
    # The text without pauses matches whatever the text matches (the windows never span a pause), and more.
    if not quoted and "死" not in normalized_text and not _MAYBE.search(stripped):
        return False
    unquoted = _unquoted(normalized_text)
    for sentence in _sentences_to_read(unquoted):
        said = _CRISIS.search(sentence) or next(_bare_deaths(sentence), None) is not None
        if said and (_ME_TOO.search(sentence) or not _ABOUT_OTHERS.search(sentence)):
            return True
    joined = _PAUSES.sub("", unquoted)
    if not _ABOUT_OTHERS.search(unquoted) and _MAYBE.search(joined) and _CRISIS.search(joined):
        return True  # "我。真的。不想。再活了": words cut apart for weight
    # A farewell someone wrote ("永别了") is quoted as it was sent; a collector does not write one.
    return bool(_AGREEING.search(normalized_text) or _QUOTED_FAREWELL.search(normalized_text))

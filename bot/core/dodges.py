"""The text the signal patterns read: spellings meant to slip past keyword filters, read back.

Scams write "白tiao未zhu销", "京.东.白.条", "zhi fu bao" so that a list of words does not catch them. The view
reads those back as the characters they stand for, and hides thousands separators from clause windows, while
keeping the map to the original text, so evidence still quotes what the user received.
"""

from __future__ import annotations

import dataclasses
import re

from bot.core.normalize import Normalized

_THOUSANDS = re.compile(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))")


# Syllables that scams spell in pinyin to slip past keyword filters ("白tiao未zhu销会影响征xin"), read back as
# the characters they stand for when they touch Chinese text.
_PINYIN_DODGES = {
    "tiao": "条", "zhu": "注", "xiao": "销", "xin": "信", "zheng": "征", "dai": "贷", "huan": "还",
    "kuan": "款", "cui": "催", "shou": "收", "jie": "借", "bei": "呗", "hua": "花", "zhuan": "转",
    "zhang": "账", "dong": "冻", "fa": "法", "yuan": "院", "jing": "警", "qian": "钱", "ka": "卡",
    "hu": "户", "yan": "验",
    # whole words, read as one (their syllables alone would be too ambiguous)
    "weilidai": "微粒贷", "tongdao": "通道", "zhifubao": "支付宝", "jiedong": "解冻", "zhuxiao": "注销",
    "baitiao": "白条", "jiebei": "借呗", "huabei": "花呗", "zhengxin": "征信", "weixin": "微信",
    "yzm": "验证码", "yhk": "银行卡", "zfb": "支付宝",  # initials people type for these
}  # fmt: skip
_SYLLABLES = "|".join(sorted(_PINYIN_DODGES, key=len, reverse=True))
# A run of Latin letters (words may be typed apart) touching Chinese text, not inside a web or mail address:
# "登录jiebei-fh.com" keeps its lookalike domain.
_DODGE = re.compile(
    r"(?<=[\u4e00-\u9fff])[a-z]+(?: [a-z]+)*(?![a-z0-9./_@-])|(?<![a-z0-9./_:@ -])[a-z]+(?: [a-z]+)*(?=[\u4e00-\u9fff])"
)
_SPELLED = re.compile(rf"(?:{_SYLLABLES})+")
_SYLLABLE = re.compile(_SYLLABLES)


# "京.东.白.条", "解·冻·金": a dot between two Chinese characters only hides a word from filters.
_SPLITTER = re.compile(r"(?<=[\u4e00-\u9fff])[.·•_*](?=[\u4e00-\u9fff])")


def _drop_splitters(norm: Normalized) -> Normalized:
    if not _SPLITTER.search(norm.text):
        return norm
    dropped = {m.start() for m in _SPLITTER.finditer(norm.text)}
    keep = [i for i in range(len(norm.text)) if i not in dropped]
    ends = norm.ends or tuple(o + 1 for o in norm.offsets)
    return Normalized(
        norm.original,
        "".join(norm.text[i] for i in keep),
        tuple(norm.offsets[i] for i in keep),
        tuple(ends[i] for i in keep),
    )


def _read_pinyin_dodges(norm: Normalized) -> Normalized:
    if not _DODGE.search(norm.text):
        return norm
    text: list[str] = []
    offsets: list[int] = []
    ends: list[int] = []
    last = 0

    old_ends = norm.ends or tuple(o + 1 for o in norm.offsets)

    def keep(a: int, b: int) -> None:
        text.extend(norm.text[a:b])
        offsets.extend(norm.offsets[a:b])
        ends.extend(old_ends[a:b])

    for run in _DODGE.finditer(norm.text):
        letters = [run.start() + i for i, ch in enumerate(run.group()) if ch != " "]
        compact = run.group().replace(" ", "")
        if not _SPELLED.fullmatch(compact):
            continue  # English or other words: left as they are
        keep(last, run.start())
        for syllable in _SYLLABLE.finditer(compact):
            a, b = letters[syllable.start()], letters[syllable.end() - 1] + 1
            for char in _PINYIN_DODGES[syllable.group()]:  # each character quotes the whole spelling
                text.append(char)
                offsets.append(norm.offsets[a])
                ends.append(old_ends[b - 1])
        last = run.end()
    keep(last, len(norm.text))
    return Normalized(norm.original, "".join(text), tuple(offsets), tuple(ends))


def detection_view(norm: Normalized) -> Normalized:
    """What the signals read: thousands separators hidden from clause windows, pinyin dodges read back."""
    text = _THOUSANDS.sub("_", norm.text)
    if text != norm.text:
        norm = dataclasses.replace(norm, text=text)
    return _read_pinyin_dodges(_drop_splitters(norm))

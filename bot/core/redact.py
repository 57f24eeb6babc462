"""Remove personal data from text before it is written anywhere (case rows, log lines, notes).

Spans are found on the normalized text (so full-width digits and spaced-out numbers are caught) and replaced
in the original text through the offset map. Short service numbers (95xxx, 12xxx, 400/800, 106xx) are not
personal and stay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.core.extract import find_personal_numbers
from bot.core.normalize import normalize

PLACEHOLDERS = {
    "id_number": "[身份证号]",
    "card_number": "[银行卡号]",
    "mobile": "[手机号]",
    "name": "[姓名]",
}

# Words that look like a name slot but are not a person's name.
_NOT_NAMES = {
    "客户", "用户", "会员", "持卡人", "借款人", "老师", "朋友", "亲", "家人", "大家", "各位", "您", "你",
    "先生", "女士", "小姐", "同学", "车主", "业主", "家长", "尊敬", "亲爱", "领导", "同事", "贵宾",
}  # fmt: skip
_NAME = r"[\u4e00-\u9fff·]{1,4}?"
_CJK = r"[\u4e00-\u9fff]"
_NAME_PATTERNS = (
    # 尊敬的张伟： / 尊敬的客户王芳您好 / 亲爱的李娜
    re.compile(
        r"(?:尊敬的|亲爱的|致)(?:客户|用户|会员|持卡人|借款人)?("
        + _NAME
        + r")(?=先生|女士|小姐|[,:;!\s]|您好|你好)"
    ),
    # 王先生 / 请张女士
    re.compile(r"(" + _CJK + r"{1,3}?)(?=先生|女士|小姐)"),
    # 张三您好 / 张三:您好 / 张三,你好
    re.compile(r"(?:^|[\s,:;.!?【】。])(" + _CJK + r"{2,3})[,:;\s]{0,2}(?=您好|你好)"),
    # 您好王小明,
    re.compile(r"(?:您好|你好)[,:;!\s]{0,2}(" + _CJK + r"{2,3})(?=[,:;!])"),
    # 【XX金融】张伟,您的借款…: the collector's usual opening names the addressee right after the sender
    re.compile(r"】(" + _CJK + r"{2,3})(?=[,:;!])"),
    # 借款人:赵强 / 户名:李四
    re.compile(
        r"(?:借款人|当事人|被告|被执行人|债务人|客户|用户|申请人|被申请人|姓名|户名)[:]("
        + _CJK
        + r"{2,3})(?=[,;:\s(（。]|$)"
    ),
)
# Words that stand where a name could, but are not names ("【XX】提醒：…", "您好,您的…").
_NOT_IN_NAMES = (
    "客户",
    "用户",
    "会员",
    "您",
    "你",
    "提醒",
    "通知",
    "提示",
    "公告",
    "紧急",
    "重要",
    "温馨",
    "最后",
    "先生",
    "女士",
    "小姐",
)
_LEFT_VERBS = ("联系", "通知", "告诉", "转告", "提醒", "麻烦", "谢谢", "感谢", "告知")
# Characters that end a name slot on the left: "请张先生" names 张, not 请张.
_LEFT_STOP = set("的请给您你致对向和与及是在为让叫找位各被由把将已于就都也")


def _name_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for pattern in _NAME_PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span(1)
            captured = text[start:end]
            if any(w in captured for w in _NOT_IN_NAMES):
                continue
            if "的" in captured:  # "尊敬的张先生": a name never holds 的, the name follows it
                start += captured.rindex("的") + 1
            for verb in _LEFT_VERBS:  # "联系李女士" names 李
                if text.startswith(verb, start) and end - start > len(verb):
                    start += len(verb)
                    break
            while start < end and text[start] in _LEFT_STOP:
                start += 1
            name = text[start:end]
            if name and name not in _NOT_NAMES:
                spans.append((start, end))
    return spans


def redact(
    text: str, *, placeholders: Mapping[str, str] = PLACEHOLDERS, keep: frozenset[str] = frozenset()
) -> str:
    """Return ``text`` with ID-card, bank-card and mobile numbers and addressee names replaced.

    ``keep`` names kinds to leave alone (complaint drafts keep the collector's mobile numbers as evidence).
    """
    if not text:
        return text
    norm = normalize(text)
    found: list[tuple[int, int, str]] = [
        (s.start, s.end, placeholders[s.kind]) for s in find_personal_numbers(norm.text) if s.kind not in keep
    ]
    if "name" not in keep:
        found += [(a, b, placeholders["name"]) for a, b in _name_spans(norm.text)]
    if not found:
        return text
    # Map to original spans, merge overlaps, replace right to left so earlier offsets stay valid.
    merged: list[tuple[int, int, str]] = []
    for a, b, tag in sorted((*norm.original_span(a, b), tag) for a, b, tag in found):
        if merged and a < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], b), last[2])
        else:
            merged.append((a, b, tag))
    out = text
    for a, b, tag in reversed(merged):
        out = out[:a] + tag + out[b:]
    return out


_LONG_DIGIT_RUN = re.compile(r"[0-9０-９][0-9０-９ -]{6,}[0-9０-９]")


def redact_fragment(text: str) -> str:
    """Redact a quoted piece of a message: besides :func:`redact`, a long run of digits is masked too, since
    a quote cut at its end may hold part of an ID, card or phone number that no longer looks like one."""
    return _LONG_DIGIT_RUN.sub("[数字]", redact(text))

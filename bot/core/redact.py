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
_NAME_PATTERNS = (
    re.compile(r"(?:尊敬的|亲爱的|致)(" + _NAME + r")(?=先生|女士|小姐|[,，:：;；!！\s]|您好|你好)"),
    re.compile(r"([\u4e00-\u9fff]{1,3}?)(?=先生|女士|小姐)"),
    re.compile(r"(?:^|[\s,，:：。!！【】])([\u4e00-\u9fff]{2,3})(?=您好|你好)"),
    re.compile(
        r"(?:借款人|当事人|被告|被执行人|债务人|客户|用户|申请人|被申请人|姓名|户名)[:：]([\u4e00-\u9fff]{2,3})(?=[,，。;；:：\s(（]|$)"
    ),
)
_NOT_IN_NAMES = ("客户", "用户", "会员", "您好", "你好")
# Characters that end a name slot on the left: "请张先生" names 张, not 请张.
_LEFT_STOP = set("的请给您你致对向和与及是在为让叫找位各被由把将已于就都也")


def _name_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for pattern in _NAME_PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span(1)
            while start < end and text[start] in _LEFT_STOP:
                start += 1
            name = text[start:end]
            if name and name not in _NOT_NAMES and not any(w in name for w in _NOT_IN_NAMES):
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

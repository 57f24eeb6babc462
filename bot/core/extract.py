"""Find entities in normalized text: senders, phone numbers, links, amounts, dates, case numbers, platforms,
and the personal numbers (ID cards, bank cards) that must be counted but never repeated.

All patterns here are fixed by the code (not operator-written) and written without nested quantifiers, so
Python's ``re`` is safe on any input size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.core.normalize import Normalized

_NOT_DIGIT_BEFORE = r"(?<![0-9])"
_NOT_DIGIT_AFTER = r"(?![0-9])"

SENDER = re.compile(r"【([^【】\n]{1,24})】|^\[([^\[\]\n]{1,24})\]")
MOBILE = re.compile(_NOT_DIGIT_BEFORE + r"(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}" + _NOT_DIGIT_AFTER)
LANDLINE = re.compile(_NOT_DIGIT_BEFORE + r"0[1-9][0-9]{1,2}-?[2-9][0-9]{6,7}" + _NOT_DIGIT_AFTER)
SERVICE_NUMBER = re.compile(
    _NOT_DIGIT_BEFORE
    + r"(?:95[0-9]{3,4}|96[0-9]{3}|12[0-9]{3}|10[0-9]{3}|106[0-9]{5,17}|[48]00-?[0-9]{3}-?[0-9]{4})"
    + r"(?![0-9元块万号年月日]|[,.][0-9])"
)
URL = re.compile(
    r"(?:https?://|www\.)[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef，。！？、；：“”‘’（）【】《》]{1,500}"
    r"|(?<![a-z0-9@.])[a-z0-9][a-z0-9-]{0,62}(?:\.[a-z0-9-]{1,63}){0,8}"
    r"\.(?:com|cn|net|org|cc|top|vip|xyz|me|ly|io|co|info|app|link|club|site|shop|tk|ml|im|tv|in|ink|pub)"
    r"(?:/[a-z0-9/_\-.?=&%#]{0,500})?(?![a-z0-9])"
)
# Quantifiers are bounded: an unbounded "[0-9,]*" before a unit backtracks quadratically over a long run
# of digits that has no unit after it.
AMOUNT = re.compile(
    r"(?:[¥￥]\s?[0-9][0-9,]{0,15}(?:\.[0-9]{1,4})?)"
    r"|(?:[0-9][0-9,]{0,15}(?:\.[0-9]{1,4})?\s?(?:万元|元|块|万|rmb))"
    r"|(?:人民币\s?[0-9][0-9,]{0,15}(?:\.[0-9]{1,4})?)"
)
DATE = re.compile(
    r"[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}[日号]?"
    r"|[0-9]{1,2}月[0-9]{1,2}[日号]"
    r"|" + _NOT_DIGIT_BEFORE + r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}" + _NOT_DIGIT_AFTER
)
# Case numbers (fact base §4): "(" year ")" court code, case-type code, serial, "号". Arbitration numbers
# follow looser local formats: "(2026)X仲案字第12号", "(2026)X仲字第12号".
_COURT_CODE = r"(?:最高法|[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼兵][0-9]{0,4})"
CASE_NUMBER = re.compile(
    r"[(\[〔][0-9]{4}[)\]〕]\s?"
    r"(?:" + _COURT_CODE + r"[0-9a-z]{0,2}[\u4e00-\u9fff]{1,6}[0-9]{1,7}号"
    r"|[\u4e00-\u9fff0-9]{1,10}仲[\u4e00-\u9fff]{0,3}第?[0-9]{1,7}号)"
)
ID_NUMBER = re.compile(
    r"(?<![0-9a-z])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9x]"
    r"(?![0-9a-z])"
)
# 16-19 digits, plain or in groups of four; a 17-19-digit card printed in groups ends in a short group
# ("6222 0212 3456 7890 123"), which belongs to the number.
CARD_NUMBER = re.compile(
    _NOT_DIGIT_BEFORE + r"[1-9][0-9]{3}(?:[ -]?[0-9]{4}){3}(?:[0-9]{1,3}|[ -][0-9]{1,3})?" + _NOT_DIGIT_AFTER
)


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class Entities:
    senders: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    case_numbers: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    id_numbers: int = 0
    card_numbers: int = 0
    personal_spans: tuple[Span, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "senders": list(self.senders),
            "phones": list(self.phones),
            "urls": list(self.urls),
            "amounts": list(self.amounts),
            "dates": list(self.dates),
            "case_numbers": list(self.case_numbers),
            "platforms": list(self.platforms),
            "id_numbers": self.id_numbers,
            "card_numbers": self.card_numbers,
        }


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in taken)


def find_personal_numbers(text: str) -> list[Span]:
    """ID-card, bank-card and mobile numbers in normalized text, non-overlapping, longest kinds first."""
    spans: list[Span] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in (("id_number", ID_NUMBER), ("card_number", CARD_NUMBER), ("mobile", MOBILE)):
        for m in pattern.finditer(text):
            if not _overlaps(m.span(), taken):
                spans.append(Span(kind, m.start(), m.end(), m.group()))
                taken.append(m.span())
    return sorted(spans, key=lambda s: s.start)


class AliasFinder:
    """Finds what a text names by any of its aliases (lenders by 花呗/蚂蚁花呗, terms by their slang), longest
    alias first; each id once, in the order first named."""

    def __init__(self, aliases: dict[str, str]):
        # aliases: normalized alias -> id
        self._by_alias = aliases
        ordered = sorted(aliases, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(a) for a in ordered)) if ordered else None

    def find(self, text: str) -> tuple[str, ...]:
        if self._pattern is None:
            return ()
        return _unique(self._by_alias[m.group()] for m in self._pattern.finditer(text))


def extract_entities(norm: Normalized, platforms: AliasFinder) -> Entities:
    text = norm.text
    personal = find_personal_numbers(text)
    case_numbers = [m for m in CASE_NUMBER.finditer(text)]
    taken = [(s.start, s.end) for s in personal if s.kind != "mobile"] + [m.span() for m in case_numbers]
    phones = [s.value for s in personal if s.kind == "mobile"]
    for pattern in (SERVICE_NUMBER, LANDLINE):
        for m in pattern.finditer(text):
            if not _overlaps(m.span(), taken):
                phones.append(m.group())
                taken.append(m.span())
    # Senders are shown to people: quote them as written ("XX金融", not the lower-cased "xx金融").
    senders = [norm.quote(*next(m.span(g) for g in (1, 2) if m.group(g))) for m in SENDER.finditer(text)]
    return Entities(
        senders=_unique(s.strip() for s in senders),
        phones=_unique(phones),
        urls=_unique(m.group().rstrip(".,;:!?") for m in URL.finditer(text)),
        amounts=_unique(m.group() for m in AMOUNT.finditer(text)),
        dates=_unique(m.group() for m in DATE.finditer(text)),
        case_numbers=_unique(m.group().replace(" ", "") for m in case_numbers),
        platforms=platforms.find(text),
        id_numbers=sum(1 for s in personal if s.kind == "id_number"),
        card_numbers=sum(1 for s in personal if s.kind == "card_number"),
        personal_spans=tuple(personal),
    )

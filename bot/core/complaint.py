"""Complaint and report drafts from analysed messages (pure: no I/O).

A draft names the facts (the message quoted, with when and from whom), the conduct complained of with the
rules it breaks and their fact-base ids, and what the user asks for. The collector's words and numbers are
evidence and stay; the user's own details become placeholders (【姓名】, 【身份证号】); what the message does not
carry (when it arrived, from which number) comes from forward metadata or stays a placeholder (【收到时间】).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.compose import short_title
from bot.core.models import Analysis
from bot.core.redact import redact
from bot.knowledge import Knowledge
from bot.knowledge.models import SOURCE_REF, VERDICT_LABELS_ZH, VERDICT_ORDER, ComplaintChannel

DRAFT_PLACEHOLDERS = {
    "id_number": "【身份证号】",
    "card_number": "【银行卡号】",
    "mobile": "【手机号】",
    "name": "【姓名】",
}
CHANNEL_ORDER = ("lender", "12378", "110", "96110", "12321")
_NOT_LENDERS = re.compile(r"法院|仲裁|公安|警|检察|12368|12381|96110|通知|提醒|反诈")


@dataclass(frozen=True)
class Message:
    text: str  # what the user sent
    analysis: Analysis
    received_at: str | None = None  # from forward metadata, when known
    sender: str | None = None  # the sending number or name, when known


@dataclass(frozen=True)
class Draft:
    channel: str
    name: str
    to: str
    subject: str
    body: str
    sources: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
            "sources": list(self.sources),
        }


def quote_for_draft(text: str) -> str:
    """The message as evidence: the user's own name, ID and card numbers become placeholders; the
    collector's phone numbers stay, because they are what the complaint is about."""
    return redact(text, placeholders=DRAFT_PLACEHOLDERS, keep=frozenset({"mobile"}))


def headline_verdict(messages: Sequence[Message]) -> str:
    verdicts = {m.analysis.verdict for m in messages}
    return next((v for v in VERDICT_ORDER if v in verdicts), "unrelated")


def fitting_channels(kb: Knowledge, messages: Sequence[Message]) -> tuple[ComplaintChannel, ...]:
    verdict = headline_verdict(messages)
    signal_ids = tuple(h.id for m in messages for h in m.analysis.signals)
    fitting = [c for c in kb.complaint_channels if c.fits(verdict, signal_ids)]
    rank = {cid: i for i, cid in enumerate(CHANNEL_ORDER)}
    return tuple(sorted(fitting, key=lambda c: rank.get(c.id, len(rank))))


def _lender(kb: Knowledge, messages: Sequence[Message]) -> str:
    names = {p.id: p.name for p in kb.platforms}
    for m in messages:  # a lender the knowledge base knows, in any of the messages, first
        for platform_id in m.analysis.entities.platforms:
            if platform_id in names:
                return names[platform_id]
    for m in messages:  # else a sender signature that is not a court or an official service number
        for sender in m.analysis.entities.senders:
            if not _NOT_LENDERS.search(sender):
                return sender
    return "【借款平台名称】"


def _facts(messages: Sequence[Message]) -> list[str]:
    lines = []
    for i, m in enumerate(messages, 1):
        when = m.received_at or "【收到时间】"
        sender = m.sender or "【发送号码】"
        lines.append(f"{i}. {when}，我的手机【本人手机号】收到{sender}发来的信息，原文如下：")
        lines.append(f"“{quote_for_draft(m.text).strip()}”")
        numbers = [*m.analysis.entities.phones, *m.analysis.entities.urls]
        if numbers:
            lines.append(f"信息中留下的号码或链接：{'、'.join(numbers)}")
    return lines


def cite(kb: Knowledge, refs: Sequence[str]) -> str:
    """ "L13 第25条" -> "个人信息保护法第25条（L13）"; other material by its fact-base id."""
    parts = []
    for ref in refs:
        match = SOURCE_REF.match(ref)
        if match and match["id"].startswith("L") and match["id"] in kb.sources:
            title = short_title(kb.sources[match["id"]].title)
            parts.append(f"{title}{match['article'] or ''}（{match['id']}）")
        else:
            parts.append(f"资料{ref}")
    return "；".join(parts)


def _violations(kb: Knowledge, messages: Sequence[Message]) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    sources: list[str] = []
    hits = [h for m in messages for h in m.analysis.signals]
    number = 0
    for rule in kb.conduct_rules:
        evidence = list(dict.fromkeys(quote_for_draft(h.evidence) for h in hits if rule.covers(h.id)))
        if not evidence:
            continue
        number += 1
        quoted = "、".join(f"“{e}”" for e in evidence[:3])
        lines.append(f"{number}. {rule.conduct}：信息中称{quoted}。")
        for r in rule.rules:
            lines.append(f"   · {r.text}（依据：{cite(kb, r.sources)}）")
            sources += r.sources
    return lines, sources


def draft_complaints(
    kb: Knowledge, messages: Sequence[Message], channel: str | None = None
) -> tuple[Draft, ...]:
    """Drafts for every fitting channel (or only ``channel``); empty when none fits the verdict."""
    if not messages:
        return ()
    lender = _lender(kb, messages)
    violations, rule_sources = _violations(kb, messages)
    drafts = []
    for ch in fitting_channels(kb, messages):
        if channel is not None and ch.id != channel:
            continue
        verdict = headline_verdict(messages)
        body = [
            f"{ch.to}：",
            "",
            ch.opening,
            "",
            "一、投诉人",
            "姓名：【姓名】　身份证号：【身份证号】　联系电话：【联系电话】",
            f"涉及机构（以信息中的自称为准）：{lender}",
            "",
            "二、事实经过",
            *_facts(messages),
            f"（自动分析判断为：{VERDICT_LABELS_ZH[verdict]}）",
            "",
            "三、违规之处",
            *(violations or ["【请写明对方的具体做法】"]),
            "",
            "四、诉求",
            *(f"{i}. {ask}" for i, ask in enumerate(ch.asks, 1)),
            "",
            "五、证据",
            "短信截图、来电记录、通话录音（请一并提交原件或截图）。",
            "",
            "投诉人：【姓名】　　日期：【日期】",
        ]
        if ch.note:
            body += ["", f"说明：{ch.note}"]
        drafts.append(
            Draft(
                channel=ch.id,
                name=ch.name,
                to=ch.to,
                subject=ch.subject.replace("{lender}", lender),
                body="\n".join(body),
                sources=tuple(dict.fromkeys([*rule_sources, *ch.sources])),
            )
        )
    return tuple(drafts)

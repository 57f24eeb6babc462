"""Tell a forwarded message from a typed question, and whether a question describes a situation."""

from __future__ import annotations

import re

from bot.core.extract import Entities

_QUESTION_END = re.compile(r"(?:[?？]|[吗嘛么呢吧啊呀][?？!！。.~～]*)\s*$")
_QUESTION_WORDS = re.compile(
    r"怎么办|怎么|咋办|咋整|如何|是不是|是真的吗|真的假的|合法吗|违法吗|犯法吗|会不会|能不能|可不可以|有没有|"
    r"要不要|该不该|该怎么|有用吗|靠谱吗|正常吗|多久|多少|哪里|在哪|谁|什么|为什么|为啥|吗[?？]?$"
)
_FIRST_PERSON = re.compile(r"^我|我(?:的|欠|借|逾期|收到|接到|被|现在|该|想|能|会|要|老公|老婆|爸|妈|家)")
_SMS_MARKERS = re.compile(
    r"尊敬的|您的|您好|贵方|本人|我司|本司|本院|我行|本行|本机构|特此|通知|退订|回复td|拒收|详询|客服|"
    r"请于|请在|请尽快|逾期|欠款|账单|应还|到期|截止|工作人员|专员|【|】"
)
_SITUATION = re.compile(
    r"他们|她们|对方|催收的|催收员|催收人|有人|收到|接到|发来|发了|发短信|打电话|打来|来电|短信说|电话说|说要|说我|"
    r"说会|说已|让我|叫我|要我|逼我|威胁|骂我|吓我|天天|一直打|打给|打到|找我|找到|上门了|来家|通知我|告诉我"
)


def classify_kind(text: str, entities: Entities) -> str:
    """``"question"`` for a typed question, ``"sms"`` for a forwarded message (the default)."""
    stripped = text.strip()
    if not stripped:
        return "sms"
    question = 0
    question += 2 if _QUESTION_END.search(stripped) else 0
    question += min(2, len(_QUESTION_WORDS.findall(stripped)))
    question += 1 if _FIRST_PERSON.search(stripped) else 0
    sms = len(_SMS_MARKERS.findall(stripped))
    sms += 2 * bool(entities.senders) + bool(entities.urls) + bool(entities.amounts) + bool(entities.case_numbers)
    sms += bool(entities.phones) + bool(entities.dates)
    sms += 1 if len(stripped) > 80 else 0
    return "question" if question > sms else "sms"


def describes_situation(text: str) -> bool:
    """Whether a question tells what happened to the asker ("他们说要爆我通讯录"), not a general question."""
    return bool(_SITUATION.search(text))

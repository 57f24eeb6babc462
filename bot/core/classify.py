"""Tell a forwarded message from a typed question, and whether a question describes a situation."""

from __future__ import annotations

import re

from bot.core.extract import Entities

# "…等着警察上门吧。" ends in 吧 but asks nothing: only 吗/嘛/么/呢 or a question mark end a question.
_QUESTION_END = re.compile(r"(?:[?？]|[吗嘛么呢][?？!！。.~～]*)\s*$")
_QUESTION_WORDS = re.compile(
    r"怎么办|怎么|咋办|咋整|如何|是不是|是真的吗|真的假的|合法吗|违法吗|犯法吗|会不会|能不能|可不可以|"
    r"要不要|该不该|有用吗|靠谱吗|正常吗|可以吗|行不行|为什么|为啥|真的吗|是真的|是假的|"
    # Asking without a question mark: "…想了解一下大概流程", "求问…".
    r"想了解|想问一下|想问下|求问|求解答|求助|有没有懂的|有人知道|有没有人知道|什么区别|有何区别|什么意思|啥意思"
)
# Words that ask only when the sentence ends as a question ("欠了多少钱" in a threat asks nothing).
_WEAK_QUESTION_WORDS = re.compile(r"多久|多少|哪里|在哪|有没有|几天|几次")
# The asker speaking of themselves ("我欠了…", "催收说我…"); collectors say 我司/我方/我们 instead.
_NARRATOR = re.compile(r"我(?![们司方行院所处部])")
_SECOND_PERSON = re.compile(r"[你您](?![好们])")
_SMS_MARKERS = re.compile(
    r"尊敬的|您的|贵方|本人|我司|本司|本院|我行|本行|我方|本机构|特此|通知|退订|回复td|拒收|详询|"
    r"请于|请在|请尽快|请您|欠款|应还|截止|工作人员|专员|【|】"
)
_DOMAIN = re.compile(
    r"催|欠|还款|还钱|逾期|借|贷|征信|信用|法院|起诉|诉讼|传票|案号|立案|仲裁|调解|律师|法务|短信|电话|通讯录|上门|"
    r"外访|骗|转账|账户|冻结|失信|限高|坐牢|报警|投诉|利息|罚息|分期|协商|花呗|白条|信用卡|银行|网贷|债|担保|"
    r"不想活|想死|自杀|活不下去"
)
# Words of a debt being chased: a message with these that no signal explains deserves a second look.
_DEBT_TALK = re.compile(r"催收|欠款|欠钱|欠债|逾期|还款|还钱|债务|借款|贷款|起诉|律师|法院|征信|结清|拖欠")


def talks_about_debt(text: str) -> bool:
    return bool(_DEBT_TALK.search(text))


_ADDRESSEE = re.compile(r"[你您]")
# "催收专员：…", "通知：…": a label before a colon starts a quoted message, not a question.
_SPEAKER_LABEL = re.compile(r"^[^\s，。,.:：?？]{2,8}[:：]")
_SELF_INTRODUCTION = re.compile(r"^(?:[你您]好[,，!！]?\s*)?我是")
# A search-box query: short, no punctuation but spaces and question marks, no 你/您, no digits (amounts, dates
# and numbers belong to messages).
_SEARCH_QUERY = re.compile(r"^[^\W\d_你您]+(?:\s+[^\W\d_你您]+){0,3}\s*[?？]?$")
_SEARCH_QUERY_MAX = 20
_SENTENCE_END = re.compile(r"[。！？!?；;]+")
_SITUATION = re.compile(
    r"他们|她们|对方|催收的|催收员|催收人|有人|(?<!催)收到|接到|发来|发了|发短信|打电话|打来|来电|说要|说我|说会|说已|"
    r"让我|叫我|要我|逼我|帮我|给我|威胁|骂我|吓我|天天|一直打|打给|打到|找我|找到|上门了|来家|通知我|告诉我|"
    r"(?:催收|客服|中介|平台|银行|法院|律师|短信|电话|他|她|对方|网贷|花呗|借呗|贷款)[^，。]{0,4}说"
)


def _looks_like_search(stripped: str) -> bool:
    return (
        len(stripped) <= _SEARCH_QUERY_MAX
        and bool(_SEARCH_QUERY.match(stripped))
        and bool(_DOMAIN.search(stripped))
        and not _SMS_MARKERS.search(stripped)
    )


# "能不能借我两万": someone asking the reader for money, not the reader asking this bot.
_ASKS_THE_READER = re.compile(r"借我|借给我|帮我(转|垫|打)|你先(转|垫|打)|先帮我(转|垫|打)")


def classify_kind(text: str, entities: Entities) -> str:
    """``"question"`` for a typed question or a user's own account, ``"sms"`` for a forwarded message."""
    stripped = text.strip()
    if not stripped:
        return "sms"
    if _looks_like_search(stripped):
        return "question"  # "网贷逾期起诉流程": typed like a search, addressed to no one

    ends_as_question = bool(_QUESTION_END.search(stripped))
    form = 2 * ends_as_question + min(2, len(_QUESTION_WORDS.findall(stripped)))
    form += ends_as_question and bool(_WEAK_QUESTION_WORDS.search(stripped))
    # The asker speaks of "我"; a collector's or a friend's message speaks to "你".
    first, second = len(_NARRATOR.findall(stripped)), len(_SECOND_PERSON.findall(stripped))
    # "我是李总，…" opens a message by its sender: that 我 tells nothing of the asker.
    narrator = first > second and not _SELF_INTRODUCTION.match(stripped)
    if second > first and (not ends_as_question or (second >= 2 and first == 0)):
        form = 0  # "看她能不能受得了", "你爸妈没教过你吗？" spoken to "你": a taunt, not a question
    situation = bool(_SITUATION.search(stripped))
    if form == 0 and not (narrator and situation):
        return "sms"  # no question form, and no one telling what happened to them: a forwarded message
    if not _DOMAIN.search(stripped):
        # A question to this bot is about debts, collection, courts or scams; other chat is a forwarded message.
        return "sms"
    question = form + 2 * narrator + situation
    sms = len(_SMS_MARKERS.findall(stripped))
    sms += (
        2 * bool(entities.senders)
        + bool(entities.urls)
        + bool(entities.amounts)
        + bool(entities.case_numbers)
    )
    sms += bool(entities.phones) + bool(entities.dates)
    # People type short questions; forwarded messages run long, hold several sentences, address "你/您".
    sms += (len(stripped) > 50) + (len(stripped) > 80) + (len(stripped) > 140)
    sms += len(_SENTENCE_END.findall(stripped)) >= 3
    sms += len(_ADDRESSEE.findall(stripped)) >= 2
    sms += 2 * bool(_SPEAKER_LABEL.match(stripped) or _SELF_INTRODUCTION.match(stripped))
    sms += 4 * bool(_ASKS_THE_READER.search(stripped))
    return "question" if question > sms or (narrator and question == sms) else "sms"


# "催收可以打给我爸妈吗" asks whether something is allowed; "催收打给我爸妈了" tells what happened.
_MODAL_BEFORE = re.compile(r"可以|可不可以|能不能|能否|能|会不会|是否|允许|有权|有没有权")


# "能告他们吗": a "they" tells of someone acting, whatever modal stands before it.
_PRONOUNS = frozenset({"他们", "她们", "对方", "有人"})
# ... unless a modal follows it: "他们能不能进门" asks what they may do, nothing they did.
_MODAL_AFTER = re.compile(r"(到底|究竟|真的)?(可以|可不可以|能不能|能否|能|会不会|是否|有权|有没有权)")


def is_general_question(text: str) -> bool:
    """A question in form ("…合法吗") that tells nothing that happened to the asker ("他们说要爆我通讯录")."""
    stripped = text.strip()
    asks = bool(_QUESTION_END.search(stripped) or _QUESTION_WORDS.search(stripped)) or _looks_like_search(
        stripped
    )
    told = any(
        (m.group() in _PRONOUNS and not _MODAL_AFTER.match(stripped, m.end()))
        or (
            m.group() not in _PRONOUNS
            and not _MODAL_BEFORE.search(
                re.split(r"[,，。!！?？;；]", stripped[max(0, m.start() - 6) : m.start()])[-1]
            )
        )
        for m in _SITUATION.finditer(stripped)
    )
    return asks and not told

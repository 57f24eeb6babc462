"""The Telegram channel (python-telegram-bot 22): polling by default, a webhook when one is configured.

Telegram types stay inside this module. A message becomes the service's neutral :class:`Incoming`; the
neutral :class:`Reply` it gets back is rendered here as HTML (everything escaped, split under 4,096
characters) with inline buttons: 👍/👎 (stored on the case), "不是这个意思" (the next-best topics as
buttons), "详细" (the long answer), "生成投诉材料" (illegal collection and scams) and "有新结论时通知我"
(unsure verdicts).

Also here: screenshots (photos and image documents, downloaded and read on this machine by the service),
``/evidence`` (the chat's messages still in memory as one record, with complaint drafts), the operators'
``/review`` and ``/stats`` (ids in OPERATOR_IDS), and the running bot's background work: notifying users of
operators' conclusions, retention and knowledge hot-reload (bot/maintenance.py).

Bot API methods used: getMe, deleteWebhook, setWebhook, getUpdates, sendMessage, sendDocument,
editMessageReplyMarkup, answerCallbackQuery, sendChatAction, setMyCommands, getFile (and the file download
from TELEGRAM_BASE_FILE_URL). (editMessageText is allowed by the issue but not needed.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import html
import logging
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.adapters.telegram_polling import run_polling
from bot.adapters.telegram_webhook import WebhookConfig, run_webhook
from bot.core import Analysis, Reply
from bot.core.complaint import Draft
from bot.core.redact import redact
from bot.knowledge.models import VERDICT_LABELS_ZH, VERDICT_ORDER
from bot.maintenance import maintenance_jobs
from bot.ocr import ocr_available
from bot.operators import SHORT_LABELS, OperatorError, Operators, format_stats_short
from bot.service import Incoming, Outgoing, Service
from bot.settings import Settings
from bot.store import case_json

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted here in UTF-16 units of the HTML source
CALLBACK_LIMIT = 64  # bytes of callback_data
ALLOWED_UPDATES = ["message", "callback_query"]
CONCURRENT_UPDATES = 16  # different chats are answered concurrently; one chat's messages stay in order
MEMO_SIZE = 5000  # buttons' "详细"/"不是这个意思" data per case, in memory (knowledge text only)
MEDIA_NOTICE_SECONDS = 60.0  # one media hint per chat per minute
SEND_ATTEMPTS = 4
NOTIFY_SECONDS = 60.0  # how often operators' conclusions (also from `smsguard cases label`) are looked for
TYPING_SECONDS = 4.5  # Telegram shows "typing…" for 5 s: renewed while a screenshot is read
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # larger files are not downloaded (Telegram's getFile allows 20 MB)
COMPLAINT_VERDICTS = frozenset({"illegal_collection", "scam"})
CASE_SHOWN_CHARS = 1500  # an operator sees at most this much of a case's (redacted) text
BEIJING = dt.timezone(dt.timedelta(hours=8))
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # never fetch a link quoted from a scam message
_TOKEN_FORMAT = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_SECRET_FORMAT = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

T = TypeVar("T")

# --- texts -----------------------------------------------------------------------------------------------

HELP = (
    "<b>催收短信鉴别助手</b>\n"
    "把收到的催收、法院、贷款短信<b>全文粘贴</b>或<b>转发</b>给我，我会告诉你：\n"
    "· 它更像正常提醒、施压、违法催收、真实的法律程序，还是诈骗；\n"
    "· 为什么这么判断（引用短信原话）；\n"
    "· 现在该怎么做、怎么通过官方渠道核实、去哪里投诉。\n\n"
    "也可以直接提问，比如“上门催收合法吗”“律师函短信是真的吗”。\n\n"
    "看完结果后可以接着发：<b>详细</b>（完整说明）、<b>怎么办</b>（步骤）、<b>这个号码是真的吗</b>。\n"
    "在群里请 @我、回复我的消息，或使用命令。\n\n"
    "/evidence 把最近发来的短信整理成证据记录、生成投诉材料\n"
    "/about 这是什么、不是什么 · /privacy 记录什么、保存多久 · /forget 删除我的记录"
)
START = "你好！收到让你害怕的催收短信，先别急着转账或回拨。\n\n" + HELP
MEDIA_HELP = {
    "photo": "截图里的文字我暂时还读不出来。",
    "sticker": "收到贴纸啦 🙂 不过我只看得懂文字。",
    "voice": "语音我暂时还听不了。",
    "audio": "音频我暂时还听不了。",
    "video": "视频我暂时还看不了。",
    "document": "文件我暂时还打不开。",
    "other": "这种消息我暂时还看不懂。",
}
MEDIA_HOW = (
    "请这样发给我：\n"
    "1. 在手机短信里长按那条短信 →“复制”，回到这里粘贴发送；\n"
    "2. 截图的话，可以用手机相册的“提取文字/识别文字”功能，再粘贴过来；\n"
    "3. 或者直接用文字描述，比如“他们说要爆我通讯录”。\n"
    "身份证号、银行卡号、手机号和称呼里的姓名会在记录前自动隐去。"
)
MEDIA_CAPTION_NOTE = "（图片/文件本身我暂时读不了，下面只分析了附带的文字。）"
HELP_IMAGES = "也可以直接发<b>短信截图</b>：文字在本机识别，不上传到任何云服务。\n\n"
IMAGE_FAILED = "这张图片我没能下载下来。请再发一次，或把短信文字复制粘贴发给我。"
IMAGE_TOO_BIG = "这个文件太大了（超过 10 MB）。请发送普通的短信截图，或把短信文字复制粘贴发给我。"
OPERATOR_ONLY = "这个命令只对复核案例的志愿者开放。收到可疑短信的话，直接把全文粘贴给我就行。"
OPERATOR_PRIVATE = "请在和我的私聊里使用这个命令（案例内容不在群里显示）。"
OPERATOR_BUTTON_ONLY = "只有复核志愿者可以使用这个按钮。"
QUEUE_EMPTY = "待复核队列已经清空了，辛苦了！"
NOTIFY_OK = "好的。志愿者人工复核后如果结论不同，我会在这里告诉你。"
EVIDENCE_PRIVATE = "请在和我的私聊里发送 /evidence（证据记录只发给你本人）。"
DRAFTS_NONE_FIT = "投诉材料只针对违法催收和诈骗短信；这条消息没有适合投诉的内容。"
DRAFT_NOTE = "【】里的内容请自己填写，提交前核对一遍。材料由程序自动生成，不构成法律意见。"
UNKNOWN_COMMAND = "我不认识这个命令。把短信全文粘贴给我，或者发 /help 看看怎么用。"
SORRY = "抱歉，处理这条消息时出了问题，已经记录下来。请稍后再试一次。"
STALE = "这条消息有点久了，请重新发送短信或问题。"
NO_ALTERNATIVES = "没有更接近的其他问题了，换个说法问问我吧。"
FEEDBACK_THANKS = {True: "谢谢！已记下：这条回答有帮助。", False: "谢谢，已记下。我们会据此改进。"}
FEEDBACK_GONE = "这条记录已经删除了。"
FEEDBACK_NOT_YOURS = "只有提问的人可以评价这条回答（或这条记录已经删除了）。"
BOT_COMMANDS = [
    ("start", "开始使用"),
    ("help", "怎么用"),
    ("evidence", "整理证据、生成投诉材料"),
    ("about", "这是什么、不是什么"),
    ("privacy", "记录什么、保存多久"),
    ("forget", "删除我的全部记录"),
]
OPERATOR_COMMANDS = [("review", "复核下一条案例"), ("stats", "案例统计")]  # shown to operators only


class TelegramStartError(Exception):
    """The bot cannot start; the message is one line for the operator (never contains the token)."""


# --- rendering: neutral Reply -> HTML messages ----------------------------------------------------------

# Links Telegram would make clickable; wrapped in <code> so a scam link quoted back is not one tap away.
_LINK = re.compile(
    r"(?i)(?<![A-Za-z0-9.@-])(?:https?://[!-~]+|www\.[!-~]+|[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:/[!-~]*)?)"
)
_LINK_TRAILING = ".,;:!?)]}'\""


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def format_text(raw: str, style: str | None = None, defuse: bool = True) -> str:
    """Escape ``raw`` for Telegram HTML, optionally inside <b>/<i>. With ``defuse``, links become <code> (not
    clickable): for anything that may quote the user's message; knowledge-base links stay clickable."""
    out: list[str] = []
    pos = 0
    for match in _LINK.finditer(raw) if defuse else ():
        link = match.group().rstrip(_LINK_TRAILING)
        if not link:
            continue
        start, end = match.start(), match.start() + len(link)
        out.append(html.escape(raw[pos:start], quote=False))
        out.append(f"<code>{html.escape(link, quote=False)}</code>")
        pos = end
    out.append(html.escape(raw[pos:], quote=False))
    body = "".join(out)
    return f"<{style}>{body}</{style}>" if style and body else body


def format_line(
    raw: str, style: str | None = None, limit: int = TEXT_LIMIT, defuse: bool = True
) -> list[str]:
    """One line as HTML pieces, each within ``limit`` (a very long line is cut between characters)."""
    fmt = functools.partial(format_text, style=style, defuse=defuse)
    pieces: list[str] = []
    start = 0
    while True:
        whole = fmt(raw[start:])
        if utf16_len(whole) <= limit:
            pieces.append(whole)
            return pieces
        lo, hi = start + 1, len(raw)
        while lo < hi:  # the longest prefix that still fits once escaped
            mid = (lo + hi + 1) // 2
            if utf16_len(fmt(raw[start:mid])) <= limit:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(fmt(raw[start:lo]))
        start = lo


def _block(
    lines: Iterable[str], style: str | None = None, limit: int = TEXT_LIMIT, defuse: bool = False
) -> list[str]:
    return [piece for line in lines for piece in format_line(line, style, limit, defuse)]


def _titled(title: str, lines: Iterable[str], limit: int, defuse: bool = False) -> list[str]:
    return [f"<b>{html.escape(title, quote=False)}</b>", *_block(lines, None, limit, defuse)]


def pack(blocks: Iterable[list[str]], limit: int = TEXT_LIMIT) -> list[str]:
    """Join blocks (lists of HTML lines) into messages within ``limit``, breaking between blocks if possible,
    else between lines. Every line is already within the limit, so no tag is ever cut."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        if not block:
            continue
        text = "\n".join(block)
        candidate = f"{current}\n\n{text}" if current else text
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            messages.append(current)
            current = ""
        if utf16_len(text) <= limit:
            current = text
            continue
        for line in block:
            candidate = f"{current}\n{line}" if current else line
            if utf16_len(candidate) <= limit:
                current = candidate
            else:
                messages.append(current)
                current = line
    if current.strip():
        messages.append(current)
    return [m for m in messages if m.strip()]


def render_reply(
    reply: Reply, note: str | None = None, limit: int = TEXT_LIMIT, quote: str | None = None
) -> list[str]:
    """The neutral reply as HTML messages, in the order of ``Reply.as_text``. Only "为什么" and ``quote`` (a
    screenshot's text as read) repeat the user's text, so only their links are defused; the rest is
    knowledge-base text."""
    blocks: list[list[str]] = []
    if note:
        blocks.append(_block([note], "i", limit))
    if quote:
        head, _, body = quote.partition("\n")
        blocks.append(
            [*_block([head], "i", limit, defuse=True), *_block(body.split("\n"), None, limit, True)]
        )
    for name, _ in reply.sections():
        if name == "crisis" and reply.crisis:
            blocks.append(_block(reply.crisis.split("\n"), None, limit))
        elif name == "headline" and reply.headline:
            blocks.append(_block([reply.headline], "b", limit))
        elif name == "answer" and reply.answer:
            blocks.extend(_block(p.split("\n"), None, limit) for p in reply.answer.split("\n\n"))
        elif name == "why":
            blocks.append(_titled("为什么：", (f"· {line}" for line in reply.why), limit, defuse=True))
        elif name == "also" and reply.also:
            blocks.append(_block([reply.also], "i", limit))
        elif name == "steps":
            blocks.append(_titled("怎么办：", (f"{i}. {s}" for i, s in enumerate(reply.steps, 1)), limit))
        elif name == "channels":
            blocks.append(_titled("官方渠道：", (f"· {c}" for c in reply.channels), limit))
        elif name == "sources":
            blocks.append(_block(["依据：" + "；".join(reply.sources)], "i", limit))
        elif name == "related":
            blocks.append(_titled("你是不是想问：", (f"· {title}" for _, title in reply.related), limit))
        elif name == "footer":
            blocks.append(_block([reply.footer], "i", limit))
    return pack(blocks, limit)


def render_plain(
    text: str, note: str | None = None, limit: int = TEXT_LIMIT, defuse: bool = True
) -> list[str]:
    """Plain text as escaped HTML messages; paragraphs stay together. ``defuse`` unless it is knowledge text
    (follow-ups such as "这个号码是真的吗" repeat the user's links)."""
    blocks = [_block([note], "i", limit)] if note else []
    blocks += [_block(p.split("\n"), None, limit, defuse) for p in text.split("\n\n")]
    return pack(blocks, limit)


def keep_time(minutes: int) -> str:
    """RAW_TEXT_TTL_MINUTES in words: "24 小时", "90 分钟"."""
    return f"{minutes // 60} 小时" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} 分钟"


def _beijing(moment: dt.datetime) -> str:
    return f"{moment.astimezone(BEIJING):%Y-%m-%d %H:%M}"


def render_draft(draft: Draft, index: int, total: int, limit: int = TEXT_LIMIT) -> list[str]:
    """One complaint draft as HTML messages: ready to copy, the user's details as 【placeholders】. The body
    quotes the collector's message, so its links are defused."""
    head = [
        f"<b>投诉材料 {index}/{total}：{html.escape(draft.name, quote=False)}</b>",
        *_block([f"发给：{draft.to}", f"主题：{draft.subject}"], None, limit, defuse=True),
    ]
    body = _block(draft.body.split("\n"), None, limit, defuse=True)
    tail = _block([f"依据（资料编号）：{'、'.join(draft.sources)}", DRAFT_NOTE], "i", limit)
    return pack([head, body, tail], limit)


def drafts_document(drafts: Sequence[Draft], now: dt.datetime, record: Sequence[str] = ()) -> bytes:
    """All drafts (after the evidence record, if any) as one plain-text file, UTF-8 with a BOM so that
    Windows Notepad shows the Chinese correctly."""
    lines = [
        "投诉材料（催收短信鉴别助手自动生成，不构成法律意见）",
        f"生成时间：{_beijing(now)}（北京时间）",
        DRAFT_NOTE,
        "",
    ]
    if record:
        lines += [*record, ""]
    for i, draft in enumerate(drafts, 1):
        lines += [
            f"==== {i}. {draft.name}（{draft.channel}）====",
            f"发给：{draft.to}",
            f"主题：{draft.subject}",
            "",
            draft.body,
            "",
            f"依据（资料编号）：{'、'.join(draft.sources)}",
            "",
        ]
    return "\ufeff".encode() + "\r\n".join(lines).encode("utf-8")


def evidence_lines(items: Sequence[Any], sent_at: dict[int, dt.datetime], now: dt.datetime) -> list[str]:
    """The chat's messages still in memory as a dated record (plain text; the quotes redacted)."""
    lines = [
        f"证据记录（整理于 {_beijing(now)}，北京时间）",
        f"共 {len(items)} 条短信，按发给我的先后排列；个人信息已隐去。",
    ]
    for i, item in enumerate(items, 1):
        if item.received_at:
            when = f"{_beijing(dt.datetime.fromisoformat(item.received_at))}（原消息时间）"
        elif item.case_id in sent_at:
            when = f"{_beijing(sent_at[item.case_id])}（发给本助手的时间）"
        else:
            when = "【收到时间】"
        senders = "、".join(item.analysis.entities.senders)
        lines += [
            "",
            f"{i}. 时间：{when}",
            f"发送方：{senders + '（短信自称）' if senders else '【发送号码】'}",
            f"原文：“{redact(item.text).strip()}”",
            f"判断：{VERDICT_LABELS_ZH.get(item.analysis.verdict, item.analysis.verdict)}",
        ]
    return lines


def render_case(case: dict[str, Any], case_ids: Sequence[int], flags: Sequence[str]) -> list[str]:
    """A queued case for an operator: the redacted text, the bot's verdict and evidence, its topics."""
    text = str(case["text"] or "")
    if len(text) > CASE_SHOWN_CHARS:
        text = text[:CASE_SHOWN_CHARS] + "…"
    similar = f"，相似消息 ×{len(case_ids)}，标注会用于全部" if len(case_ids) > 1 else ""
    confidence = case["confidence"]
    head = [
        f"<b>待复核 #{case['id']}</b>{html.escape(similar)}",
        html.escape(
            f"自动判断：{SHORT_LABELS.get(case['verdict'], case['verdict'])}"
            + (f"（把握 {confidence:.2f}）" if confidence is not None else "")
            + (f" · {'、'.join(flags)}" if flags else "")
        ),
        html.escape(
            f"{case['channel']} · {case['kind']} · {str(case['created_at'])[:16].replace('T', ' ')} UTC"
        ),
    ]
    blocks = [head, _block(text.split("\n"), None, TEXT_LIMIT, defuse=True)]
    signals = [f"· {s.get('label', s.get('id'))}：“{s.get('evidence', '')}”" for s in case["signals"]]
    if signals:
        blocks.append(_titled("依据：", signals, TEXT_LIMIT, defuse=True))
    topics = [f"· {t.get('title', t.get('id'))}（{t.get('score', 0):.2f}）" for t in case["topics"][:3]]
    if topics:
        blocks.append(_titled("话题：", topics, TEXT_LIMIT))
    blocks.append(["<i>选择正确的结论：</i>"])
    return pack(blocks)


def _html_to_plain(part: str) -> str:
    return html.unescape(re.sub(r"</?[a-z]+>", "", part))


# --- settings -------------------------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """ "host:port" (IPv6 as "[::1]:8443") -> (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TelegramStartError(f"TELEGRAM_WEBHOOK_LISTEN must be host:port, got {value!r}")
    return host, int(port)


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """None for long polling; the webhook settings, validated, when TELEGRAM_WEBHOOK_URL is set."""
    if not settings.TELEGRAM_WEBHOOK_URL:
        return None
    url = urlsplit(settings.TELEGRAM_WEBHOOK_URL)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise TelegramStartError("TELEGRAM_WEBHOOK_URL must be a full URL such as https://bot.example.org/tg")
    secret = settings.TELEGRAM_WEBHOOK_SECRET.get_secret_value() if settings.TELEGRAM_WEBHOOK_SECRET else None
    if secret is not None and not _SECRET_FORMAT.match(secret):
        raise TelegramStartError("TELEGRAM_WEBHOOK_SECRET may only contain A-Z, a-z, 0-9, _ and - (1-256)")
    host, port = parse_listen(settings.TELEGRAM_WEBHOOK_LISTEN)
    return WebhookConfig(settings.TELEGRAM_WEBHOOK_URL, url.path.strip("/"), host, port, secret)


def check_settings(settings: Settings) -> None:
    """Refuse to start, with one line, on a missing or malformed token or bad webhook settings."""
    if settings.TELEGRAM_BOT_TOKEN is None:
        raise TelegramStartError("TELEGRAM_BOT_TOKEN is not set (create a bot with @BotFather to get one)")
    if not _TOKEN_FORMAT.match(settings.TELEGRAM_BOT_TOKEN.get_secret_value()):
        raise TelegramStartError("TELEGRAM_BOT_TOKEN does not look like a bot token (expected 123456789:AA…)")
    try:
        settings.operator_ids  # noqa: B018 (parsed here so that a typo stops the start, not an operator)
    except ValueError:
        raise TelegramStartError(
            f"OPERATOR_IDS must be comma-separated numeric Telegram user ids, got {settings.OPERATOR_IDS!r}"
        ) from None
    webhook_config(settings)


# --- the channel ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Memo:
    """What the buttons of one verdict need later: knowledge text only, nothing the user wrote."""

    details: str | None
    alternatives: tuple[tuple[str, str], ...]
    sent_at: dt.datetime | None = None  # when the user sent the message (for /evidence)


@dataclass
class _Review:
    """One operator's /review session: groups shown (case id -> its near-duplicates) and ids skipped."""

    groups: dict[int, tuple[int, ...]] = field(default_factory=dict)
    skipped: set[int] = field(default_factory=set)


def _forward_meta(message: Message) -> tuple[str | None, str | None]:
    origin = message.forward_origin
    if origin is None:
        return None, None
    return str(origin.type), origin.date.astimezone(dt.UTC).isoformat(timespec="seconds")


def _forward_note(forwarded_at: str | None) -> str | None:
    if forwarded_at is None:
        return None
    local = dt.datetime.fromisoformat(forwarded_at).astimezone(BEIJING)
    return f"📨 转发的消息，原消息发于 {local:%Y-%m-%d %H:%M}（北京时间）。"


def _media_kind(message: Message) -> str | None:
    for kind in ("photo", "sticker", "voice", "audio", "video", "document"):
        if getattr(message, kind):
            return kind
    if message.video_note or message.animation:
        return "video"
    if message.contact or message.location or message.poll or message.dice:
        return "other"
    return None


def _image_file(message: Message) -> tuple[str, int | None] | None:
    """(file_id, size) of a photo (its largest size) or of an image sent as a file; None otherwise."""
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return document.file_id, document.file_size
    return None


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text[:60], callback_data=data)


def _fits(data: str) -> bool:
    return len(data.encode()) <= CALLBACK_LIMIT


class TelegramChannel:
    """Handlers: messages -> ``Service.handle`` (in a thread), replies -> HTML with buttons."""

    def __init__(self, service: Service, settings: Settings):
        self.service = service
        self.settings = settings
        self.operator_ids = settings.operator_ids
        self.ops = Operators(
            service.store, low_confidence=settings.LOW_CONFIDENCE, knowledge=lambda: service.analyzer.kb
        )
        # Screenshots are read when the OCR extra is installed (or a reader was given); else the media hint.
        self.read_images = service.screenshots is not None or ocr_available()
        self.notify_interval = NOTIFY_SECONDS
        self._memos: OrderedDict[int, _Memo] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._media_hinted: dict[str, float] = {}
        self._reviews: dict[int, _Review] = {}
        self._notify_lock = asyncio.Lock()
        self._notifier: asyncio.Task[None] | None = None
        self._maintenance: contextlib.ExitStack | None = None  # retention, hot reload, memory sweep

    def register(self, app: Application) -> None:
        only_new = filters.UpdateType.MESSAGE  # edited messages are not judged again
        app.add_handler(CommandHandler("start", self.on_start, filters=only_new))
        app.add_handler(CommandHandler("help", self.on_help, filters=only_new))
        app.add_handler(CommandHandler("about", self.on_about, filters=only_new))
        app.add_handler(CommandHandler("privacy", self.on_privacy, filters=only_new))
        app.add_handler(CommandHandler("forget", self.on_forget, filters=only_new))
        app.add_handler(CommandHandler("evidence", self.on_evidence, filters=only_new))
        app.add_handler(CommandHandler("review", self.on_review, filters=only_new))
        app.add_handler(CommandHandler("stats", self.on_stats, filters=only_new))
        app.add_handler(MessageHandler(only_new & filters.COMMAND, self.on_unknown_command))
        app.add_handler(MessageHandler(only_new & (filters.PHOTO | filters.Document.IMAGE), self.on_image))
        app.add_handler(MessageHandler(only_new & (filters.TEXT | filters.CAPTION), self.on_text))
        app.add_handler(MessageHandler(only_new & ~filters.StatusUpdate.ALL, self.on_media))
        app.add_handler(CallbackQueryHandler(self.on_callback))
        app.add_error_handler(self.on_error)

    # -- plumbing --

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Analysis and SQLite off the event loop (the store keeps one connection per thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    def _lock(self, chat_id: str) -> asyncio.Lock:
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[chat_id] = lock
        return lock

    async def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """A Bot API call, retried on network errors and 5xx answers (RetryAfter: the rate limiter's job)."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                return await fn(**kwargs)
            except (BadRequest, Forbidden, InvalidToken):
                raise
            except NetworkError as exc:  # RetryAfter is not one: the rate limiter has retried it already
                if attempt == SEND_ATTEMPTS - 1:
                    raise
                log.warning("telegram: %s failed (%s), retrying", getattr(fn, "__name__", "call"), exc)
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    async def _send(
        self,
        bot: Any,
        chat_id: int,
        parts: list[str],
        *,
        keyboard: InlineKeyboardMarkup | None = None,
        reply_to: int | None = None,
    ) -> None:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            kwargs: dict[str, Any] = {
                "chat_id": chat_id,
                "text": part,
                "parse_mode": ParseMode.HTML,
                "link_preview_options": NO_PREVIEW,
                "reply_markup": keyboard if last else None,
                "reply_parameters": (
                    ReplyParameters(reply_to, allow_sending_without_reply=True)
                    if reply_to and i == 0
                    else None
                ),
            }
            try:
                await self._call(bot.send_message, **kwargs)
            except BadRequest as exc:
                if "parse" not in str(exc).lower():
                    raise
                # Our HTML was refused: say it plainly rather than not at all.
                log.error("telegram: HTML refused (%s); sending plain text", exc)
                await self._call(
                    bot.send_message, **(kwargs | {"text": _html_to_plain(part), "parse_mode": None})
                )

    @staticmethod
    def _reply_to(message: Message) -> int | None:
        """Quote the user's message in groups, so it is clear whom the answer is for."""
        return message.message_id if message.chat.type != ChatType.PRIVATE else None

    def _addressed(self, message: Message, bot: Any) -> bool:
        """Private chats always; groups only when the bot is mentioned or replied to."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
            return True
        return self._mentions_bot(message, bot)

    @staticmethod
    def _mentions_bot(message: Message, bot: Any) -> bool:
        username = (bot.username or "").lower()
        entities = {**message.parse_entities(), **message.parse_caption_entities()}
        for entity, text in entities.items():
            if entity.type == MessageEntity.MENTION and username and text.lower() == f"@{username}":
                return True
            if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
                return True
        return False

    @staticmethod
    def _own_text(message: Message, bot: Any) -> str:
        """The message's text or caption without the bot's @name."""
        text = message.text or message.caption or ""
        if bot.username:
            text = re.sub(rf"@{re.escape(bot.username)}\b", " ", text, flags=re.IGNORECASE)
        return text.strip()

    @staticmethod
    def _text_of(message: Message, bot: Any) -> str:
        """The text to judge: the message (or caption) without the bot's @name, plus hidden link targets;
        in a group, "@bot" alone in reply to someone's message judges that message."""
        text = TelegramChannel._own_text(message, bot)
        entities = message.parse_entities() if message.text else message.parse_caption_entities()
        hidden = [e.url for e in entities if e.type == MessageEntity.TEXT_LINK and e.url]
        replied = message.reply_to_message
        if not text and replied is not None and (replied.from_user is None or replied.from_user.id != bot.id):
            text = replied.text or replied.caption or ""
        return "\n".join([text, *hidden]) if hidden else text

    # -- messages --

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return  # another bot talking: never answer (no bot-to-bot loops in groups)
        if not self._addressed(message, context.bot):
            return
        origin, forwarded_at = _forward_meta(message)
        incoming = Incoming(
            CHANNEL,
            str(message.from_user.id),
            str(message.chat.id),
            self._text_of(message, context.bot),
            str(message.message_id),
            forward_origin=origin,
            forwarded_at=forwarded_at,
        )
        replied = message.reply_to_message
        if (
            self.read_images
            and replied is not None
            and _image_file(replied) is not None
            and not self._own_text(message, context.bot)
            and (replied.from_user is None or replied.from_user.id != context.bot.id)
        ):
            await self._judge_image(context.bot, message, replied)  # "@bot" in reply to a screenshot
            return
        note = _forward_note(forwarded_at)
        if message.text is None and _media_kind(message):
            note = f"{note}\n{MEDIA_CAPTION_NOTE}" if note else MEDIA_CAPTION_NOTE
        async with self._lock(incoming.chat_id):
            out = await self._run(self.service.handle, incoming)
            if out is not None and not out.duplicate:  # a re-delivered message already logged: answered
                await self._answer(context.bot, message, out, note)

    async def on_image(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A photo or an image file: downloaded, read on this machine by the service, judged."""
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        if not self.read_images:  # no OCR extra: the caption is judged, or the hint on pasting the text
            handler = self.on_text if message.caption else self.on_media
            await handler(update, context)
            return
        if self._addressed(message, context.bot):
            await self._judge_image(context.bot, message, message)

    async def _judge_image(self, bot: Any, message: Message, source: Message) -> None:
        """Read the image of ``source`` (``message`` itself, or the message it replies to) and answer
        ``message``. A caption is not judged: the screenshot is the message."""
        assert message.from_user is not None
        origin, forwarded_at = _forward_meta(source)
        incoming = Incoming(
            CHANNEL,
            str(message.from_user.id),
            str(message.chat.id),
            "",
            str(message.message_id),
            forward_origin=origin,
            forwarded_at=forwarded_at,
        )
        async with self._lock(incoming.chat_id):
            admitted, out = await self._run(self.service.admit_image, incoming)  # before any download
            if admitted:
                async with self._typing(bot, message.chat.id):
                    data = await self._download(bot, source)
                    if isinstance(data, bytes):
                        out = await self._run(
                            functools.partial(self.service.handle_image, admitted=True), incoming, data
                        )
                    else:
                        out = Outgoing(data + "\n\n" + MEDIA_HOW)
            if out is not None and not out.duplicate:
                await self._answer(bot, message, out, _forward_note(forwarded_at))

    async def _download(self, bot: Any, source: Message) -> bytes | str:
        """The image's bytes (getFile, then the download from TELEGRAM_BASE_FILE_URL), or what to tell
        the user instead."""
        found = _image_file(source)
        if found is None:
            return IMAGE_FAILED
        file_id, size = found
        if size is not None and size > MAX_IMAGE_BYTES:
            return IMAGE_TOO_BIG
        try:
            file = await self._call(bot.get_file, file_id=file_id)
            if file.file_size is not None and file.file_size > MAX_IMAGE_BYTES:
                return IMAGE_TOO_BIG
            data = await self._call(file.download_as_bytearray)
        except TelegramError as exc:
            log.warning("telegram: screenshot not downloaded: %s: %s", type(exc).__name__, exc)
            return IMAGE_FAILED
        if len(data) > MAX_IMAGE_BYTES:
            return IMAGE_TOO_BIG
        return bytes(data)

    @contextlib.asynccontextmanager
    async def _typing(self, bot: Any, chat_id: int) -> AsyncIterator[None]:
        """ "typing…" in the chat while the body runs (renewed, since Telegram shows it for 5 s)."""

        async def typing() -> bool:
            try:
                await bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            except TelegramError:
                return False  # a nicety: never worth a retry
            return True

        async def keep_typing() -> None:
            while True:
                await asyncio.sleep(TYPING_SECONDS)
                if not await typing():
                    return

        task = asyncio.create_task(keep_typing()) if await typing() else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _answer(self, bot: Any, message: Message, out: Outgoing, note: str | None) -> None:
        keyboard = None
        if out.reply is not None:
            parts = render_reply(out.reply, note, quote=out.read_text)
            if out.analysis is not None and out.case_id is not None:
                keyboard = self._verdict_keyboard(out.case_id, out.analysis, message.date)
        else:
            parts = render_plain(out.text)  # follow-ups and notices: no forward/caption note
        await self._send(bot, message.chat.id, parts, keyboard=keyboard, reply_to=self._reply_to(message))

    def _alternatives(self, analysis: Analysis) -> tuple[tuple[str, str], ...]:
        """The next-best topics: matched topics other than the one the reply used, then its related ones."""
        kb = self.service.analyzer.kb
        chosen: dict[str, str] = {}
        for match in analysis.topics:
            topic = kb.topic_by_id.get(match.id)
            if topic is not None and (topic.details or topic.answer) != analysis.reply.details:
                chosen.setdefault(match.id, match.title)
        for topic_id, title in analysis.reply.related:
            chosen.setdefault(topic_id, title)
        return tuple((tid, title) for tid, title in chosen.items() if _fits(f"t:{tid}"))[:4]

    def _verdict_keyboard(
        self, case_id: int, analysis: Analysis, sent_at: dt.datetime | None = None
    ) -> InlineKeyboardMarkup:
        memo = _Memo(analysis.reply.details, self._alternatives(analysis), sent_at)
        self._memos[case_id] = memo
        self._memos.move_to_end(case_id)
        while len(self._memos) > MEMO_SIZE:
            self._memos.popitem(last=False)
        rows = [[_button("👍 有帮助", f"fb:{case_id}:1"), _button("👎 没帮助", f"fb:{case_id}:0")]]
        second = []
        if memo.alternatives:
            second.append(_button("🔄 不是这个意思", f"alt:{case_id}"))
        if memo.details:
            second.append(_button("📖 详细", f"more:{case_id}"))
        if second:
            rows.append(second)
        if analysis.kind == "sms" and analysis.verdict in COMPLAINT_VERDICTS:
            rows.append([_button("📝 生成投诉材料", f"cp:{case_id}")])
        if case_id and self.ops.is_low_confidence(analysis.confidence):
            rows.append([_button("🔔 有新结论时通知我", f"nt:{case_id}")])
        return InlineKeyboardMarkup(rows)

    async def on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or (message.from_user is not None and message.from_user.is_bot):
            return
        if not self._addressed(message, context.bot):
            return
        kind = _media_kind(message)
        if kind is None:
            return
        chat_id = str(message.chat.id)
        now = time.monotonic()
        if chat_id in self._media_hinted and now - self._media_hinted[chat_id] < MEDIA_NOTICE_SECONDS:
            return  # the hint was just given; a burst of stickers gets it once
        if len(self._media_hinted) > 10000:
            self._media_hinted = {
                k: t for k, t in self._media_hinted.items() if now - t < MEDIA_NOTICE_SECONDS
            }
        self._media_hinted[chat_id] = now
        text = MEDIA_HELP[kind] + "\n\n" + MEDIA_HOW
        await self._send(context.bot, message.chat.id, render_plain(text), reply_to=self._reply_to(message))

    # -- commands --

    async def _reply_html(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text_html: str) -> None:
        message = update.message
        if message is None:
            return
        parts = pack([text_html.split("\n")])
        await self._send(context.bot, message.chat.id, parts, reply_to=self._reply_to(message))

    def _help(self) -> str:
        if not self.read_images:
            return HELP
        first, _, rest = HELP.partition("\n\n")
        return f"{first}\n\n{HELP_IMAGES}{rest}"

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply_html(update, context, START.replace(HELP, self._help()))

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply_html(update, context, self._help())

    async def on_about(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        kb = self.service.analyzer.kb
        text = (
            "<b>这是什么</b>\n"
            "一个自动判断催收短信的助手：看短信像正常提醒、施压、违法催收、真实法律程序还是诈骗，"
            "引用原话说明理由，给出核实和投诉的步骤。回答只来自一份有出处的知识库（法律条文、监管规定、官方渠道）。\n\n"
            "<b>这不是什么</b>\n"
            "不是律师、法院、警方，也不是任何贷款平台或催收公司；判断是自动的，不构成法律意见。"
            "它不会替你联系任何人，不会让你付钱，也不会凭一个号码断定真假。"
            "真实的法院文书请拨打12368或登录人民法院在线服务核实。\n\n"
            f"知识库版本 <code>{html.escape(kb.version)}</code>，内容核对于 {kb.reviewed.isoformat()}。"
        )
        await self._reply_html(update, context, text)

    async def on_privacy(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        s = self.settings
        raw = (
            "运营方开启了保存原文（STORE_RAW_TEXT），原文也会存入记录库。"
            if s.STORE_RAW_TEXT
            else f"原文只在内存里保留，最多 {s.RAW_TEXT_TTL_MINUTES} 分钟（用于“详细”“怎么办”等追问），不写入磁盘。"
        )
        text = (
            "<b>会记录什么</b>\n"
            "每条消息记为一条案例，用于改进判断：去掉身份证号、银行卡号、手机号和称呼里的姓名后的文字、判断结果、"
            "你给的 👍/👎。你的 Telegram 账号只以加密散列保存，不存用户名。转发的消息只记来源类型和原发送时间。\n"
            f"{html.escape(raw)}\n"
            "截图只在内存里识别，图片本身不保存；记录的是识别出的文字（同样隐去个人信息）。"
            "点了“有新结论时通知我”的，只为那一条记下聊天 id，通知后即删除。\n\n"
            "<b>保存多久</b>\n"
            f"记录保存 {s.RETENTION_DAYS} 天后自动删除。\n\n"
            "<b>怎么删除</b>\n"
            "发送 /forget，立即删除你的全部记录（删除后无法恢复）。"
        )
        await self._reply_html(update, context, text)

    async def on_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None:
            return
        chat_id = str(message.chat.id)
        async with self._lock(chat_id):
            count = await self._run(self.service.forget_user, str(message.from_user.id), chat_id)
        await self._reply_html(
            update,
            context,
            f"已删除你的 {count} 条记录，内存里的最近一条也已清除。以后的消息仍会照常记录（已隐去个人信息）。",
        )

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.text is None:
            return
        command = message.text.split()[0]
        if message.chat.type != ChatType.PRIVATE:
            username = (context.bot.username or "").lower()
            if not username or not command.lower().endswith(f"@{username}"):
                return  # a command for another bot, or for nobody in particular
        await self._reply_html(update, context, html.escape(UNKNOWN_COMMAND, quote=False))

    async def on_evidence(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The user's SMS still in memory as one dated record, with complaint drafts for them together."""
        message = update.message
        if message is None or message.from_user is None:
            return
        if message.chat.type != ChatType.PRIVATE:  # a group's memory holds other people's messages
            await self._reply_html(update, context, html.escape(EVIDENCE_PRIVATE, quote=False))
            return
        keep = keep_time(self.settings.RAW_TEXT_TTL_MINUTES)
        items = [i for i in self.service.recent_messages(str(message.chat.id)) if i.analysis.kind == "sms"]
        if not items:
            text = (
                f"我这里没有你最近发来的短信。为保护隐私，原文只在内存里保留 {keep}，不写入磁盘。"
                "请把短信重新粘贴或转发给我，再发 /evidence。"
            )
            await self._reply_html(update, context, html.escape(text, quote=False))
            return
        record = evidence_lines(items, self._sent_times(), dt.datetime.now(dt.UTC))
        stored = (
            "运营方开启了保存原文，原文也在记录库里。" if self.settings.STORE_RAW_TEXT else "不写入磁盘。"
        )
        tail = f"这些原文只在内存里保留 {keep}，{stored}请尽快截图或保存下面的文件。"
        drafts = self.service.complaint_drafts(str(message.chat.id), all_recent=True) or ()
        rows = [[_button(f"📝 {d.name}", f"cd:e:{d.channel}")] for d in drafts]
        if drafts:
            rows.append([_button("📄 证据记录和全部材料（txt 文件）", "cf:e")])
            tail += "\n点下面的按钮生成投诉材料（把这些短信一起作为证据）。"
        else:
            tail += "\n" + DRAFTS_NONE_FIT.replace("这条消息", "这些消息")
        title, *rest = record
        blocks = [_block([title], "b"), _block(rest, None, TEXT_LIMIT, defuse=True), _block([tail], "i")]
        keyboard = InlineKeyboardMarkup(rows) if rows else None
        await self._send(context.bot, message.chat.id, pack(blocks), keyboard=keyboard)

    def _sent_times(self) -> dict[int, dt.datetime]:
        return {case: memo.sent_at for case, memo in self._memos.items() if memo.sent_at is not None}

    # -- operators --

    async def _operator(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
        """The operator's user id, or None after a polite refusal (not an operator, or not a private chat)."""
        message = update.message
        if message is None or message.from_user is None:
            return None
        if message.from_user.id not in self.operator_ids:
            if message.chat.type == ChatType.PRIVATE or self._command_for_us(message, context.bot):
                await self._reply_html(update, context, html.escape(OPERATOR_ONLY, quote=False))
            return None
        if message.chat.type != ChatType.PRIVATE:
            await self._reply_html(update, context, html.escape(OPERATOR_PRIVATE, quote=False))
            return None
        return message.from_user.id

    @staticmethod
    def _command_for_us(message: Message, bot: Any) -> bool:
        command = (message.text or "").split()[0] if message.text else ""
        username = (bot.username or "").lower()
        return bool(username) and command.lower().endswith(f"@{username}")

    async def on_review(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        operator = await self._operator(update, context)
        if operator is None or update.message is None:
            return
        self._reviews[operator] = _Review()  # a new session: what was skipped comes back
        await self._show_next_case(context.bot, update.message.chat.id, operator)

    async def on_stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self._operator(update, context) is None:
            return
        stats = await self._run(self.ops.stats)
        text = "<b>案例统计</b>\n" + html.escape(format_stats_short(stats), quote=False)
        await self._reply_html(update, context, text)

    async def _show_next_case(self, bot: Any, chat_id: int, operator: int) -> None:
        review = self._reviews.setdefault(operator, _Review())
        group = await self._run(self.ops.next_case, tuple(review.skipped))
        if group is None:
            more = f"（本轮跳过了 {len(review.skipped)} 条，再发 /review 从头看。）" if review.skipped else ""
            await self._send(bot, chat_id, render_plain(QUEUE_EMPTY + more, defuse=False))
            return
        case = case_json(group.case)
        review.groups[case["id"]] = tuple(group.case_ids)
        flags = group.flags({"low_confidence": "低把握", "thumbs_down": "👎", "unmatched": "未匹配话题"})
        labels = [_button(SHORT_LABELS[v], f"lb:{case['id']}:{v}") for v in VERDICT_ORDER]
        rows = [labels[i : i + 3] for i in range(0, len(labels), 3)]
        rows.append([_button("⏭ 跳过", f"sk:{case['id']}")])
        parts = render_case(case, group.case_ids, flags)
        await self._send(bot, chat_id, parts, keyboard=InlineKeyboardMarkup(rows))

    async def _on_label(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        case, _, verdict = arg.partition(":")
        if query.from_user.id not in self.operator_ids:
            await self._call(query.answer, text=OPERATOR_BUTTON_ONLY, show_alert=True)
            return
        if not case.isdigit() or verdict not in VERDICT_ORDER:
            await self._call(query.answer)
            return
        review = self._reviews.setdefault(query.from_user.id, _Review())
        ids = review.groups.pop(int(case), (int(case),))
        labelled = 0
        for case_id in ids:
            try:
                await self._run(self.ops.label, case_id, verdict)
                labelled += 1
            except OperatorError:  # deleted meanwhile (/forget, retention)
                continue
        text = f"已标注为“{SHORT_LABELS[verdict]}”（{labelled} 条）" if labelled else "这条案例已经不在了。"
        await self._call(query.answer, text=text)
        await self._edit_keyboard(query, bot, "")
        if labelled:
            await self.deliver_notifications(bot)  # users who asked hear of a changed verdict at once
        await self._show_next_case(bot, self._query_chat(query), query.from_user.id)

    async def _on_skip(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        if query.from_user.id not in self.operator_ids:
            await self._call(query.answer, text=OPERATOR_BUTTON_ONLY, show_alert=True)
            return
        if not arg.isdigit():
            await self._call(query.answer)
            return
        review = self._reviews.setdefault(query.from_user.id, _Review())
        review.skipped.update(review.groups.pop(int(arg), (int(arg),)))
        await self._call(query.answer, text="已跳过")
        await self._edit_keyboard(query, bot, "")
        await self._show_next_case(bot, self._query_chat(query), query.from_user.id)

    # -- follow-up to users who asked --

    async def _on_notify(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        if not arg.isdigit():
            await self._call(query.answer)
            return
        chat_id = str(self._query_chat(query))
        stored = await self._run(self.ops.request_notify, int(arg), CHANNEL, chat_id)
        await self._call(query.answer, text=NOTIFY_OK if stored else FEEDBACK_GONE)
        if stored:
            await self._edit_keyboard(query, bot, "nt:")

    async def deliver_notifications(self, bot: Any) -> int:
        """Tell users who asked about operators' conclusions that differ from the bot's; each chat id is
        deleted once told (or when Telegram refuses the chat for good). Returns how many were told."""
        async with self._notify_lock:  # the periodic check and a /review label never send one twice
            due = await self._run(self.ops.due_notifications, CHANNEL)
            told = 0
            for notification in due:
                try:
                    await self._call(
                        bot.send_message,
                        chat_id=int(notification.chat_id),
                        text=self.ops.notification_text(notification),
                    )
                    told += 1
                except (Forbidden, BadRequest) as exc:  # blocked the bot, chat gone: never deliverable
                    log.info("telegram: notification for case %s dropped: %s", notification.case_id, exc)
                except TelegramError as exc:
                    log.warning(
                        "telegram: notification for case %s not sent yet: %s", notification.case_id, exc
                    )
                    continue
                await self._run(self.ops.notified, notification)
            return told

    async def _notify_loop(self, bot: Any) -> None:
        while True:
            try:
                await self.deliver_notifications(bot)
            except Exception:  # the database busy or gone for a moment: try again next time
                log.exception("telegram: checking for notifications failed")
            await asyncio.sleep(self.notify_interval)

    # -- complaint drafts --

    def _drafts(self, chat_id: int, scope: str, channel: str | None = None) -> tuple[Draft, ...] | None:
        """Drafts for one case (``scope`` its id) or for all the chat's SMS in memory (``scope`` "e")."""
        if scope == "e":
            return self.service.complaint_drafts(str(chat_id), channel, all_recent=True)
        if scope.isdigit():
            return self.service.complaint_drafts(str(chat_id), channel, case_id=int(scope))
        return None

    def _drafts_gone(self) -> str:
        keep = keep_time(self.settings.RAW_TEXT_TTL_MINUTES)
        return f"原文已不在内存里了（为保护隐私只保留 {keep}）。请把短信重新发给我，再点一次。"

    async def _drafts_or_alert(self, query: CallbackQuery, scope: str) -> tuple[Draft, ...] | None:
        """The drafts a button asks for, or None after telling the user (in the button's alert) why not."""
        drafts = self._drafts(self._query_chat(query), scope)
        if not drafts:
            gone = drafts is None
            await self._call(
                query.answer, text=self._drafts_gone() if gone else DRAFTS_NONE_FIT, show_alert=True
            )
            return None
        return drafts

    async def _on_complaint(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        drafts = await self._drafts_or_alert(query, arg)
        if drafts is None:
            return
        await self._call(query.answer)
        rows = [[_button(f"📝 {d.name}", f"cd:{arg}:{d.channel}")] for d in drafts]
        rows.append([_button("📄 全部材料（txt 文件）", f"cf:{arg}")])
        text = "可以向这些渠道投诉或举报，点一个查看写好的材料（你的个人信息留空，请自己填写）："
        await self._send(
            bot, self._query_chat(query), render_plain(text), keyboard=InlineKeyboardMarkup(rows)
        )

    async def _on_draft(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        scope, _, channel = arg.partition(":")
        drafts = await self._drafts_or_alert(query, scope)
        if drafts is None:
            return
        index = next((i for i, d in enumerate(drafts) if d.channel == channel), None)
        if index is None:
            await self._call(query.answer, text=DRAFTS_NONE_FIT, show_alert=True)
            return
        await self._call(query.answer)
        await self._send(bot, self._query_chat(query), render_draft(drafts[index], index + 1, len(drafts)))

    async def _on_draft_file(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        chat_id = self._query_chat(query)
        drafts = await self._drafts_or_alert(query, arg)
        if drafts is None:
            return
        await self._call(query.answer)
        now = dt.datetime.now(dt.UTC)
        record: list[str] = []
        if arg == "e":
            items = [i for i in self.service.recent_messages(str(chat_id)) if i.analysis.kind == "sms"]
            record = evidence_lines(items, self._sent_times(), now)
        name = f"投诉材料-{now.astimezone(BEIJING):%Y%m%d-%H%M}.txt"
        await self._call(
            bot.send_document,
            chat_id=chat_id,
            document=drafts_document(drafts, now, record),
            filename=name,
            caption=DRAFT_NOTE,
        )

    # -- buttons --

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        kind, _, arg = (query.data or "").partition(":")
        handlers = {
            "fb": self._on_feedback,
            "alt": self._on_alternatives,
            "more": self._on_more,
            "t": self._on_topic,
            "td": self._on_topic_details,
            "nt": self._on_notify,
            "cp": self._on_complaint,
            "cd": self._on_draft,
            "cf": self._on_draft_file,
            "lb": self._on_label,
            "sk": self._on_skip,
        }
        handler = handlers.get(kind)
        if handler is None:
            await self._call(query.answer)
            return
        await handler(query, arg, context.bot)

    @staticmethod
    def _query_chat(query: CallbackQuery) -> int:
        message = query.message
        return message.chat.id if message is not None else query.from_user.id

    async def _edit_keyboard(
        self, query: CallbackQuery, bot: Any, drop: str, extra: list[list[InlineKeyboardButton]] | None = None
    ) -> None:
        """Remove the buttons whose data starts with ``drop`` and append ``extra`` rows."""
        message = query.message
        if message is None or not isinstance(message, Message):
            return  # too old to edit
        old = message.reply_markup.inline_keyboard if message.reply_markup else ()
        rows = [
            [b for b in row if not (isinstance(b.callback_data, str) and b.callback_data.startswith(drop))]
            for row in old
        ]
        rows = [row for row in rows if row] + (extra or [])
        try:
            await self._call(
                bot.edit_message_reply_markup,
                chat_id=message.chat.id,
                message_id=message.message_id,
                reply_markup=InlineKeyboardMarkup(rows) if rows else None,
            )
        except BadRequest as exc:  # "message is not modified" and the like: the buttons stay as they were
            log.info("telegram: keyboard not edited: %s", exc)

    async def _on_feedback(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        case, _, value = arg.partition(":")
        if not case.isdigit() or value not in ("0", "1"):
            await self._call(query.answer)
            return
        helpful = value == "1"
        stored = await self._run(self.service.record_feedback, int(case), helpful, str(query.from_user.id))
        await self._call(query.answer, text=FEEDBACK_THANKS[helpful] if stored else FEEDBACK_NOT_YOURS)
        if stored:
            await self._edit_keyboard(query, bot, "fb:")

    async def _on_alternatives(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        memo = self._memos.get(int(arg)) if arg.isdigit() else None
        if memo is None:
            await self._call(query.answer, text=STALE, show_alert=True)
            return
        if not memo.alternatives:
            await self._call(query.answer, text=NO_ALTERNATIVES)
            return
        await self._call(query.answer)
        topics = [[_button(f"❓ {title}", f"t:{tid}")] for tid, title in memo.alternatives]
        await self._edit_keyboard(query, bot, "alt:", topics)

    async def _on_more(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        memo = self._memos.get(int(arg)) if arg.isdigit() else None
        if memo is None or not memo.details:
            await self._call(
                query.answer, text=STALE if memo is None else "这条没有更多说明了。", show_alert=memo is None
            )
            return
        await self._call(query.answer)
        await self._send(bot, self._query_chat(query), render_plain(memo.details, defuse=False))

    async def _on_topic(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        out = self.service.answer_topic(arg)
        if out is None or out.reply is None:
            await self._call(query.answer, text="这个问题已经不在知识库里了。")
            return
        await self._call(query.answer)
        reply = out.reply
        rows = []
        if reply.details and reply.details != reply.answer and _fits(f"td:{arg}"):
            rows.append([_button("📖 详细", f"td:{arg}")])
        rows += [[_button(f"❓ {title}", f"t:{tid}")] for tid, title in reply.related if _fits(f"t:{tid}")]
        keyboard = InlineKeyboardMarkup(rows) if rows else None
        await self._send(bot, self._query_chat(query), render_reply(reply), keyboard=keyboard)

    async def _on_topic_details(self, query: CallbackQuery, arg: str, bot: Any) -> None:
        out = self.service.answer_topic(arg)
        if out is None or out.reply is None or not out.reply.details:
            await self._call(query.answer, text="这个问题已经不在知识库里了。")
            return
        await self._call(query.answer)
        await self._send(bot, self._query_chat(query), render_plain(out.reply.details, defuse=False))

    # -- errors --

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure for operators; the user gets an apology, never a traceback."""
        error = context.error
        if isinstance(error, Forbidden):
            log.info("telegram: cannot write to a chat (%s)", error)
            return
        if update is None and isinstance(error, (NetworkError, RetryAfter)):
            # Polling trouble (a 5xx, a 429, a dropped connection): the updater retries with back-off.
            log.warning("telegram: polling failed, retrying: %s: %s", type(error).__name__, error)
            return
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram: handler failed on update %s", update_id, exc_info=error)
        if not isinstance(update, Update):
            return
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(text=SORRY)
            elif update.effective_chat is not None and update.effective_message is not None:
                await context.bot.send_message(update.effective_chat.id, SORRY)
        except TelegramError as exc:
            log.warning("telegram: could not apologise either: %s", exc)

    # -- the running bot --

    async def post_init(self, app: Application) -> None:
        try:
            await app.bot.set_my_commands([BotCommand(c, d) for c, d in BOT_COMMANDS])
        except TelegramError as exc:
            log.warning("telegram: setMyCommands failed (%s); commands still work", exc)
        for operator in sorted(self.operator_ids):  # /review and /stats in the menu of operators only
            try:
                commands = [BotCommand(c, d) for c, d in BOT_COMMANDS + OPERATOR_COMMANDS]
                await app.bot.set_my_commands(commands, scope=BotCommandScopeChat(operator))
            except TelegramError as exc:  # the operator has not started a chat with the bot yet
                log.info("telegram: operator menu not set for one operator (%s)", exc)
        self.start_background(app.bot)
        log.info(
            "telegram: running as @%s (screenshots %s, %d operator(s))",
            app.bot.username,
            "read" if self.read_images else "not read: no OCR extra",
            len(self.operator_ids),
        )

    def start_background(self, bot: Any, maintenance: bool = True) -> None:
        """Start the notification check (a task on this loop) and, with ``maintenance``, retention and
        knowledge hot-reload (threads; SIGHUP reloads when called from the main thread)."""
        if self._notifier is None:
            self._notifier = asyncio.get_running_loop().create_task(
                self._notify_loop(bot), name="smsguard-notify"
            )
        if maintenance and self._maintenance is None:
            self._maintenance = contextlib.ExitStack()
            self._maintenance.enter_context(
                maintenance_jobs(self.service, self.settings.RETENTION_DAYS, sighup=True)
            )

    async def stop_background(self, _app: Application | None = None) -> None:
        """Stop what :meth:`start_background` started (idempotent: post_stop and post_shutdown call it)."""
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
            self._notifier = None
        maintenance, self._maintenance = self._maintenance, None
        if maintenance is not None:
            maintenance.close()


# --- building and running -------------------------------------------------------------------------------


class _LogHygiene(logging.Filter):
    """On every log handler: the token never appears, and expected network failures take one line."""

    def __init__(self, token: str):
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if isinstance(exc, (NetworkError, RetryAfter)) and record.name.startswith("telegram"):
            message = f"{message} ({type(exc).__name__}: {exc})"
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info:
            record.exc_text = (
                logging.Formatter().formatException(record.exc_info).replace(self._token, "<token>")
            )
        record.msg = message.replace(self._token, "<token>")
        record.args = ()
        return True


def build_application(
    settings: Settings, service: Service, *, request: BaseRequest | None = None
) -> Application:
    """The one place the python-telegram-bot Application is built. ``request`` is for offline tests."""
    check_settings(settings)
    assert settings.TELEGRAM_BOT_TOKEN is not None
    token = settings.TELEGRAM_BOT_TOKEN.get_secret_value()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs request URLs, token included, at INFO
    hygiene = _LogHygiene(token)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _LogHygiene) for f in handler.filters):
            handler.addFilter(hygiene)
    channel = TelegramChannel(service, settings)
    builder = (
        Application.builder()
        .token(token)
        .base_url(settings.TELEGRAM_BASE_URL)
        .base_file_url(settings.TELEGRAM_BASE_FILE_URL)
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.TELEGRAM_RATE_LIMIT, overall_time_period=1, max_retries=3
            )
        )
        .concurrent_updates(CONCURRENT_UPDATES)
        .post_init(channel.post_init)
        .post_stop(channel.stop_background)  # before the bot's connection closes: no notification cut off
        .post_shutdown(channel.stop_background)  # also when it never ran (a failed start)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    channel.register(app)
    return app


async def _initialize(app: Application, settings: Settings) -> None:
    """getMe, with a few retries on network trouble; a rejected token ends it at once."""
    for attempt in range(3):
        try:
            await app.initialize()
            return
        except InvalidToken:
            raise TelegramStartError(
                "the Bot API rejected TELEGRAM_BOT_TOKEN (wrong or revoked token; check it with @BotFather)"
            ) from None
        except (NetworkError, RetryAfter) as exc:
            if attempt == 2:
                raise TelegramStartError(
                    f"cannot reach the Bot API at {settings.TELEGRAM_BASE_URL}: {type(exc).__name__}: {exc}"
                ) from None
            await asyncio.sleep(1 + attempt)


def run_telegram(settings: Settings, service: Service) -> None:
    """Run until SIGINT/SIGTERM: long polling, or a webhook server when TELEGRAM_WEBHOOK_URL is set."""
    app = build_application(settings, service)
    hook = webhook_config(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # run_polling/run_webhook below use (and finally close) this loop
    try:
        loop.run_until_complete(_initialize(app, settings))
    except KeyboardInterrupt:
        loop.close()
        return
    except BaseException:
        loop.close()
        raise
    if hook is None:
        log.info("telegram: long polling %s", settings.TELEGRAM_BASE_URL)
        # Not app.run_polling: its Updater confirms updates before they are handled (lost on a crash).
        run_polling(app, loop, allowed_updates=ALLOWED_UPDATES, concurrency=CONCURRENT_UPDATES)
        return
    if hook.secret is None:
        log.warning("telegram: TELEGRAM_WEBHOOK_SECRET is unset: anyone who finds the URL can post updates")
    log.info("telegram: webhook %s, listening on %s:%s", hook.url, hook.host, hook.port)
    try:
        # Not app.run_webhook: it answers Telegram before handling an update (lost on a crash).
        run_webhook(app, loop, hook, allowed_updates=ALLOWED_UPDATES, concurrency=CONCURRENT_UPDATES)
    except OSError as exc:
        raise TelegramStartError(f"cannot listen on {hook.host}:{hook.port}: {exc.strerror or exc}") from None

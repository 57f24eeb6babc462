"""The Telegram channel (python-telegram-bot 22): polling by default, a webhook when one is configured.

Telegram types stay inside this module. A message becomes the service's neutral :class:`Incoming`; the
neutral :class:`Reply` it gets back is rendered here as HTML (everything escaped, split under 4,096
characters) with inline buttons: 👍/👎 (stored on the case), "不是这个意思" (the next-best topics as
buttons) and "详细" (the long answer).

Bot API methods used: getMe, deleteWebhook, setWebhook, getUpdates, sendMessage, editMessageReplyMarkup,
answerCallbackQuery, setMyCommands. (sendDocument, editMessageText, sendChatAction and getFile are
allowed by the issue but not needed yet.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import html
import logging
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
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

from bot.core import Analysis, Reply
from bot.service import Incoming, Outgoing, Service
from bot.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted here in UTF-16 units of the HTML source
CALLBACK_LIMIT = 64  # bytes of callback_data
ALLOWED_UPDATES = ["message", "callback_query"]
CONCURRENT_UPDATES = 16  # different chats are answered concurrently; one chat's messages stay in order
MEMO_SIZE = 5000  # buttons' "详细"/"不是这个意思" data per case, in memory (knowledge text only)
MEDIA_NOTICE_SECONDS = 60.0  # one media hint per chat per minute
SEND_ATTEMPTS = 4
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
UNKNOWN_COMMAND = "我不认识这个命令。把短信全文粘贴给我，或者发 /help 看看怎么用。"
SORRY = "抱歉，处理这条消息时出了问题，已经记录下来。请稍后再试一次。"
STALE = "这条消息有点久了，请重新发送短信或问题。"
NO_ALTERNATIVES = "没有更接近的其他问题了，换个说法问问我吧。"
FEEDBACK_THANKS = {True: "谢谢！已记下：这条回答有帮助。", False: "谢谢，已记下。我们会据此改进。"}
FEEDBACK_GONE = "这条记录已经删除了。"
BOT_COMMANDS = [
    ("start", "开始使用"),
    ("help", "怎么用"),
    ("about", "这是什么、不是什么"),
    ("privacy", "记录什么、保存多久"),
    ("forget", "删除我的全部记录"),
]


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


def render_reply(reply: Reply, note: str | None = None, limit: int = TEXT_LIMIT) -> list[str]:
    """The neutral reply as HTML messages, in the order of ``Reply.as_text``. Only "为什么" quotes the user's
    text, so only its links are defused; the rest is knowledge-base text."""
    blocks: list[list[str]] = []
    if note:
        blocks.append(_block([note], "i", limit))
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


def _html_to_plain(part: str) -> str:
    return html.unescape(re.sub(r"</?[a-z]+>", "", part))


# --- settings -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    url_path: str
    host: str
    port: int
    secret: str | None


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
    webhook_config(settings)


# --- the channel ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Memo:
    """What the buttons of one verdict need later: knowledge text only, nothing the user wrote."""

    details: str | None
    alternatives: tuple[tuple[str, str], ...]


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


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text[:60], callback_data=data)


def _fits(data: str) -> bool:
    return len(data.encode()) <= CALLBACK_LIMIT


class TelegramChannel:
    """Handlers: messages -> ``Service.handle`` (in a thread), replies -> HTML with buttons."""

    def __init__(self, service: Service, settings: Settings):
        self.service = service
        self.settings = settings
        self._memos: OrderedDict[int, _Memo] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._media_hinted: dict[str, float] = {}

    def register(self, app: Application) -> None:
        only_new = filters.UpdateType.MESSAGE  # edited messages are not judged again
        app.add_handler(CommandHandler("start", self.on_start, filters=only_new))
        app.add_handler(CommandHandler("help", self.on_help, filters=only_new))
        app.add_handler(CommandHandler("about", self.on_about, filters=only_new))
        app.add_handler(CommandHandler("privacy", self.on_privacy, filters=only_new))
        app.add_handler(CommandHandler("forget", self.on_forget, filters=only_new))
        app.add_handler(MessageHandler(only_new & filters.COMMAND, self.on_unknown_command))
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
    def _text_of(message: Message, bot: Any) -> str:
        """The text to judge: the message (or caption) without the bot's @name, plus hidden link targets;
        in a group, "@bot" alone in reply to someone's message judges that message."""
        text = message.text or message.caption or ""
        entities = message.parse_entities() if message.text else message.parse_caption_entities()
        hidden = [e.url for e in entities if e.type == MessageEntity.TEXT_LINK and e.url]
        if bot.username:
            text = re.sub(rf"@{re.escape(bot.username)}\b", " ", text, flags=re.IGNORECASE).strip()
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
        note = _forward_note(forwarded_at)
        if message.text is None and _media_kind(message):
            note = f"{note}\n{MEDIA_CAPTION_NOTE}" if note else MEDIA_CAPTION_NOTE
        async with self._lock(incoming.chat_id):
            out = await self._run(self.service.handle, incoming)
            if out is not None:
                await self._answer(context.bot, message, out, note)

    async def _answer(self, bot: Any, message: Message, out: Outgoing, note: str | None) -> None:
        keyboard = None
        if out.reply is not None:
            parts = render_reply(out.reply, note)
            if out.analysis is not None and out.case_id is not None:
                keyboard = self._verdict_keyboard(out.case_id, out.analysis)
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

    def _verdict_keyboard(self, case_id: int, analysis: Analysis) -> InlineKeyboardMarkup:
        memo = _Memo(analysis.reply.details, self._alternatives(analysis))
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

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply_html(update, context, START)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply_html(update, context, HELP)

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
            f"{html.escape(raw)}\n\n"
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
        stored = await self._run(self.service.record_feedback, int(case), helpful)
        await self._call(query.answer, text=FEEDBACK_THANKS[helpful] if stored else FEEDBACK_GONE)
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

    async def post_init(self, app: Application) -> None:
        try:
            await app.bot.set_my_commands([BotCommand(c, d) for c, d in BOT_COMMANDS])
        except TelegramError as exc:
            log.warning("telegram: setMyCommands failed (%s); commands still work", exc)
        log.info("telegram: running as @%s", app.bot.username)


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
        app.run_polling(allowed_updates=ALLOWED_UPDATES, bootstrap_retries=3)
        return
    if hook.secret is None:
        log.warning("telegram: TELEGRAM_WEBHOOK_SECRET is unset: anyone who finds the URL can post updates")
    log.info("telegram: webhook %s, listening on %s:%s", hook.url, hook.host, hook.port)
    try:
        app.run_webhook(
            listen=hook.host,
            port=hook.port,
            url_path=hook.url_path,
            webhook_url=hook.url,
            secret_token=hook.secret,
            allowed_updates=ALLOWED_UPDATES,
            bootstrap_retries=3,
        )
    except OSError as exc:
        raise TelegramStartError(f"cannot listen on {hook.host}:{hook.port}: {exc.strerror or exc}") from None

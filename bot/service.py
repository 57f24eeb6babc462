"""``handle(incoming) -> outgoing``: the one place where the analysis core and the case store meet.

Adapters (console, Telegram, WeChat) turn platform messages into :class:`Incoming` and render the
:class:`Outgoing` they get back; they never call the core or the store themselves.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field, replace

from bot.core import Analysis, Analyzer, Reply
from bot.core.complaint import Draft, Message, draft_complaints
from bot.core.compose import compose_topic_reply
from bot.core.normalize import normalize
from bot.ocr import OcrImageError, OcrUnavailable, ScreenshotReader, format_read_text
from bot.store import CaseStore, NewCase

log = logging.getLogger(__name__)

# The id _log returns for a redelivered message: logged before, so neither logged nor answered anew.
_DUPLICATE = -1
MAX_TEXT_CHARS = 20000  # longer input is analysed in full but only this much is stored
RATE_WINDOW_SECONDS = 60.0
MAX_RECENT_PER_CHAT = 20  # messages kept in memory per chat for follow-ups and /evidence

EMPTY_REPLY = "请把收到的短信全文粘贴或转发给我，或者直接提问，比如“上门催收合法吗”。"
THROTTLED_NOTICE = "你发得有点快，我先处理前面的消息。请一分钟后再发，内容不会丢失。"
IMAGE_CASE_TEXT = "[截图]"  # the case text of a screenshot that was throttled before it was read
OCR_OFF_REPLY = "这里还没有开启截图识别。请把短信文字复制后粘贴发给我（长按短信，选“复制”）。"
IMAGE_UNREADABLE_REPLY = "这张图片我打不开。请重新发送短信截图（JPG 或 PNG），或把短信文字复制粘贴发给我。"
NO_TEXT_REPLY = "我没能从这张图片里认出文字。请发送清晰、完整的短信截图，或把短信文字复制粘贴发给我。"
_FOLLOW_UP_DETAILS = re.compile(r"^(详细|详情|更多|展开|具体说说|详细点|详细说说)[。!！?？]*$")
_FOLLOW_UP_STEPS = re.compile(r"^(怎么办|那怎么办|我该怎么办|该怎么办|怎么处理|下一步呢?)[。!！?？]*$")
_FOLLOW_UP_NUMBER = re.compile(
    r"^(这个|那个|短信里的|上面的?)?(号码|电话|电话号码|手机号|链接|网址)(是)?(真的|假的|官方的?)(吗|么|嘛)?[。!！?？]*$"
)
NO_RECENT = "我这里没有你最近的消息了（为保护隐私，原文只在内存里保留一段时间）。请重新粘贴短信全文。"
NUMBER_ADVICE = (
    "我没办法确认某个号码或链接是不是官方的，也不会凭号码下结论。请这样核实：\n"
    "1. 不要回拨短信里的号码、不要点短信里的链接；\n"
    "2. 贷款或信用卡：打开官方App，或拨打卡背面的客服电话，问清是否有这笔欠款、是否委托了催收；\n"
    "3. 法院短信：拨打12368，报出案号核实；\n"
    "4. 涉及转账、验证码、“安全账户”的，先停下，可拨打96110咨询。"
)


BEIJING = dt.timezone(dt.timedelta(hours=8))


def _draft_time(iso: str | None) -> str | None:
    """A forwarded message's date (ISO 8601) as a complaint draft states it: Beijing time, to the minute."""
    if not iso:
        return None
    try:
        return f"{dt.datetime.fromisoformat(iso).astimezone(BEIJING):%Y-%m-%d %H:%M}（北京时间）"
    except ValueError:
        return None


@dataclass(frozen=True)
class Incoming:
    channel: str  # "console" | "telegram" | "wechat"
    user_id: str
    chat_id: str
    text: str
    message_id: str | None = None  # for de-duplicating redelivered messages
    forward_origin: str | None = None  # a forwarded message's origin type ("user", "hidden_user", "channel"…)
    forwarded_at: str | None = None  # the original message's date (ISO 8601, UTC), when forwarded


@dataclass(frozen=True)
class Outgoing:
    text: str  # plain-text rendering; adapters may render ``reply`` richer
    reply: Reply | None = None
    analysis: Analysis | None = None
    case_id: int | None = None
    duplicate: bool = False
    read_text: str | None = None  # a screenshot's text as echoed to the user (redacted; also in ``text``)


@dataclass
class _Recent:
    """An analysed message of the chat, kept in memory only (raw text never touches disk by default)."""

    case_id: int | None
    analysis: Analysis
    text: str
    at: float
    received_at: str | None = None  # the original message's date, when forwarded


@dataclass
class _RateState:
    times: deque[float] = field(default_factory=deque)
    notified_window_start: float = -1.0


def _is_blank(text: str) -> bool:
    """Nothing a person could read: whitespace, controls and invisible characters only (stops early)."""
    return all(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in text)


class Service:
    def __init__(
        self,
        analyzer: Analyzer,
        store: CaseStore,
        *,
        user_rate_limit: int = 10,
        raw_text_ttl_minutes: int = 1440,
        clock=time.monotonic,
        screenshots: ScreenshotReader | None = None,
    ):
        self.analyzer = analyzer
        self.store = store
        self._limit = user_rate_limit
        self._ttl = raw_text_ttl_minutes * 60.0
        self._clock = clock
        self._rates: dict[str, _RateState] = {}
        self._recent: dict[str, deque[_Recent]] = {}
        self._lock = threading.Lock()
        self.screenshots = screenshots  # created on the first screenshot when not given

    def handle(self, incoming: Incoming) -> Outgoing | None:
        """Answer one message. ``None`` means: logged, deliberately not answered (throttled)."""
        text = incoming.text if isinstance(incoming.text, str) else ""
        verdict_on_rate = self._check_rate(incoming.user_id)
        if verdict_on_rate != "ok":
            self._log(incoming, text, None, throttled=True)
            return Outgoing(THROTTLED_NOTICE) if verdict_on_rate == "notify" else None
        return self._answer(incoming, text)

    def _answer(self, incoming: Incoming, text: str) -> Outgoing | None:
        """Everything in :meth:`handle` after the rate limit (shared with :meth:`handle_image`)."""
        if _is_blank(text):
            return Outgoing(EMPTY_REPLY)
        follow_up = self._follow_up(incoming.chat_id, normalize(text).text)
        if follow_up is not None:
            return follow_up
        analysis = self.analyzer.analyze(text)
        case_id = self._log(incoming, text, analysis)
        if case_id == _DUPLICATE:
            return Outgoing(analysis.reply.as_text(), analysis.reply, analysis, None, duplicate=True)
        with self._lock:
            recent = self._recent.setdefault(incoming.chat_id, deque(maxlen=MAX_RECENT_PER_CHAT))
            recent.append(_Recent(case_id, analysis, text, self._clock(), incoming.forwarded_at))
        return Outgoing(analysis.reply.as_text(), analysis.reply, analysis, case_id)

    def admit_image(self, incoming: Incoming) -> tuple[bool, Outgoing | None]:
        """The rate check for a screenshot, before it is fetched, so a flood of pictures costs no downloads:
        ``(True, None)`` to go on (then :meth:`handle_image` with ``admitted=True``), else ``(False, what to
        answer)``: the notice the first time over the limit, then None; the throttled case is logged."""
        verdict_on_rate = self._check_rate(incoming.user_id)
        if verdict_on_rate == "ok":
            return True, None
        self._log(incoming, IMAGE_CASE_TEXT, None, throttled=True)
        return False, Outgoing(THROTTLED_NOTICE) if verdict_on_rate == "notify" else None

    def handle_image(self, incoming: Incoming, image: bytes, *, admitted: bool = False) -> Outgoing | None:
        """Answer a screenshot: read its text on this machine, then answer that like a pasted message.

        Blocking (about a second; the OCR models load on the first image): call it off the event loop.
        ``incoming.text`` (a caption) is not analysed. Rate-limited and logged like :meth:`handle` (``None``:
        throttled) unless :meth:`admit_image` already let it in; the reply starts with the text that was
        read, redacted, also given as ``read_text``.
        """
        if not admitted:
            go_on, answer = self.admit_image(incoming)
            if not go_on:
                return answer
        try:
            read = self._screenshot_reader().read(image)
        except OcrUnavailable as exc:
            log.warning("screenshot not read: %s", exc)
            return Outgoing(OCR_OFF_REPLY)
        except OcrImageError as exc:
            log.info("screenshot not read: %s", exc)
            return Outgoing(IMAGE_UNREADABLE_REPLY)
        log.info(
            "screenshot read: %dx%d, %d chars, %.2f s", read.width, read.height, len(read.text), read.seconds
        )
        if not normalize(read.text[:200]).text:
            return Outgoing(NO_TEXT_REPLY)
        out = self._answer(incoming, read.text)
        if out is None:
            return None
        echo = format_read_text(read.text)
        return replace(out, text=f"{echo}\n\n{out.text}", read_text=echo)

    def load_screenshot_reader(self) -> bool:
        """Load the OCR models now (blocking, a second or two) so the first screenshot is fast.
        False when the OCR extra is not installed."""
        try:
            self._screenshot_reader().load()
        except OcrUnavailable as exc:
            log.warning("screenshots will not be read: %s", exc)
            return False
        return True

    def _screenshot_reader(self) -> ScreenshotReader:
        with self._lock:
            if self.screenshots is None:
                self.screenshots = ScreenshotReader()
            return self.screenshots

    def _log(
        self, incoming: Incoming, text: str, analysis: Analysis | None, throttled: bool = False
    ) -> int | None:
        """The new case's id; ``_DUPLICATE`` for a message already logged; None when the database failed."""
        key = None
        if incoming.message_id is not None:
            key = self.store.message_key(incoming.channel, incoming.chat_id, incoming.message_id)
        case = NewCase(
            incoming.channel,
            incoming.user_id,
            text[:MAX_TEXT_CHARS],
            analysis,
            key,
            throttled,
            forward_origin=incoming.forward_origin,
            forwarded_at=incoming.forwarded_at,
        )
        try:
            case_id = self.store.log_case(case)
        except sqlite3.Error as exc:
            # A read-only or full disk must not cost the user the answer: the failure is a log line.
            log.warning("case not logged (%s: %s); answering anyway", type(exc).__name__, exc)
            return None
        if case_id is None:
            return _DUPLICATE
        log.info(
            "case=%s channel=%s verdict=%s throttled=%s ms=%s",
            case_id,
            incoming.channel,
            analysis.verdict if analysis else "-",
            throttled,
            analysis.timings_ms.get("analyze") if analysis else "-",
        )
        return case_id

    def _check_rate(self, user_id: str) -> str:
        """ "ok", "notify" (first message over the limit in this window) or "drop"."""
        now = self._clock()
        with self._lock:
            state = self._rates.setdefault(user_id, _RateState())
            while state.times and now - state.times[0] >= RATE_WINDOW_SECONDS:
                state.times.popleft()
            if len(state.times) < self._limit:
                state.times.append(now)
                return "ok"
            window_start = state.times[0]
            if state.notified_window_start == window_start:
                return "drop"
            state.notified_window_start = window_start
            return "notify"

    def recent_messages(self, chat_id: str) -> list[_Recent]:
        """The chat's analysed messages still in memory, oldest first; expired ones are forgotten here."""
        with self._lock:
            items = self._recent.get(chat_id)
            if not items:
                return []
            now = self._clock()
            while items and now - items[0].at > self._ttl:
                items.popleft()  # past RAW_TEXT_TTL_MINUTES: forget the raw text
            if not items:
                del self._recent[chat_id]
            return list(items)

    def sweep(self) -> None:
        """Forget, across all chats, raw text past RAW_TEXT_TTL_MINUTES and rate windows gone quiet: memory
        must not keep a message just because its sender never wrote again."""
        now = self._clock()
        with self._lock:
            for chat_id in list(self._recent):
                items = self._recent[chat_id]
                while items and now - items[0].at > self._ttl:
                    items.popleft()
                if not items:
                    del self._recent[chat_id]
            for user_id in list(self._rates):
                times = self._rates[user_id].times
                if not times or now - times[-1] >= RATE_WINDOW_SECONDS:
                    del self._rates[user_id]

    def recent(self, chat_id: str) -> _Recent | None:
        items = self.recent_messages(chat_id)
        return items[-1] if items else None

    def complaint_drafts(
        self,
        chat_id: str,
        channel: str | None = None,
        all_recent: bool = False,
        case_id: int | None = None,
    ) -> tuple[Draft, ...] | None:
        """Drafts for the chat's last message, or for the one logged as ``case_id``, or (``all_recent``) for
        all its messages still in memory except questions (not evidence). None when nothing is in memory."""
        items = self.recent_messages(chat_id)
        if case_id is not None:
            items = [i for i in items if i.case_id == case_id]
        if not items:
            return None
        chosen = [i for i in items if i.analysis.kind == "sms"] if all_recent else items[-1:]
        messages = [Message(i.text, i.analysis, received_at=_draft_time(i.received_at)) for i in chosen]
        return draft_complaints(self.analyzer.kb, messages, channel)

    def _follow_up(self, chat_id: str, normalized: str) -> Outgoing | None:
        """ "详细", "怎么办", "这个号码是真的吗" about the chat's last case, while it is in memory."""
        wants_details = bool(_FOLLOW_UP_DETAILS.match(normalized))
        wants_steps = bool(_FOLLOW_UP_STEPS.match(normalized))
        wants_number = bool(_FOLLOW_UP_NUMBER.match(normalized))
        if not (wants_details or wants_steps or wants_number):
            return None
        item = self.recent(chat_id)
        if item is None:
            return Outgoing(NUMBER_ADVICE if wants_number else NO_RECENT)
        reply = item.analysis.reply
        if wants_number:
            entities = item.analysis.entities
            found = [*entities.phones, *entities.urls]
            head = ("你上一条消息里有：" + "、".join(found) + "\n") if found else ""
            return Outgoing(head + NUMBER_ADVICE, None, item.analysis, item.case_id)
        if wants_steps and reply.steps:
            text = "怎么办：\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(reply.steps, 1))
            return Outgoing(text, None, item.analysis, item.case_id)
        return Outgoing(reply.details or "这条消息没有更多说明了。", None, item.analysis, item.case_id)

    def swap_analyzer(self, analyzer: Analyzer) -> Analyzer:
        """Answer with ``analyzer`` (new knowledge) from the next message on; returns the previous one.

        Thread-safe: a message being analysed finishes with the analyzer it started with.
        """
        with self._lock:
            previous, self.analyzer = self.analyzer, analyzer
        return previous

    def answer_topic(self, topic_id: str) -> Outgoing | None:
        """The answer of one knowledge topic (a "你是不是想问" choice); None for an unknown id."""
        kb = self.analyzer.kb  # one knowledge base throughout, even if it is swapped meanwhile
        topic = kb.topic_by_id.get(topic_id)
        if topic is None:
            return None
        reply = compose_topic_reply(kb, topic)
        return Outgoing(reply.as_text(), reply)

    def record_feedback(self, case_id: int, helpful: bool, user_id: str | None = None) -> bool:
        """False when the case is gone or, given ``user_id``, is not that user's: in a group only the person
        asked for can rate the answer, and a forged button cannot rate someone else's case."""
        return self.store.set_feedback(case_id, "up" if helpful else "down", user_id)

    def forget_user(self, user_id: str, chat_id: str | None = None) -> int:
        with self._lock:
            if chat_id is not None:
                self._recent.pop(chat_id, None)
        return self.store.delete_user_cases(user_id)

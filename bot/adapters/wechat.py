"""The WeChat Official Account channel (公众号 server configuration): passive XML replies over HTTP.

``smsguard wechat`` serves ``/wechat`` (WeChat's callback URL) and ``/healthz`` with the standard library's
HTTP server on a fixed pool of threads. Three layers, each usable without the one above it:

- :class:`WeChatChannel`: a parsed message (a dict of XML fields) -> the reply text, or ``None`` for no reply.
  Text goes to :meth:`Service.handle`; the WeChat menu words are handled here: "详细" (the rest, in pages of
  ≤ 2,048 bytes, "继续" for the next), "1/2/3" (a related topic of the last reply), "有用/没用" (feedback on the
  last case), "投诉" / "投诉2" (complaint drafts), "删除我的记录", "结果" (a reply that took too long).
- :class:`WeChatEndpoint`: signatures (``hmac.compare_digest``), 安全模式 decryption and encryption
  (wechatpy's ``PrpCrypto``), XML parsing, the passive reply XML, and de-duplication: WeChat retries a
  message it got no answer for within 5 seconds, so the reply to each ``MsgId`` is kept for a while and a
  retry gets the same bytes (the service also de-duplicates cases by message id).
- :func:`run_wechat`: the HTTP server, until SIGINT/SIGTERM.

A passive reply is one text message of at most 2,048 bytes (UTF-8) and must arrive within 5 seconds.
Analysis takes milliseconds; anything slower (an image download and OCR) is answered after
``REPLY_DEADLINE`` seconds with a note to send "结果" for the finished answer.

Privacy: OpenIDs reach the store, which keeps only keyed hashes. Message text, OpenIDs, query strings and
the token never reach a log line. Reply texts (which quote the user's message) stay in memory only: the
per-MsgId cache for ``REPLY_CACHE_SECONDS`` (or ``RAW_TEXT_TTL_MINUTES`` if shorter), pages and pending
answers for ``RAW_TEXT_TTL_MINUTES``; a sweep every ``SWEEP_SECONDS`` drops them even without traffic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import importlib.util
import logging
import re
import signal
import threading
import time
import unicodedata
import urllib.request
import xml.etree.ElementTree as ET
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.core import Reply
from bot.maintenance import maintenance_jobs
from bot.service import RATE_WINDOW_SECONDS, THROTTLED_NOTICE, Incoming, Outgoing, Service
from bot.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "wechat"
WECHAT_PATH = "/wechat"
HEALTH_PATH = "/healthz"
CONTENT_LIMIT = 2048  # bytes (UTF-8) of a text reply's Content
REPLY_DEADLINE = 4.0  # seconds until a holding reply; WeChat gives up after 5 and retries
REPLY_CACHE_SECONDS = 120.0  # replies kept per MsgId for WeChat's retries (3 retries, ~5 s apart)
REPLY_CACHE_SIZE = 10000
USER_STATE_SIZE = 20000  # users whose last reply (related topics, case id, pages) is remembered
USER_STATE_IDLE_SECONDS = 86400.0  # …for at most a day without a message
SWEEP_SECONDS = 5.0  # how often memory past its time is dropped, traffic or not
MAX_BODY_BYTES = 256 * 1024  # a WeChat callback is a few KB
SOCKET_TIMEOUT = 10.0  # seconds a client may take to send its request
HTTP_WORKERS = 16
ANSWER_WORKERS = 4
IMAGE_MAX_BYTES = 10 * 1024 * 1024
IMAGE_TIMEOUT = 3.0
IMAGE_HOSTS = ("qpic.cn", "qq.com", "qlogo.cn")  # PicUrl hosts; nothing else is fetched
COMMAND_RATE_FACTOR = 3  # menu words per minute: this many times USER_RATE_LIMIT (reading pages is cheap)
SHORT_WHY = 3
SHORT_RELATED = 3
SHORT_ANSWER_MIN = 60  # characters of a question's answer kept before anything else is dropped
SHORT_NOTE_BYTES = 600  # a screenshot's echoed text is cut to this first when a reply does not fit

_TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9]{3,32}$")  # WeChat: 3-32 letters or digits
_AES_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{43}$")  # EncodingAESKey: 43 letters or digits
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_COMMAND_PREFIX = re.compile(r"^(请)?回复\s*")
_COMMAND_TRAILING = re.compile(r"[\s。.!！~～]+$")

# --- texts -----------------------------------------------------------------------------------------------

MENU_HELP = (
    "看完结果后可以回复：\n"
    "详细：完整说明、官方渠道和依据\n"
    "1/2/3：看列出的相关问题\n"
    "投诉：生成投诉材料（违法催收、诈骗时）\n"
    "有用 / 没用：告诉我判断准不准\n"
    "删除我的记录：删除你的全部记录"
)
HELP = (
    "把收到的催收、法院、贷款短信全文复制粘贴发给我，我会告诉你：\n"
    "· 它像正常提醒、施压、违法催收、真实的法律程序，还是诈骗；\n"
    "· 为什么这么判断（引用短信原话）；\n"
    "· 现在该怎么做、怎么通过官方渠道核实、去哪里投诉。\n"
    "也可以直接提问，比如“上门催收合法吗”“律师函短信是真的吗”。\n\n"
    + MENU_HELP
    + "\n\n判断是自动的，不构成法律意见。身份证号、银行卡号、手机号和称呼里的姓名会在记录前自动隐去。"
)
WELCOME = "你好！我是催收短信鉴别助手。收到让你害怕的短信，先别急着转账或回拨。\n\n" + HELP
MENU_DETAILS = "回复“详细”看完整说明、官方渠道和依据"
MENU_COMPLAINT = "回复“投诉”生成投诉材料"
MENU_FEEDBACK = "回复“有用”或“没用”告诉我判断准不准"
MEDIA_HELP = {
    "image": "截图里的文字我暂时还读不出来。",
    "voice": "语音我暂时还听不了。",
    "video": "视频我暂时还看不了。",
    "shortvideo": "视频我暂时还看不了。",
    "location": "收到位置啦，不过我只看得懂文字。",
    "link": "链接我不会打开（也请不要点短信里的链接）。",
    "file": "文件我暂时还打不开。",
}
MEDIA_OTHER = "这种消息我暂时还看不懂。"
MEDIA_HOW = (
    "请这样发给我：\n"
    "1. 在手机短信里长按那条短信 →“复制”，回到这里粘贴发送；\n"
    "2. 只有截图的话，在微信里打开图片，长按 →“提取文字”，复制后粘贴过来；\n"
    "3. 或者直接用文字描述，比如“他们说要爆我通讯录”。\n"
    "身份证号、银行卡号、手机号和称呼里的姓名会在记录前自动隐去。"
)
IMAGE_FAILED = "这张图片我没能读出文字。"
HOLDING = "收到了，还在分析（图片识别需要多一点时间）。请过几秒回复“结果”查看。"
RESULT_NONE = "没有还在等待的结果。请把短信全文粘贴发给我。"
RESULT_WAIT = "还在分析，请再过几秒回复“结果”。"
SORRY = "抱歉，处理这条消息时出了问题，已经记录下来。请稍后再发一次。"
NO_MORE_PAGES = "没有更多内容了。把新的短信或问题发给我吧。"
NO_RELATED = "编号只对我上一条回复里列出的问题有效。请直接提问，或把短信全文粘贴发给我。"
TOPIC_GONE = "这个问题已经不在知识库里了。请直接提问。"
NO_CASE = "没有找到可以评价的判断。请在收到判断后回复“有用”或“没用”。"
FEEDBACK_THANKS = {True: "谢谢！已记下：这条判断有帮助。", False: "谢谢，已记下。我们会据此改进。"}
FEEDBACK_GONE = "这条记录已经删除了。"
NO_DRAFT_MEMORY = (
    "我这里没有你最近的短信了（为保护隐私，原文只在内存里保留一段时间）。请重新粘贴短信全文，再回复“投诉”。"
)
NO_DRAFT_FITS = (
    "这条消息看起来不涉及违法催收或诈骗，没有合适的投诉材料。"
    "如果对方威胁、辱骂、爆通讯录，或要求转账到个人账户，请把那条短信发给我。"
)
FORGOTTEN = "已删除你的 {count} 条记录，内存里最近的消息也已清除。以后的消息仍会照常记录（已隐去个人信息）。"

DETAILS_WORDS = frozenset({"详细", "详情", "更多", "展开"})  # also the service's own "详细" words
MORE_WORDS = frozenset({"继续", "下一页", "下页", "翻页"})
HELP_WORDS = frozenset({"帮助", "help", "?", "？", "菜单", "使用说明", "怎么用"})
RESULT_WORDS = frozenset({"结果", "查看结果"})
FORGET_WORDS = frozenset({"删除我的记录", "删除记录", "删除我的数据", "删除我的全部记录"})
FEEDBACK_WORDS = {
    "有用": True,
    "有帮助": True,
    "没用": False,
    "没有用": False,
    "无用": False,
    "没帮助": False,
}
_COMPLAINT = re.compile(r"^投诉(\d{0,5})$")
_TOPIC_NUMBER = re.compile(r"^[1-9]$")
COMPLAINT_VERDICTS = frozenset({"illegal_collection", "scam"})


class WeChatStartError(Exception):
    """The endpoint cannot start; the message is one line for the operator (never contains a secret)."""


@dataclass(frozen=True)
class WeChatConfig:
    token: str
    app_id: str | None = None
    aes_key: str | None = None  # the 43-character EncodingAESKey; None: plain mode only

    def __repr__(self) -> str:  # never print the secrets
        return f"WeChatConfig(app_id={self.app_id!r}, aes={'on' if self.aes_key else 'off'})"


def check_settings(settings: Settings) -> WeChatConfig:
    """Refuse to start, with one line, on a missing or malformed token or key."""
    if settings.WECHAT_TOKEN is None:
        raise WeChatStartError(
            "WECHAT_TOKEN is not set (the Token of the Official Account's 服务器配置, 3-32 letters or digits)"
        )
    token = settings.WECHAT_TOKEN.get_secret_value()
    if not _TOKEN_FORMAT.match(token):
        raise WeChatStartError("WECHAT_TOKEN must be 3-32 letters or digits (WeChat's rule for the Token)")
    aes_key = settings.WECHAT_AES_KEY.get_secret_value() if settings.WECHAT_AES_KEY else None
    if aes_key is not None:
        if not _AES_KEY_FORMAT.match(aes_key) or len(_aes_bytes(aes_key)) != 32:
            raise WeChatStartError("WECHAT_AES_KEY must be the 43-character EncodingAESKey (消息加解密密钥)")
        if not settings.WECHAT_APP_ID:
            raise WeChatStartError("WECHAT_APP_ID is required with WECHAT_AES_KEY (安全模式 checks it)")
    return WeChatConfig(token, settings.WECHAT_APP_ID, aes_key)


def _aes_bytes(aes_key: str) -> bytes:
    try:
        return base64.b64decode(aes_key + "=")
    except (binascii.Error, ValueError):
        return b""


# --- signatures, XML -------------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the parts sorted and concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(given: str | None, *parts: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(sign(*parts).encode(), given.strip().lower().encode())


class Refused(Exception):
    """A request answered with an error status (403, 400, 413…) and one warning line."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_xml(body: bytes) -> dict[str, str]:
    """A WeChat XML document's top-level fields (no DTDs: WeChat never sends one)."""
    if _DOCTYPE.search(body):
        raise Refused(400, "XML with a DTD")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise Refused(400, f"malformed XML ({exc})") from None
    except ValueError:  # e.g. an encoding declaration Python does not know
        raise Refused(400, "malformed XML (unusable encoding)") from None
    if root.tag != "xml":
        raise Refused(400, "XML root is not <xml>")
    return {child.tag: (child.text or "") for child in root}


def xml_text(value: str) -> str:
    return _XML_ILLEGAL.sub("", value)


def cdata(value: str) -> str:
    return "<![CDATA[" + xml_text(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def reply_xml(to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply (ToUserName: the sender's OpenID; FromUserName: the account)."""
    return (
        "<xml>"
        f"<ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content>"
        "</xml>"
    )


# --- reply texts within 2,048 bytes ------------------------------------------------------------------------


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def cut_bytes(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` cut between characters to at most ``limit`` bytes, with ``ellipsis`` when cut."""
    if utf8_len(text) <= limit:
        return text
    room = max(0, limit - utf8_len(ellipsis))
    return text.encode("utf-8")[:room].decode("utf-8", errors="ignore") + ellipsis


def shorten(text: str, limit: int) -> str:
    """Cut at the last sentence end that fits (or between characters), marked with "…"."""
    cut = cut_bytes(text, limit)
    if cut == text:
        return text
    body = cut[:-1]
    end = max(body.rfind("。"), body.rfind("；"), body.rfind("\n"))
    if end >= len(body) // 2:
        body = body[: end + 1]
    return body.rstrip() + "…"


def _numbered(title: str, items: list[str]) -> str:
    return title + "\n" + "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def _related_block(related: list[tuple[str, str]]) -> str:
    return _numbered("你是不是想问（回复数字）：", [title for _, title in related])


def _head(reply: Reply, answer: str | None) -> list[str]:
    """Care first; a question leads with its answer, a message with its verdict line."""
    order = (answer, reply.headline) if getattr(reply, "answer_first", False) else (reply.headline, answer)
    return [b for b in (reply.crisis, *order) if b]


def render_short(
    reply: Reply, *, feedback: bool, complaint: bool, note: str | None = None, limit: int = CONTENT_LIMIT
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The passive reply to a verdict or an answer, and the related topics it numbers.

    ``note`` (a screenshot's text as read) comes first, cut to ``SHORT_NOTE_BYTES`` if need be. Crisis care,
    the verdict line, the menu and the footer always stay; what does not fit is dropped in this order:
    evidence lines beyond the first, steps beyond the second, related topics beyond the first, the answer's
    tail, then the rest. "回复 详细" gives everything.
    """
    why = list(reply.why[:SHORT_WHY])
    steps = list(reply.steps)
    related = list(reply.related[:SHORT_RELATED])
    answer = reply.answer or ""
    menu = [MENU_DETAILS, *([MENU_COMPLAINT] if complaint else []), *([MENU_FEEDBACK] if feedback else [])]

    def build() -> str:
        blocks = ([note] if note else []) + _head(reply, answer)
        if why:
            blocks.append("为什么：\n" + "\n".join(f"· {line}" for line in why))
        if steps:
            more = len(reply.steps) - len(steps)
            tail = f"\n（还有 {more} 步，回复“详细”查看）" if more else ""
            blocks.append(_numbered("怎么办：", steps) + tail)
        if related:
            blocks.append(_related_block(related))
        blocks.append("\n".join(menu))
        if reply.footer:
            blocks.append(reply.footer)
        return "\n\n".join(blocks)

    text = build()
    while utf8_len(text) > limit:
        if note and utf8_len(note) > SHORT_NOTE_BYTES:
            note = shorten(note, SHORT_NOTE_BYTES)
        elif len(why) > 1:
            why.pop()
        elif len(steps) > 2:
            steps.pop()
        elif len(related) > 1:
            related.pop()
        elif len(answer) > SHORT_ANSWER_MIN:
            answer = shorten(answer, max(SHORT_ANSWER_MIN, utf8_len(answer) - (utf8_len(text) - limit)))
        elif steps:
            steps.pop()
        elif related:
            related.pop()
        elif why:
            why.pop()
        else:
            return cut_bytes(text, limit), ()
        text = build()
    return text, tuple(related)


def render_full(reply: Reply) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Everything of a reply (for "详细"), before paging, and the related topics it numbers."""
    related = list(reply.related[:SHORT_RELATED])
    blocks = _head(reply, reply.answer)
    if reply.why:
        blocks.append("为什么：\n" + "\n".join(f"· {line}" for line in reply.why))
    if reply.also:
        blocks.append(reply.also)
    if reply.steps:
        blocks.append(_numbered("怎么办：", list(reply.steps)))
    if reply.channels:
        blocks.append("官方渠道：\n" + "\n".join(f"· {c}" for c in reply.channels))
    if reply.sources:
        blocks.append("依据：" + "；".join(reply.sources))
    if reply.details and reply.details != reply.answer:
        blocks.append("详细说明：\n" + reply.details)
    if related:
        blocks.append(_related_block(related))
    if reply.footer:
        blocks.append(reply.footer)
    return "\n\n".join(blocks), tuple(related)


def _page_tail(number: int, total: int) -> str:
    if number < total:
        return f"\n\n（第 {number}/{total} 页，回复“继续”看下一页）"
    return f"\n\n（第 {number}/{total} 页，完）"


_TAIL_RESERVE = utf8_len(_page_tail(99, 999))


def paginate(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """``text`` as pages of at most ``limit`` bytes each, page marks included; paragraphs, then lines,
    then characters are kept whole where they fit."""
    if utf8_len(text) <= limit:
        return [text]
    room = limit - _TAIL_RESERVE
    pages: list[str] = []
    current = ""

    def add(piece: str, sep: str) -> None:
        nonlocal current
        candidate = f"{current}{sep}{piece}" if current else piece
        if utf8_len(candidate) <= room:
            current = candidate
            return
        if current:
            pages.append(current)
            current = ""
        while utf8_len(piece) > room:  # one line longer than a page: cut between characters
            head = cut_bytes(piece, room, "")
            pages.append(head)
            piece = piece[len(head) :]
        current = piece

    for paragraph in text.split("\n\n"):
        if utf8_len(paragraph) <= room:
            add(paragraph, "\n\n")
            continue
        for i, line in enumerate(paragraph.split("\n")):
            add(line, "\n\n" if i == 0 else "\n")
    if current:
        pages.append(current)
    return [page + _page_tail(i, len(pages)) for i, page in enumerate(pages, 1)]


def command_of(text: str) -> str:
    """A message as a menu word: full-width folded, "回复" and trailing punctuation dropped, no spaces."""
    folded = unicodedata.normalize("NFKC", text).strip()
    folded = _COMMAND_TRAILING.sub("", _COMMAND_PREFIX.sub("", folded))
    folded = re.sub(r"\s+", "", folded)
    return folded.strip("“”\"'「」").lower()


# --- the channel: message fields -> reply text -------------------------------------------------------------


@dataclass
class _UserState:
    """What the last reply to one user offered: knowledge text, a case id, and pages (which may quote the
    user's message, so they expire with RAW_TEXT_TTL_MINUTES)."""

    at: float
    case_id: int | None = None
    related: tuple[tuple[str, str], ...] = ()
    topic_id: str | None = None  # the last reply answered this topic ("详细" then means the topic)
    pages: list[str] = field(default_factory=list)
    pages_at: float = 0.0
    pending: Future[str | None] | None = None  # an answer that missed the deadline ("结果")
    pending_at: float = 0.0
    command_times: deque[float] = field(default_factory=deque)
    throttle_noticed: float = -1.0
    lock: threading.Lock = field(default_factory=threading.Lock)  # one message of a user at a time


def image_support(service: Service) -> bool:
    """Screenshots are read when the service offers ``handle_image`` and bot.ocr finds the OCR extra."""
    if not hasattr(service, "handle_image"):
        return False
    try:
        if importlib.util.find_spec("bot.ocr") is None:
            return False
        ocr = importlib.import_module("bot.ocr")
    except ImportError:
        return False
    available = getattr(ocr, "ocr_available", None)
    try:
        return bool(available()) if callable(available) else False
    except Exception:
        return False


def _image_url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme in ("http", "https") and any(host == h or host.endswith("." + h) for h in IMAGE_HOSTS)


class _CheckedRedirect(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to WeChat's image hosts."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not _image_url_allowed(newurl):
            return None  # urllib then raises HTTPError: no request leaves for another host
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_IMAGE_OPENER = urllib.request.build_opener(_CheckedRedirect)


def download_image(url: str) -> bytes | None:
    """The picture behind a PicUrl (WeChat's image hosts only, size- and time-limited); None on failure."""
    if not _image_url_allowed(url):
        log.warning("wechat: PicUrl host not allowed")
        return None
    try:
        with _IMAGE_OPENER.open(url, timeout=IMAGE_TIMEOUT) as response:
            data: bytes = response.read(IMAGE_MAX_BYTES + 1)
    except (OSError, ValueError) as exc:
        log.warning("wechat: image download failed (%s)", type(exc).__name__)
        return None
    if len(data) > IMAGE_MAX_BYTES:
        log.warning("wechat: image larger than %d bytes", IMAGE_MAX_BYTES)
        return None
    return data


class WeChatChannel:
    """One message's fields -> the reply text (None: no reply). Thread-safe; one user's messages are
    answered one at a time.

    Messages go through the service, which limits each user to ``USER_RATE_LIMIT`` per minute. Menu words
    ("详细" after a topic, "继续", "1", "有用", "投诉", "删除我的记录"…) never reach the analysis; they have their
    own allowance of ``COMMAND_RATE_FACTOR`` times that, so paging through a long answer is not throttled
    but a flood of them (feedback writes, deletions) is."""

    def __init__(self, service: Service, settings: Settings, *, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self._rate_limit = settings.USER_RATE_LIMIT * COMMAND_RATE_FACTOR
        self._ttl = settings.RAW_TEXT_TTL_MINUTES * 60.0
        self._clock = clock
        self._users: OrderedDict[str, _UserState] = OrderedDict()
        self._lock = threading.Lock()
        self.images = image_support(service)

    # -- state --

    def state(self, user: str) -> _UserState:
        now = self._clock()
        with self._lock:
            st = self._users.get(user)
            if st is None:
                st = self._users[user] = _UserState(now)
            st.at = now
            self._users.move_to_end(user)
            while len(self._users) > USER_STATE_SIZE:
                self._users.popitem(last=False)
            if st.pages and now - st.pages_at > self._ttl:
                st.pages = []
            if st.pending is not None and st.pending.done() and now - st.pending_at > self._ttl:
                st.pending = None
            return st

    def forget(self, user: str) -> None:
        with self._lock:
            self._users.pop(user, None)

    def hold(self, user: str, pending: Future[str | None]) -> None:
        """``pending`` missed the reply deadline; "结果" will give it."""
        st = self.state(user)
        st.pending, st.pending_at = pending, self._clock()

    def sweep(self) -> None:
        """Drop pages and answers past RAW_TEXT_TTL_MINUTES, and users idle for a day."""
        now = self._clock()
        with self._lock:
            for st in self._users.values():
                if st.pages and now - st.pages_at > self._ttl:
                    st.pages = []
                if st.pending is not None and st.pending.done() and now - st.pending_at > self._ttl:
                    st.pending = None
            while self._users and now - next(iter(self._users.values())).at > USER_STATE_IDLE_SECONDS:
                self._users.popitem(last=False)

    @property
    def raw_text_ttl(self) -> float:
        return self._ttl

    def _command_allowed(self, st: _UserState) -> str:
        """ "ok", "notify" (first over the limit in this window) or "drop"."""
        now = self._clock()
        times = st.command_times
        while times and now - times[0] >= RATE_WINDOW_SECONDS:
            times.popleft()
        if len(times) < self._rate_limit:
            times.append(now)
            return "ok"
        if st.throttle_noticed == times[0]:
            return "drop"
        st.throttle_noticed = times[0]
        return "notify"

    # -- answering --

    def answer(self, msg: Mapping[str, str]) -> str | None:
        user = msg.get("FromUserName", "")
        try:
            st = self.state(user)
            with st.lock:
                return self._answer(user, st, msg)
        except Exception:
            log.exception("wechat: answering a %s message failed", msg.get("MsgType", "?"))
            return SORRY

    def _answer(self, user: str, st: _UserState, msg: Mapping[str, str]) -> str | None:
        kind = msg.get("MsgType", "").lower()
        if kind == "event":
            event = msg.get("Event", "").lower()
            return WELCOME if event == "subscribe" else None
        if kind == "text":
            return self._on_text(user, st, msg.get("Content", ""), msg.get("MsgId"))
        if kind == "image" and self.images:
            return self._on_image(user, st, msg)
        return MEDIA_HELP.get(kind, MEDIA_OTHER) + "\n\n" + MEDIA_HOW

    def _on_text(self, user: str, st: _UserState, text: str, msg_id: str | None) -> str | None:
        word = command_of(text) if len(text) <= 40 else ""
        handler = self._command(word, st)
        if handler is not None:
            allowed = self._command_allowed(st)
            if allowed != "ok":
                return THROTTLED_NOTICE if allowed == "notify" else None
            return handler(user, st)
        if word in DETAILS_WORDS:  # "回复 详细" about the last analysed message: the service keeps it
            out = self.service.handle(Incoming(CHANNEL, user, user, word, msg_id))
            if out is None:
                return None
            if out.analysis is None:
                return self._pages(st, out.text)
            full, related = render_full(out.analysis.reply)
            st.related = related
            return self._pages(st, full)
        out = self.service.handle(Incoming(CHANNEL, user, user, text, msg_id))
        return self._on_outgoing(st, out)

    def _command(self, word: str, st: _UserState) -> Callable[[str, _UserState], str | None] | None:
        if word in DETAILS_WORDS and st.topic_id is not None:
            return self._topic_details
        if word in MORE_WORDS:
            return self._more
        if word in HELP_WORDS:
            return lambda _user, _st: HELP
        if word in RESULT_WORDS:
            return self._result
        if word in FORGET_WORDS:
            return self._forget
        if word in FEEDBACK_WORDS:
            helpful = FEEDBACK_WORDS[word]
            return lambda _user, s: self._feedback(s, helpful)
        if _TOPIC_NUMBER.match(word):
            number = int(word)
            return lambda _user, s: self._topic(s, number)
        complaint = _COMPLAINT.match(word)
        if complaint:
            which = complaint.group(1)
            return lambda u, s: self._complaint(u, s, which)
        return None

    def _on_outgoing(self, st: _UserState, out: Outgoing | None, note: str | None = None) -> str | None:
        if out is None:
            return None  # throttled: logged, deliberately not answered
        if out.reply is None or out.analysis is None:
            return self._pages(st, out.text)
        feedback = out.case_id is not None
        complaint = out.analysis.verdict in COMPLAINT_VERDICTS
        text, related = render_short(out.reply, feedback=feedback, complaint=complaint, note=note)
        st.case_id, st.related, st.topic_id, st.pages = out.case_id, related, None, []
        return text

    def _pages(self, st: _UserState, text: str) -> str:
        pages = paginate(text)
        st.pages, st.pages_at = pages[1:], self._clock()
        return pages[0]

    def _more(self, _user: str, st: _UserState) -> str:
        if not st.pages:
            return NO_MORE_PAGES
        return st.pages.pop(0)

    def _result(self, _user: str, st: _UserState) -> str | None:
        pending = st.pending
        if pending is None:
            return RESULT_NONE
        if not pending.done():
            return RESULT_WAIT
        st.pending = None
        try:
            return pending.result()
        except Exception:
            return SORRY

    def _topic(self, st: _UserState, number: int) -> str:
        if not 1 <= number <= len(st.related):
            return NO_RELATED
        topic_id = st.related[number - 1][0]
        out = self.service.answer_topic(topic_id)
        if out is None or out.reply is None:
            return TOPIC_GONE
        text, related = render_short(out.reply, feedback=False, complaint=False)
        st.related, st.topic_id, st.pages = related, topic_id, []
        return text

    def _topic_details(self, _user: str, st: _UserState) -> str:
        out = self.service.answer_topic(st.topic_id or "")
        if out is None or out.reply is None:
            return TOPIC_GONE
        full, related = render_full(out.reply)
        st.related = related
        return self._pages(st, full)

    def _feedback(self, st: _UserState, helpful: bool) -> str:
        if st.case_id is None:
            return NO_CASE
        if not self.service.record_feedback(st.case_id, helpful):
            return FEEDBACK_GONE
        return FEEDBACK_THANKS[helpful]

    def _complaint(self, user: str, st: _UserState, which: str) -> str:
        drafts = self.service.complaint_drafts(user)
        if drafts is None:
            return NO_DRAFT_MEMORY
        if not drafts:
            return NO_DRAFT_FITS
        index = int(which) - 1 if which.isdigit() and 0 < int(which) <= len(drafts) else None
        if index is None and which:  # "投诉12378": a channel id
            index = next((i for i, d in enumerate(drafts) if d.channel == which), None)
        index = index or 0
        draft = drafts[index]
        others = [f"回复“投诉{i}”：{d.name}" for i, d in enumerate(drafts, 1) if i != index + 1]
        to = "" if draft.body.startswith(draft.to) else f"发给：{draft.to}\n"
        text = (
            f"投诉材料 {index + 1}/{len(drafts)}：{draft.name}\n"
            f"{to}主题：{draft.subject}\n\n{draft.body}"
            + ("\n\n其他材料：\n" + "\n".join(others) if others else "")
            + "\n\n【】里的内容请自己填写；提交前核对一遍。材料由程序自动生成，不构成法律意见。"
        )
        st.topic_id = None
        return self._pages(st, text)

    def _forget(self, user: str, _st: _UserState) -> str:
        count = self.service.forget_user(user, user)
        self.forget(user)
        return FORGOTTEN.format(count=count)

    def _on_image(self, user: str, st: _UserState, msg: Mapping[str, str]) -> str | None:
        incoming = Incoming(CHANNEL, user, user, "", msg.get("MsgId"))
        admitted, out = self.service.admit_image(incoming)  # a flood of pictures costs no downloads
        if admitted:
            data = download_image(msg.get("PicUrl", ""))
            if data is None:
                return IMAGE_FAILED + "\n\n" + MEDIA_HOW
            handle_image = getattr(self.service, "handle_image")  # noqa: B009 (optional, checked at start)
            out = handle_image(incoming, data, admitted=True)
        return self._on_outgoing(st, out, getattr(out, "read_text", None))


# --- the endpoint: HTTP-free request handling ----------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


SUCCESS = Response(200, b"success")  # WeChat: nothing to say, do not retry


@dataclass
class _Cached:
    future: Future[str | None]
    user: str
    at: float
    answer: str | None = None  # the reply XML (plain) once answered, or "" for "success"


class WeChatEndpoint:
    """Query and body in, status and body out: signatures, 安全模式, de-duplication, reply XML."""

    def __init__(
        self,
        config: WeChatConfig,
        channel: WeChatChannel,
        *,
        deadline: float = REPLY_DEADLINE,
        workers: int = ANSWER_WORKERS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.channel = channel
        self.deadline = deadline
        self._clock = clock
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="wechat-answer")
        self._cache: OrderedDict[tuple[str, ...], _Cached] = OrderedDict()
        self._cache_seconds = min(REPLY_CACHE_SECONDS, channel.raw_text_ttl)
        self._lock = threading.Lock()
        self._crypto: Any = None
        if config.aes_key:
            from wechatpy.crypto import PrpCrypto

            self._crypto = PrpCrypto(_aes_bytes(config.aes_key))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- GET: URL verification --

    def verify_url(self, query: Mapping[str, str]) -> Response:
        self._check_signature(query)
        echostr = query.get("echostr")
        if echostr is None:
            raise Refused(400, "URL verification without echostr")
        return Response(200, echostr.encode())

    def _check_signature(self, query: Mapping[str, str]) -> None:
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not signature_ok(query.get("signature"), self.config.token, timestamp, nonce):
            raise Refused(403, "bad signature" if query.get("signature") else "missing signature")

    # -- POST: messages --

    def receive(self, query: Mapping[str, str], body: bytes) -> Response:
        started = self._clock()
        self._check_signature(query)
        encrypted = query.get("encrypt_type", "raw").lower()
        if encrypted not in ("raw", "aes"):
            raise Refused(400, "unknown encrypt_type")
        msg = self._decrypt(query, parse_xml(body)) if encrypted == "aes" else parse_xml(body)
        for name in ("ToUserName", "FromUserName", "MsgType"):
            if not msg.get(name):
                raise Refused(400, f"message without {name}")
        answer = self._answer_once(msg, started)
        if not answer:
            return SUCCESS
        if encrypted == "aes":
            answer = self._encrypt(answer, query.get("nonce", ""))
        return Response(200, answer.encode(), "application/xml; charset=utf-8")

    def _decrypt(self, query: Mapping[str, str], outer: Mapping[str, str]) -> dict[str, str]:
        if self._crypto is None:
            raise Refused(400, "encrypted message but WECHAT_AES_KEY is not set (安全模式 needs it)")
        encrypt = outer.get("Encrypt", "")
        if not encrypt:
            raise Refused(400, "encrypted message without Encrypt")
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not signature_ok(query.get("msg_signature"), self.config.token, timestamp, nonce, encrypt):
            raise Refused(403, "bad msg_signature")
        from wechatpy.exceptions import InvalidAppIdException

        try:
            inner: str = self._crypto.decrypt(encrypt, self.config.app_id)
        except InvalidAppIdException:
            raise Refused(400, "encrypted for another app id (check WECHAT_APP_ID)") from None
        except Exception as exc:  # garbage in a correctly signed envelope: base64, padding, UTF-8…
            raise Refused(400, f"cannot decrypt ({type(exc).__name__})") from None
        return parse_xml(inner.encode("utf-8"))

    def _encrypt(self, plain_xml: str, nonce: str) -> str:
        timestamp = str(int(time.time()))
        encrypt = self._crypto.encrypt(plain_xml, self.config.app_id).decode()
        signature = sign(self.config.token, timestamp, nonce, encrypt)
        return (
            "<xml>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt>"
            f"<MsgSignature>{cdata(signature)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce>{cdata(nonce)}</Nonce>"
            "</xml>"
        )

    @staticmethod
    def _key(msg: Mapping[str, str]) -> tuple[str, ...]:
        """WeChat's advice: MsgId for messages, FromUserName + CreateTime for events."""
        user = msg["FromUserName"]
        if msg.get("MsgId"):
            return (user, "msg", msg["MsgId"])
        return (user, "at", msg.get("CreateTime", ""), msg["MsgType"], msg.get("Event", ""))

    def _answer_once(self, msg: Mapping[str, str], started: float) -> str:
        """The reply XML for this message, "" for none; the same string for every delivery of it."""
        key = self._key(msg)
        now = self._clock()
        with self._lock:
            self._expire(now)
            entry = self._cache.get(key)
            if entry is None:
                entry = _Cached(self._pool.submit(self.channel.answer, dict(msg)), msg["FromUserName"], now)
                self._cache[key] = entry
        late = False
        try:
            content = entry.future.result(timeout=max(0.0, self.deadline - (self._clock() - started)))
        except FutureTimeout:
            content, late = HOLDING, True
        except Exception:  # the channel answers SORRY itself; this is a last resort
            log.exception("wechat: answer failed")
            content = SORRY
        with self._lock:
            if entry.answer is None:
                if late:
                    self.channel.hold(entry.user, entry.future)
                    log.warning(
                        "wechat: answer missed the %.1f s deadline; holding reply sent", self.deadline
                    )
                entry.answer = (
                    reply_xml(msg["FromUserName"], msg["ToUserName"], content, int(time.time()))
                    if content
                    else ""
                )
            return entry.answer

    def _expire(self, now: float) -> None:
        while self._cache:
            key, oldest = next(iter(self._cache.items()))
            too_many = len(self._cache) > REPLY_CACHE_SIZE
            if not too_many and now - oldest.at < self._cache_seconds:
                break
            if not oldest.future.done() and not too_many:
                break
            del self._cache[key]

    def sweep(self) -> None:
        with self._lock:
            self._expire(self._clock())
        self.channel.sweep()

    def forget_replies(self, user: str) -> None:
        with self._lock:
            for key in [k for k, v in self._cache.items() if v.user == user and v.future.done()]:
                del self._cache[key]


# --- HTTP ---------------------------------------------------------------------------------------------------


def _query(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    values = parse_qs(parts.query, keep_blank_values=True)
    return parts.path.rstrip("/") or "/", {k: v[0] for k, v in values.items()}


class _Handler(BaseHTTPRequestHandler):
    server: WeChatServer
    protocol_version = "HTTP/1.0"  # one request per connection: no idle connection holds a worker
    server_version = "smsguard"
    sys_version = ""
    timeout = SOCKET_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: request lines carry OpenIDs in their query strings."""

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _refuse(self, refused: Refused) -> None:
        log.warning("wechat: %s %s %s: %s", refused.status, self.command, self._path(), refused.reason)
        self._send(Response(refused.status, f"{refused.status} {refused.reason}\n".encode()))

    def _path(self) -> str:
        return urlsplit(self.path).path[:100]

    def _run(self, work: Callable[[], Response]) -> None:
        try:
            self._send(work())
        except Refused as refused:
            self._refuse(refused)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("wechat: connection problem on %s (%s)", self._path(), type(exc).__name__)
        except Exception:
            log.exception("wechat: request on %s failed", self._path())
            self._send(SUCCESS)  # never a 500 or a traceback; WeChat then shows nothing and does not retry

    def do_GET(self) -> None:
        path, query = _query(self.path)
        if path == HEALTH_PATH:
            self._run(lambda: Response(200, b"ok\n"))
        elif path == WECHAT_PATH:
            self._run(lambda: self.server.endpoint.verify_url(query))
        else:
            self._run(lambda: Response(404, b"not found\n"))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path, query = _query(self.path)
        if path != WECHAT_PATH:
            self._run(lambda: Response(404, b"not found\n"))
            return
        self._run(lambda: self.server.endpoint.receive(query, self._body()))

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise Refused(411 if length is None else 400, "no usable Content-Length")
        size = int(length)
        if size > MAX_BODY_BYTES:
            raise Refused(413, f"body of {size} bytes")
        body = self.rfile.read(size)
        if len(body) < size:
            raise Refused(400, "body shorter than Content-Length")
        return body

    def _not_allowed(self) -> None:
        self._run(lambda: Response(405, b"method not allowed\n"))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class WeChatServer(HTTPServer):
    """HTTPServer answering on a fixed pool of threads (each keeps its SQLite connection)."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoint: WeChatEndpoint, workers: int = HTTP_WORKERS):
        super().__init__(address, _Handler)
        self.endpoint = endpoint
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="wechat-http")

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._process, request, client_address)

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("wechat: a connection failed", exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _ForgettingChannel(WeChatChannel):
    """The channel wired to its endpoint, so "删除我的记录" also drops the cached replies."""

    endpoint: WeChatEndpoint | None = None

    def forget(self, user: str) -> None:
        super().forget(user)
        if self.endpoint is not None:
            self.endpoint.forget_replies(user)


def build_endpoint(config: WeChatConfig, settings: Settings, service: Service) -> WeChatEndpoint:
    channel = _ForgettingChannel(service, settings)
    endpoint = WeChatEndpoint(config, channel)
    channel.endpoint = endpoint
    return endpoint


def run_wechat(config: WeChatConfig, settings: Settings, service: Service, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then finish the requests in progress and return."""
    endpoint = build_endpoint(config, settings, service)
    try:
        server = WeChatServer((host, port), endpoint)
    except OSError as exc:
        endpoint.close()
        raise WeChatStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("wechat: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    preload = getattr(service, "load_screenshot_reader", None)
    if endpoint.channel.images and callable(preload):  # OCR models: loaded now, not on the first screenshot
        threading.Thread(target=preload, name="wechat-ocr-load", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    mode = "安全模式 and plain" if config.aes_key else "plain only (WECHAT_AES_KEY unset)"
    images = "read" if endpoint.channel.images else "not read (no OCR)"
    log.info(
        "wechat: listening on http://%s:%s%s (%s; screenshots %s)",
        bound_host,
        bound_port,
        WECHAT_PATH,
        mode,
        images,
    )
    try:
        with maintenance_jobs(service, settings.RETENTION_DAYS, sighup=True):
            while not stop.wait(SWEEP_SECONDS):
                endpoint.sweep()
    finally:
        server.shutdown()
        server.server_close()
        endpoint.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        log.info("wechat: stopped")

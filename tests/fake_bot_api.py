"""A small fake Telegram Bot API for offline tests.

``FakeBotAPI`` holds the state (queued updates, recorded calls, injected failures) and answers Bot API
methods the way Telegram does, including its checks that matter to us: a message's text must be valid
Telegram HTML when ``parse_mode=HTML`` and at most 4,096 characters. It is served two ways:

* over real HTTP on 127.0.0.1 (``start()``): holds ``getUpdates`` open until an update arrives or its
  ``timeout`` passes, honours ``offset``, accepts form-encoded fields with JSON values (what
  python-telegram-bot sends), JSON bodies and multipart; for end-to-end tests of the real process;
* in process, as a python-telegram-bot request class (``FakeRequest``), for handler tests without a socket.

Files: ``add_file`` stores bytes under a file_id; ``getFile`` answers its ``file_path`` and the file is served
at ``<file_url>/<token>/<file_path>`` (both ways). Uploaded files (``sendDocument``) are recorded as
``{"filename", "content"}`` in the call's parameters.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from telegram.request import BaseRequest, RequestData

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijk"
BOT_ID = 123456789
BOT_USERNAME = "smsguard_test_bot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "SMS Guard", "username": BOT_USERNAME}
MAX_TEXT = 4096
# Fields that python-telegram-bot sends as plain strings (all others are JSON-encoded).
STRING_FIELDS = {
    "text",
    "caption",
    "parse_mode",
    "url",
    "secret_token",
    "callback_query_id",
    "action",
    "file_id",
}
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "tg-spoiler", "span",
             "blockquote", "tg-emoji"}  # fmt: skip
HTML_ENTITIES = {"lt", "gt", "amp", "quot"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int
    result: Any = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    status: int
    methods: frozenset[str] | None
    remaining: int | None
    until: float | None
    retry_after: int


class _HTMLCheck(HTMLParser):
    """Telegram's HTML parse mode: known tags only, balanced, only &lt; &gt; &amp; &quot; and numbers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            self.errors.append(f"unsupported start tag {tag!r}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unmatched end tag {tag!r}")

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            self.errors.append("unescaped < or >")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in HTML_ENTITIES:
            self.errors.append(f"unsupported entity &{name};")
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(html.unescape(f"&#{name};"))


def check_html(text: str) -> tuple[str | None, str]:
    """(error or None, the text a user sees)."""
    parser = _HTMLCheck()
    parser.feed(text)
    parser.close()
    if parser.rawdata:  # something the parser could not consume, like a stray "<"
        parser.errors.append("unparsed trailing data")
    if parser.stack:
        parser.errors.append(f"unclosed tags {parser.stack}")
    return (parser.errors[0] if parser.errors else None), "".join(parser.text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def decode_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as python-telegram-bot sends them: strings raw, everything else JSON."""
    out: dict[str, Any] = {}
    for key, raw in pairs:
        if key in STRING_FIELDS:
            out[key] = raw
            continue
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


class FakeBotAPI:
    def __init__(self, token: str = TOKEN):
        self.token = token
        self.calls: list[Call] = []
        self.webhook: dict[str, Any] | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._failures: list[_Failure] = []
        self._cond = threading.Condition()
        self._closed = False
        self.offsets: list[int] = []
        self.files: dict[str, bytes] = {}  # file_id -> content
        self.downloads: list[str] = []  # file paths fetched, in order
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- test controls --

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (its update_id is assigned here); returns the update_id."""
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
            self._cond.notify_all()
        return update_id

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def add_file(self, file_id: str, content: bytes) -> str:
        """Make ``content`` downloadable as ``file_id`` (what a user's photo or document refers to)."""
        with self._cond:
            self.files[file_id] = content
        return file_id

    def download(self, token: str, file_path: str) -> tuple[int, bytes]:
        """The file download (GET <base_file_url><token>/<file_path>, percent-encoded): (status, body)."""
        token, file_path = unquote(token), unquote(file_path)
        with self._cond:
            self.downloads.append(file_path)
            self._cond.notify_all()
            file_id = file_path.removeprefix("photos/")
            if token != self.token or file_id not in self.files:
                return 404, b'{"ok": false, "error_code": 404, "description": "Not Found"}'
            return 200, self.files[file_id]

    def fail(
        self,
        status: int,
        *,
        methods: set[str] | None = None,
        times: int | None = None,
        seconds: float | None = None,
        retry_after: int = 1,
    ) -> None:
        """Answer ``status`` (429 with retry_after, 500…) to the next ``times`` calls, or for ``seconds``."""
        with self._cond:
            self._failures.append(
                _Failure(
                    status,
                    frozenset(methods) if methods else None,
                    times,
                    time.monotonic() + seconds if seconds is not None else None,
                    retry_after,
                )
            )

    def calls_of(self, method: str, ok_only: bool = True) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Successful sendMessage calls (their parameters plus the new ``message_id``), optionally for one chat."""
        return [
            c.params | {"message_id": c.result["message_id"]}
            for c in self.calls_of("sendMessage")
            if chat_id is None or c.params["chat_id"] == chat_id
        ]

    def wait_for(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self.calls][-30:]
                    raise AssertionError(f"timed out waiting for {what}; last calls: {methods}")
                self._cond.wait(min(left, 0.1))

    # -- the API --

    def _failure_for(self, method: str) -> _Failure | None:
        now = time.monotonic()
        for failure in list(self._failures):
            expired = (failure.remaining is not None and failure.remaining <= 0) or (
                failure.until is not None and now >= failure.until
            )
            if expired:
                self._failures.remove(failure)
                continue
            if failure.methods is None or method in failure.methods:
                if failure.remaining is not None:
                    failure.remaining -= 1
                return failure
        return None

    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One Bot API call (getUpdates does not wait here; see ``get_updates``)."""
        with self._cond:
            status, body = self._answer(token, method, params)
            self.calls.append(Call(method, params, status, body.get("result")))
            self._cond.notify_all()
            return status, body

    def _error(self, token: str, method: str) -> tuple[int, dict[str, Any]] | None:
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        failure = self._failure_for(method)
        if failure is None:
            return None
        body: dict[str, Any] = {"ok": False, "error_code": failure.status}
        if failure.status == 429:
            body["description"] = f"Too Many Requests: retry after {failure.retry_after}"
            body["parameters"] = {"retry_after": failure.retry_after}
        else:
            body["description"] = "Internal Server Error"
        return failure.status, body

    def _answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        error = self._error(token, method)
        if error is not None:
            return error
        handler = getattr(self, f"m_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            return 200, {"ok": True, "result": handler(params)}
        except _BadRequest as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}

    def take_updates(self, offset: int | None) -> list[dict[str, Any]]:
        if offset is not None:
            self.offsets.append(offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones go
        return self._updates[:100]

    def get_updates(self, token: str, params: dict[str, Any], hold: bool) -> tuple[int, dict[str, Any]]:
        """getUpdates: held open until an update is there or ``timeout`` seconds pass (when ``hold``)."""
        with self._cond:
            error = self._error(token, "getUpdates")
            if error is not None:
                self.calls.append(Call("getUpdates", params, error[0]))
                self._cond.notify_all()
                return error
            call = Call("getUpdates", params, 200)  # recorded at once: a held poll shows the bot is polling
            self.calls.append(call)
            self._cond.notify_all()
            deadline = time.monotonic() + float(params.get("timeout") or 0)
            while True:
                updates = self.take_updates(params.get("offset"))
                left = deadline - time.monotonic()
                if updates or not hold or left <= 0 or self._closed:
                    break
                self._cond.wait(min(left, 0.2))
            call.result = updates
            self._cond.notify_all()
            return 200, {"ok": True, "result": updates}

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": BOT_USER,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message | extra

    def _check_text(self, text: Any, parse_mode: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            raise _BadRequest("message text is empty")
        plain = text
        if parse_mode == "HTML":
            error, plain = check_html(text)
            if error:
                raise _BadRequest(f"can't parse entities: {error}")
        if utf16_len(plain) > MAX_TEXT:
            raise _BadRequest("message is too long")

    # Method names are Telegram's.
    def m_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER | {"can_join_groups": True, "can_read_all_group_messages": False}

    def m_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    def m_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    def m_setMyCommands(self, params: dict[str, Any]) -> Any:
        return True

    def m_sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    def m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    def m_sendMessage(self, params: dict[str, Any]) -> Any:
        self._check_text(params.get("text"), params.get("parse_mode"))
        return self._message(params, text=params["text"])

    def m_editMessageText(self, params: dict[str, Any]) -> Any:
        self._check_text(params.get("text"), params.get("parse_mode"))
        return self._message(params, text=params["text"], message_id=int(params["message_id"]))

    def m_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        return self._message(params, message_id=int(params["message_id"]))

    def m_sendDocument(self, params: dict[str, Any]) -> Any:
        document = params.get("document")
        if not isinstance(document, dict) or not document.get("content"):
            raise _BadRequest("there is no document in the request")
        if params.get("caption") is not None:
            self._check_text(params["caption"], params.get("parse_mode"))
        doc = {"file_id": "doc1", "file_unique_id": "u1", "file_name": document.get("filename") or "file"}
        return self._message(params, document=doc)

    def m_getFile(self, params: dict[str, Any]) -> Any:
        file_id = params.get("file_id")
        if file_id not in self.files:
            raise _BadRequest("invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"photos/{file_id}",
        }

    # -- HTTP --

    def start(self) -> str:
        """Serve on 127.0.0.1 (a free port); returns the base URL to give as TELEGRAM_BASE_URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle and delayed ACKs add ~40 ms to every call

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a cancelled long poll at shutdown)

            def do_GET(self) -> None:
                match = re.fullmatch(r"/file/bot([^/]+)/(.+)", self.path)
                if match:
                    status, body = api.download(match[1], match[2])
                    self._reply(
                        status, body, "application/octet-stream" if status == 200 else "application/json"
                    )
                else:
                    self._reply(404, b'{"ok": false, "error_code": 404, "description": "Not Found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                match = re.fullmatch(r"/bot([^/]+)/(\w+)", self.path.split("?")[0])
                if not match:
                    self._reply(404, b'{"ok": false, "error_code": 404, "description": "Not Found"}')
                    return
                token, method = match[1], match[2]
                params = parse_body(self.headers.get("Content-Type", ""), raw)
                query = urlsplit(self.path).query
                if query:  # the Bot API takes fields in the query string as well as in the body
                    params = decode_fields(parse_qsl(query, keep_blank_values=True)) | params
                if method == "getUpdates":
                    status, body = api.get_updates(token, params, hold=True)
                else:
                    status, body = api.answer(token, method, params)
                self._reply(status, json.dumps(body, ensure_ascii=False).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-bot-api", daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    @property
    def file_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/file/bot"

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class _BadRequest(Exception):
    pass


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        return json.loads(raw or b"{}")
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        pairs = []
        files = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            if part.get_filename() is None:
                pairs.append((name, part.get_content()))
            else:
                files[name] = {"filename": part.get_filename(), "content": part.get_payload(decode=True)}
        fields = decode_fields(pairs)
        # python-telegram-bot names an upload by a random part name and refers to it as "attach://<name>"
        for key, value in list(fields.items()):
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                fields[key] = files.pop(value[9:])
        return fields | files
    return decode_fields(parse_qsl(raw.decode(), keep_blank_values=True))


class FakeRequest(BaseRequest):
    """python-telegram-bot's request class, answered in process by a ``FakeBotAPI`` (no socket)."""

    def __init__(self, api: FakeBotAPI):
        self.api = api

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        download = re.search(r"/file/bot([^/]+)/(.+)$", url)
        if download:
            return self.api.download(download[1], download[2])
        match = re.search(r"/bot([^/]+)/(\w+)$", url)
        assert match, url
        token, endpoint = match[1], match[2]
        # Round-trip through JSON exactly as the HTTP server would see the fields.
        params = decode_fields(list(request_data.json_parameters.items())) if request_data else {}
        if request_data is not None and request_data.contains_files:
            for name, value in request_data.multipart_data.items():
                if isinstance(value, tuple):  # (file name, content, mime type)
                    params[name] = {"filename": value[0], "content": value[1]}
        if endpoint == "getUpdates":
            status, body = self.api.get_updates(token, params, hold=False)
        else:
            status, body = self.api.answer(token, endpoint, params)
        return status, json.dumps(body).encode()


# --- updates as Telegram sends them ----------------------------------------------------------------------

_dates = itertools.count(1_790_000_000)


def user(user_id: int, name: str = "用户") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name}


def chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": "群"}


_message_ids = itertools.count(1)


def message(chat_id: int, user_id: int, text: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``message`` update body; bot commands and @mentions in ``text`` get their entities."""
    msg: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": next(_dates),
        "chat": chat(chat_id),
        "from": user(user_id),
    }
    if text is not None:
        msg["text"] = text
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        for m in re.finditer(r"@\w+", text):
            entities.append(
                {"type": "mention", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
            )
        if entities:
            msg["entities"] = entities
    msg.update(extra)
    return {"message": msg}


def forwarded(chat_id: int, user_id: int, text: str, origin_date: int) -> dict[str, Any]:
    return message(
        chat_id,
        user_id,
        text,
        forward_origin={"type": "hidden_user", "sender_user_name": "某催收员", "date": origin_date},
    )


def sticker(chat_id: int, user_id: int) -> dict[str, Any]:
    return message(
        chat_id,
        user_id,
        sticker={"file_id": "stk", "file_unique_id": "stku", "type": "regular", "width": 512, "height": 512,
                 "is_animated": False, "is_video": False},
    )  # fmt: skip


def callback(chat_id: int, user_id: int, data: str, reply: dict[str, Any]) -> dict[str, Any]:
    """A button press on ``reply`` (a message the bot sent, as recorded by the fake)."""
    return {
        "callback_query": {
            "id": f"cb{next(_dates)}",
            "from": user(user_id),
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": reply.get("message_id", 1),
                "date": next(_dates),
                "chat": chat(chat_id),
                "from": BOT_USER,
                "text": "…",
                "reply_markup": reply.get("reply_markup"),
            },
        }
    }


def buttons(params: dict[str, Any]) -> list[str]:
    """callback_data of every inline button of a sent message."""
    markup = params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]

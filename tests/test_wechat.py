"""The WeChat Official Account channel: ``python -m bot wechat`` as a real process on 127.0.0.1.

Requests are signed (and, in 安全模式, encrypted) here in the tests, following WeChat's documented scheme
with our own AES code rather than the library the server uses. One server process (both modes) serves the
module; a second, plain-only one checks the refusal of encrypted messages and a clean stop on SIGINT.
The last part tests the reply layout, paging and the reply deadline in-process.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import signal
import sqlite3
import string
import struct
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import bot.adapters.wechat as wechat
from bot.adapters.wechat import (
    CONTENT_LIMIT,
    HOLDING,
    WeChatChannel,
    WeChatConfig,
    WeChatEndpoint,
    command_of,
    paginate,
    render_short,
    reply_xml,
)
from bot.core import Reply
from bot.service import THROTTLED_NOTICE, Incoming, Outgoing, Service
from bot.settings import Settings
from bot.store import CaseStore, keyed_hash
from tests.helpers import CONSOLE_MESSAGES, BotChild, child_env, run_cli, verdict_cases

TOKEN = "smsguardTestToken42"
APP_ID = "wx0123456789abcdef"
ACCOUNT = "gh_0123456789ab"
SECRET = "wechat-user-hash-secret-0123456789"
AES_KEY = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
THREAT = "尊敬的张伟先生，你已逾期90天，再不还款就爆你通讯录，通知你家人和单位，联系催收员13812345678"
SCAM = "【XX法院】你涉嫌恶意逾期已被立案，请于今日内将欠款转入指定安全账户，否则冻结你名下银行卡。"


# --- WeChat's side: signatures, XML, 安全模式 (independent of the server's code) ---------------------------


def sha1_sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed(token: str = TOKEN, **extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
    return {"signature": sha1_sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce} | extra


def message_xml(openid: str, msg_type: str = "text", msg_id: int | None = None, **fields: str) -> bytes:
    parts = [
        f"<ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>",
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>",
        *(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()),
    ]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return ("<xml>" + "".join(parts) + "</xml>").encode()


def _aes(key: str) -> tuple[bytes, bytes]:
    raw = base64.b64decode(key + "=")
    return raw, raw[:16]


def wx_encrypt(plain: bytes, key: str = AES_KEY, app_id: str = APP_ID) -> str:
    """WeChat's scheme: random(16) + length(4, network order) + message + app id, PKCS#7 to 32, AES-256-CBC."""
    data = os.urandom(16) + struct.pack(">I", len(plain)) + plain + app_id.encode()
    pad = 32 - len(data) % 32
    data += bytes([pad]) * pad
    raw, iv = _aes(key)
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def wx_decrypt(encrypted: str, key: str = AES_KEY) -> tuple[bytes, str]:
    raw, iv = _aes(key)
    decryptor = Cipher(algorithms.AES(raw), modes.CBC(iv)).decryptor()
    data = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    data = data[: -data[-1]]
    (length,) = struct.unpack(">I", data[16:20])
    return data[20 : 20 + length], data[20 + length :].decode()


def encrypted_request(plain: bytes, token: str = TOKEN) -> tuple[dict[str, str], bytes]:
    encrypt = wx_encrypt(plain)
    query = signed(token, encrypt_type="aes")
    query["msg_signature"] = sha1_sign(token, query["timestamp"], query["nonce"], encrypt)
    body = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    return query, body.encode()


def fields_of(xml: bytes) -> dict[str, str]:
    root = ET.fromstring(xml)
    assert root.tag == "xml"
    return {child.tag: child.text or "" for child in root}


# --- the server process --------------------------------------------------------------------------------------


class WeChatProcess(BotChild):
    def __init__(self, tmp: Path, **env: str):
        self.db = tmp / "cases.db"
        full_env = (
            child_env()
            | {
                "SMSGUARD_DB": str(self.db),
                "SMSGUARD_SECRET": SECRET,
                "USER_RATE_LIMIT": "10",
                "WECHAT_TOKEN": TOKEN,
            }
            | env
        )
        super().__init__(tmp, ["wechat", "--host", "127.0.0.1", "--port", "0"], full_env)
        deadline = time.monotonic() + 60
        while not (found := re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.stderr)):
            assert self.proc.poll() is None, self.stderr
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        self.base = found.group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        return super().stop(sig, timeout)

    def request(
        self, method: str, path: str, query: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, bytes]:
        url = self.base + path + ("?" + urlencode(query) if query else "")
        req = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, body: bytes, query: dict[str, str] | None = None) -> tuple[int, bytes]:
        return self.request("POST", "/wechat", signed() if query is None else query, body)

    def send(self, openid: str, text: str, msg_id: int | None = None) -> str:
        """A text message; the reply's Content ("" for "success"), checked to be addressed to the sender."""
        msg_id = msg_id if msg_id is not None else secrets.randbits(62)
        status, body = self.post(message_xml(openid, Content=text, msg_id=msg_id))
        assert status == 200, body
        if body == b"success":
            return ""
        reply = fields_of(body)
        assert reply["ToUserName"] == openid and reply["FromUserName"] == ACCOUNT, reply
        assert reply["MsgType"] == "text"
        assert len(reply["Content"].encode()) <= CONTENT_LIMIT
        return reply["Content"]

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, params).fetchall()

    def cases_of(self, openid: str) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT id, verdict, feedback, throttled FROM cases WHERE user_hash = ? ORDER BY id",
            (keyed_hash(SECRET.encode(), openid),),
        )

    def count(self) -> int:
        return self.rows("SELECT count(*) FROM cases")[0][0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeChatProcess]:
    process = WeChatProcess(tmp_path_factory.mktemp("wechat"), WECHAT_APP_ID=APP_ID, WECHAT_AES_KEY=AES_KEY)
    try:
        yield process
    finally:
        assert process.stop() == 0, process.stderr  # SIGTERM: a clean stop
        assert "wechat: stopped" in process.stderr


def openid() -> str:
    return "o" + secrets.token_urlsafe(20)


# --- the process ---------------------------------------------------------------------------------------------


def test_health_and_unknown_paths(server):
    assert server.request("GET", "/healthz") == (200, b"ok\n")
    assert server.request("GET", "/nothing")[0] == 404
    assert server.request("POST", "/nothing", body=b"<xml/>")[0] == 404
    assert server.request("PUT", "/wechat", body=b"x")[0] == 405


def test_url_verification(server):
    assert server.request("GET", "/wechat", signed(echostr="4711abc")) == (200, b"4711abc")
    forged = signed(echostr="4711abc") | {"signature": "0" * 40}
    assert server.request("GET", "/wechat", forged)[0] == 403
    assert server.request("GET", "/wechat", signed("another-token", echostr="x"))[0] == 403
    assert server.request("GET", "/wechat", {"echostr": "x"})[0] == 403


def test_text_message_gets_a_passive_reply_to_the_sender(server):
    user = openid()
    content = server.send(user, THREAT)
    assert content.startswith("⛔ 判断：违法催收")
    assert "“爆你通讯录”" in content  # the evidence, quoted
    assert "怎么办：\n1. " in content and "你是不是想问（回复数字）：\n1. " in content
    for word in ("回复“详细”", "回复“投诉”", "回复“有用”或“没用”", "不构成法律意见"):
        assert word in content
    assert server.cases_of(user) == [(server.cases_of(user)[0][0], "illegal_collection", None, 0)]
    (text,) = server.rows("SELECT text FROM cases WHERE id = ?", (server.cases_of(user)[0][0],))[0]
    assert (
        "爆你通讯录" in text and "13812345678" not in text and "张伟" not in text
    )  # redacted before writing
    assert user.encode() not in server.db.read_bytes()  # only the keyed hash of the OpenID


def test_a_question_leads_with_the_answer(server):
    content = server.send(openid(), "上门催收合法吗")
    assert not content.startswith(("⛔", "⚠️", "🚫")) and "上门" in content.split("\n")[0]
    assert "回复“有用”" in content and "回复“投诉”" not in content


def test_retries_of_one_msgid_get_identical_replies_and_make_one_case(server):
    user = openid()
    body = message_xml(user, Content=SCAM, msg_id=880000001)
    query = signed()
    first = server.post(body, query)
    again = [server.post(body, signed()) for _ in range(2)]
    results: list[tuple[int, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(server.post(body, signed()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first[0] == 200 and "疑似诈骗" in fields_of(first[1])["Content"]
    assert all(r == first for r in [*again, *results])  # byte-identical, CreateTime included
    assert len(server.cases_of(user)) == 1


def test_encrypted_mode(server):
    user = openid()
    plain = message_xml(user, Content=THREAT, msg_id=880000002)
    query, body = encrypted_request(plain)
    status, answer = server.post(body, query)
    assert status == 200
    envelope = fields_of(answer)
    assert envelope["Nonce"] == query["nonce"]
    assert envelope["MsgSignature"] == sha1_sign(
        TOKEN, envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"]
    )
    inner, app_id = wx_decrypt(envelope["Encrypt"])
    assert app_id == APP_ID
    reply = fields_of(inner)
    assert (reply["ToUserName"], reply["FromUserName"], reply["MsgType"]) == (user, ACCOUNT, "text")
    assert (
        reply["Content"].startswith("⛔ 判断：违法催收") and len(reply["Content"].encode()) <= CONTENT_LIMIT
    )
    retry_query, retry_body = encrypted_request(plain)  # WeChat's retry: new nonce, same message
    inner_again, _ = wx_decrypt(fields_of(server.post(retry_body, retry_query)[1])["Encrypt"])
    assert inner_again == inner
    assert len(server.cases_of(user)) == 1


def test_forged_requests_get_403_and_make_no_case(server):
    before = server.count()
    body = message_xml(openid(), Content=THREAT, msg_id=880000003)
    assert server.post(body, signed() | {"signature": "f" * 40})[0] == 403
    assert server.post(body, signed("wrongToken"))[0] == 403
    assert server.post(body, {})[0] == 403
    query, encrypted = encrypted_request(body)
    assert server.post(encrypted, query | {"msg_signature": "0" * 40})[0] == 403
    query, encrypted = encrypted_request(body, token="wrongToken")
    assert server.post(encrypted, query)[0] == 403
    assert server.count() == before
    assert len(re.findall(r"WARNING bot\.adapters\.wechat: wechat: 403 POST /wechat", server.stderr)) >= 5


MALFORMED = [
    b"this is not xml",
    b"<xml><ToUserName><![CDATA[gh_x]]></ToUserName>",
    b"<message><MsgType>text</MsgType></message>",
    b"<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><Content>hi</Content></xml>",
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml>&lol2;</xml>',
    b"\xff\xfe\x00<xml>",
    b"",
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_xml_gets_400_and_makes_no_case(server, body):
    before = server.count()
    status, answer = server.post(body)
    assert status == 400 and b"Traceback" not in answer
    assert server.count() == before


def test_malformed_encrypted_messages_get_400(server):
    before = server.count()
    garbage = base64.b64encode(b"not a multiple of the block size").decode()
    for encrypt in (garbage, "!!not base64!!", wx_encrypt(b"<xml>unclosed")):
        query = signed(encrypt_type="aes")
        query["msg_signature"] = sha1_sign(TOKEN, query["timestamp"], query["nonce"], encrypt)
        body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
        assert server.post(body, query)[0] == 400
    other_app = wx_encrypt(message_xml(openid(), Content="hi", msg_id=1), app_id="wx_other_app")
    query = signed(encrypt_type="aes")
    query["msg_signature"] = sha1_sign(TOKEN, query["timestamp"], query["nonce"], other_app)
    assert server.post(f"<xml><Encrypt>{other_app}</Encrypt></xml>".encode(), query)[0] == 400
    assert server.post(message_xml(openid(), Content="hi", msg_id=2), signed(encrypt_type="rot13"))[0] == 400
    assert server.count() == before
    assert "check WECHAT_APP_ID" in server.stderr


def test_subscribe_gets_a_welcome_and_other_events_nothing(server):
    user = openid()
    status, body = server.post(message_xml(user, "event", Event="subscribe"))
    welcome = fields_of(body)
    assert status == 200 and welcome["ToUserName"] == user and "催收短信鉴别助手" in welcome["Content"]
    assert "删除我的记录" in welcome["Content"] and len(welcome["Content"].encode()) <= CONTENT_LIMIT
    assert server.post(message_xml(user, "event", Event="unsubscribe")) == (200, b"success")
    assert server.cases_of(user) == []


def test_image_and_voice_get_a_helpful_reply(server):
    user = openid()
    for kind, fields, expect in (  # a PicUrl off WeChat's image hosts is never fetched
        ("image", {"PicUrl": "http://127.0.0.1:9/x.jpg", "MediaId": "m1"}, "提取文字"),
        ("voice", {"MediaId": "m2", "Format": "amr"}, "语音"),
        ("location", {"Label": "某地"}, "粘贴"),
    ):
        status, body = server.post(message_xml(user, kind, msg_id=secrets.randbits(60), **fields))
        assert status == 200 and expect in fields_of(body)["Content"]
    assert server.cases_of(user) == []


def test_follow_ups_details_topics_feedback_complaint_and_deletion(server, kb):
    user = openid()
    verdict = server.send(user, THREAT)
    first_related = re.search(r"你是不是想问（回复数字）：\n1\. (.+)", verdict).group(1)  # type: ignore[union-attr]
    (case_id, *_), *_ = server.cases_of(user)

    details = server.send(user, "回复 详细")
    assert "官方渠道：" in details and "（第 1/2 页，回复“继续”看下一页）" in details
    rest = server.send(user, "继续")
    assert "详细说明：" in rest and rest.endswith("（第 2/2 页，完）")
    assert "没有更多内容" in server.send(user, "继续")

    topic = server.send(user, "回复１")  # full-width digit, with "回复"
    chosen = next(t for t in kb.topics if t.title == first_related)
    assert topic.startswith(chosen.answer[:30]) and "回复“有用”" not in topic
    second_related = re.search(r"你是不是想问（回复数字）：\n1\. (.+)", topic).group(1)  # type: ignore[union-attr]
    assert second_related == kb.topic_by_id[chosen.related[0]].title
    topic_details = server.send(user, "详细") + server.send(user, "继续")  # after a topic: that topic's
    assert topic_details.startswith(chosen.answer[:30]) and "官方渠道：" in topic_details  # long answer
    assert "详细说明：\n" + (chosen.details or chosen.answer)[:30] in topic_details
    assert "编号只对" in server.send(user, "9")

    assert "有帮助" in server.send(user, "有用")
    assert server.cases_of(user)[0][2] == "up"
    server.send(user, "没用。")
    assert server.cases_of(user)[0][2] == "down"

    draft = server.send(user, "投诉")
    assert draft.startswith("投诉材料 1/") and "爆你通讯录" in draft and "【姓名】" in draft
    assert "张伟" not in draft  # the user's own name is a placeholder
    second = server.send(user, "投诉2")
    assert second.startswith("投诉材料 2/")
    assert len(server.cases_of(user)) == 1  # menu words and follow-ups make no cases

    gone = server.send(user, "删除我的记录")
    assert "已删除你的 1 条记录" in gone
    assert server.cases_of(user) == [] and server.rows("SELECT id FROM cases WHERE id = ?", (case_id,)) == []
    assert "没有你最近的短信" in server.send(user, "投诉")
    assert "没有找到可以评价" in server.send(user, "有用")


def test_complaint_for_a_harmless_message_says_none_fits(server):
    user = openid()
    server.send(user, "【工商银行】您尾号8812的信用卡本期应还1,250.00元，到期还款日12月05日。")
    assert "没有合适的投诉材料" in server.send(user, "投诉")


def test_a_flood_from_one_openid_is_throttled(server):
    flooder, other = openid(), openid()
    replies = [server.send(flooder, f"{THREAT} 第{i}条") for i in range(14)]
    assert all(r.startswith("⛔") for r in replies[:10])
    assert replies[10] == THROTTLED_NOTICE and replies[11:] == ["", "", ""]
    assert server.send(other, THREAT).startswith("⛔")  # others are not slowed down
    rows = server.cases_of(flooder)
    assert len(rows) == 14 and sum(r[3] for r in rows) == 4  # throttled messages are logged, not analysed
    menu = [server.send(other, "有用") for _ in range(32)]  # menu words: 3 × USER_RATE_LIMIT a minute
    assert all("有帮助" in r for r in menu[:30]) and menu[30:] == [THROTTLED_NOTICE, ""]


def test_reply_latency_is_far_inside_five_seconds(server):
    user_messages = CONSOLE_MESSAGES[:8]
    times = []
    for i, text in enumerate(user_messages):
        started = time.perf_counter()
        server.send(openid(), text, msg_id=990000 + i)
        times.append(time.perf_counter() - started)
    times.sort()
    print(f"wechat reply latency: p50 {times[len(times) // 2] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")
    assert times[-1] < 1.0


def test_logs_hold_no_text_openid_or_secret(server):
    server.send("oLogCheckUser0001", THREAT)
    log = server.stderr
    for secret in (
        THREAT[:10],
        "爆你通讯录",
        "13812345678",
        "oLogCheckUser0001",
        TOKEN,
        AES_KEY,
        "Traceback",
    ):
        assert secret not in log
    assert "case=" in log and "channel=wechat" in log


def test_plain_only_server_refuses_encrypted_messages_and_stops_on_sigint(tmp_path):
    process = WeChatProcess(tmp_path)
    try:
        query, body = encrypted_request(message_xml(openid(), Content=THREAT, msg_id=5))
        assert process.post(body, query)[0] == 400
        assert process.send(openid(), THREAT).startswith("⛔")
    finally:
        assert process.stop(signal.SIGINT) == 0
    assert "WECHAT_AES_KEY is not set" in process.stderr and "wechat: stopped" in process.stderr


def test_start_refusals_are_one_line():
    missing = run_cli("wechat")
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert "WECHAT_TOKEN is not set" in missing.stderr
    bad_key = run_cli("wechat", env={"WECHAT_TOKEN": TOKEN, "WECHAT_AES_KEY": "short"})
    assert bad_key.returncode == 1 and "43-character" in bad_key.stderr
    no_app = run_cli("wechat", env={"WECHAT_TOKEN": TOKEN, "WECHAT_AES_KEY": AES_KEY})
    assert no_app.returncode == 1 and "WECHAT_APP_ID" in no_app.stderr
    assert AES_KEY not in bad_key.stderr + no_app.stderr
    helped = run_cli("wechat", "--help")
    assert helped.returncode == 0 and "--port" in helped.stdout


# --- in-process: layout, paging, the reply deadline ------------------------------------------------------------


def test_short_replies_fit_for_every_table_message(analyzer):
    texts = CONSOLE_MESSAGES + [row["text"] for row in verdict_cases()] + ["欠了二十万，我不想活了"]
    for text in texts:
        reply = analyzer.analyze(text).reply
        content, related = render_short(reply, feedback=True, complaint=True)
        assert len(content.encode()) <= CONTENT_LIMIT, text
        assert (reply.crisis or reply.headline or reply.answer or "")[:20] in content
        assert "回复“详细”" in content and reply.footer in content
        for number, (_, title) in enumerate(related, 1):
            assert f"{number}. {title}" in content


def test_short_reply_trims_what_does_not_fit():
    reply = Reply(
        "⚠️ 判断：测试",
        answer="很长的回答。" * 200,
        why=tuple(f"证据{i}" * 30 for i in range(5)),
        steps=tuple(f"步骤{i}" * 40 for i in range(5)),
        related=(("a", "问题甲"), ("b", "问题乙"), ("c", "问题丙")),
        footer="（自动判断，不构成法律意见。）",
    )
    content, related = render_short(reply, feedback=True, complaint=False)
    assert len(content.encode()) <= CONTENT_LIMIT
    assert content.startswith("⚠️ 判断：测试") and content.endswith("（自动判断，不构成法律意见。）")
    assert "回复“详细”查看" in content and related and "1. 问题甲" in content


def test_paginate_keeps_everything_within_the_limit():
    text = "\n\n".join(["段落" + "字" * 300, "一行很长" * 400, "短段落", "末尾"])
    pages = paginate(text)
    assert len(pages) > 2 and all(len(p.encode()) <= CONTENT_LIMIT for p in pages)
    assert pages[0].endswith(f"（第 1/{len(pages)} 页，回复“继续”看下一页）")
    body = "".join(re.sub(r"\n\n（第 \d+/\d+ 页.*?）$", "", p) for p in pages)
    assert body.replace("\n", "") == text.replace("\n", "")
    assert paginate("短") == ["短"]


def test_reply_xml_escapes_cdata_ends_and_illegal_characters():
    content = "引用：]]><script>\x01结束"
    parsed = fields_of(reply_xml("o1", ACCOUNT, content, 1).encode())
    assert parsed["Content"] == "引用：]]><script>结束" and parsed["ToUserName"] == "o1"


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("回复 1", "1"),
        ("１", "1"),
        ("回复“详细”", "详细"),
        ("投诉 110", "投诉110"),
        ("有用！", "有用"),
        ("HELP", "help"),
    ],
)
def test_menu_words(text, word):
    assert command_of(text) == word


class _SlowService:
    """A stand-in for the service whose analysis takes longer than the reply deadline."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.calls = 0

    def handle(self, incoming: Incoming) -> Outgoing:
        self.calls += 1
        time.sleep(self.seconds)
        return Outgoing(f"慢慢分析好了：{incoming.text}")


def test_a_late_answer_gets_a_holding_reply_then_comes_with_result():
    settings = Settings(_env_file=None, WECHAT_TOKEN=TOKEN)  # type: ignore[call-arg]
    service = _SlowService(0.4)
    channel = WeChatChannel(service, settings)  # type: ignore[arg-type]
    endpoint = WeChatEndpoint(WeChatConfig(TOKEN), channel, deadline=0.1)
    try:
        body = message_xml("oSlow", Content="截图里的短信", msg_id=77)
        first = endpoint.receive(signed(), body)
        assert fields_of(first.body)["Content"] == HOLDING
        assert endpoint.receive(signed(), body).body == first.body  # a retry: the same reply, no new work
        time.sleep(0.5)
        result = endpoint.receive(signed(), message_xml("oSlow", Content="结果", msg_id=78))
        assert fields_of(result.body)["Content"] == "慢慢分析好了：截图里的短信"
        assert service.calls == 1
    finally:
        endpoint.close()


class _LongService:
    """A stand-in for the service answering every message with a text of several pages."""

    def __init__(self) -> None:
        self.calls = 0

    def handle(self, incoming: Incoming) -> Outgoing:
        self.calls += 1
        return Outgoing("引用你的短信：" + "长" * 2000)


def test_pages_and_cached_replies_are_dropped_after_the_raw_text_ttl():
    now = [1000.0]
    settings = Settings(_env_file=None, WECHAT_TOKEN=TOKEN, RAW_TEXT_TTL_MINUTES=1)  # type: ignore[call-arg]
    service = _LongService()
    channel = WeChatChannel(service, settings, clock=lambda: now[0])  # type: ignore[arg-type]
    endpoint = WeChatEndpoint(WeChatConfig(TOKEN), channel, clock=lambda: now[0])
    try:
        body = message_xml("oTtl", Content="一条短信", msg_id=1)
        first = fields_of(endpoint.receive(signed(), body).body)["Content"]
        assert "（第 1/" in first and service.calls == 1
        assert endpoint.receive(signed(), body).body.count(first.encode()[:30]) == 1 and service.calls == 1
        now[0] += 61  # past RAW_TEXT_TTL_MINUTES, with no traffic in between
        endpoint.sweep()
        more = endpoint.receive(signed(), message_xml("oTtl", Content="继续", msg_id=2))
        assert "没有更多内容" in fields_of(more.body)["Content"]  # the pages quoting the message are gone
        endpoint.receive(signed(), body)  # the cached reply is gone too: a late retry is answered afresh
        assert service.calls == 2
    finally:
        endpoint.close()


class _ImageServer(ThreadingHTTPServer):
    """Serves one image on 127.0.0.1, standing in for WeChat's image host."""

    def __init__(self, image: bytes):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def test_a_screenshot_is_downloaded_read_and_judged(analyzer, tmp_path, monkeypatch):
    if not hasattr(Service, "handle_image"):
        pytest.skip("the service does not read screenshots yet")
    ocr = pytest.importorskip("bot.ocr")
    shots = pytest.importorskip("tests.screenshots")
    font = shots.find_cjk_font()
    if not ocr.ocr_available() or font is None:
        pytest.skip("OCR extra or CJK font not installed")
    image = shots.to_jpeg(shots.render_sms_screenshot("10690000", [THREAT], font=font))
    pictures = _ImageServer(image)
    threading.Thread(target=pictures.serve_forever, daemon=True).start()
    monkeypatch.setattr(wechat, "IMAGE_HOSTS", ("127.0.0.1",))
    store = CaseStore(tmp_path / "cases.db", b"test-key")
    settings = Settings(_env_file=None, WECHAT_TOKEN=TOKEN)  # type: ignore[call-arg]
    channel = WeChatChannel(Service(analyzer, store), settings)
    endpoint = WeChatEndpoint(WeChatConfig(TOKEN), channel, deadline=60)  # the models load on first use
    try:
        assert channel.images
        url = f"http://127.0.0.1:{pictures.server_address[1]}/pic.jpg"
        body = message_xml("oPicture", "image", msg_id=6001, PicUrl=url, MediaId="m")
        content = fields_of(endpoint.receive(signed(), body).body)["Content"]
        assert content.startswith("📷 我从截图里读到的文字") and "张伟" not in content  # echoed, redacted
        assert "⛔ 判断：违法催收" in content and "回复“投诉”" in content
        assert len(content.encode()) <= CONTENT_LIMIT and store.count() == 1
    finally:
        endpoint.close()
        pictures.shutdown()
        pictures.server_close()


def test_a_flood_of_pictures_is_throttled_before_anything_is_downloaded(analyzer, tmp_path, monkeypatch):
    from bot.ocr import ReadResult, ScreenshotReader

    class Reader(ScreenshotReader):
        def read(self, image: bytes) -> ReadResult:
            return ReadResult("再不还钱就爆你通讯录", (), 1080, 2340, 0.1)

    fetched: list[str] = []
    monkeypatch.setattr(wechat, "download_image", lambda url: fetched.append(url) or b"picture")
    store = CaseStore(tmp_path / "cases.db", b"test-key")
    service = Service(analyzer, store, user_rate_limit=3, screenshots=Reader())
    channel = WeChatChannel(service, Settings(_env_file=None, WECHAT_TOKEN=TOKEN))  # type: ignore[call-arg]
    channel.images = True  # as when the OCR extra is installed; the reader above stands in for it
    answers = [
        channel.answer(
            {"FromUserName": "oFlood", "MsgType": "image", "PicUrl": f"http://x/{i}.jpg", "MsgId": str(i)}
        )
        for i in range(10)
    ]
    assert len(fetched) == 3  # only the pictures within the limit were fetched
    assert all("违法催收" in a for a in answers[:3] if a) and THROTTLED_NOTICE in (answers[3] or "")
    assert answers[4:] == [None] * 6  # throttled quietly after the one notice
    assert store.count() == 10  # every picture logged, the throttled ones marked so
    assert store.db.execute("SELECT count(*) FROM cases WHERE throttled = 1").fetchone()[0] == 7
    store.close()

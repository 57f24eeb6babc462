"""Telegram handlers, offline: updates fed through ``Application.process_update``; every Bot API call goes to
an in-process fake (``FakeRequest``), which also checks HTML and length the way Telegram does."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from typing import Any, ClassVar

import pytest
from telegram import Update

from bot.adapters.telegram import (
    MEDIA_HOW,
    SORRY,
    STALE,
    UNKNOWN_COMMAND,
    TelegramStartError,
    build_application,
    check_settings,
    format_text,
    parse_listen,
    render_plain,
    render_reply,
    utf16_len,
    webhook_config,
)
from bot.core import Reply
from bot.service import THROTTLED_NOTICE, Service
from bot.settings import Settings
from bot.store import CaseStore
from tests.fake_bot_api import (
    BOT_ID,
    BOT_USER,
    TOKEN,
    FakeBotAPI,
    FakeRequest,
    buttons,
    callback,
    check_html,
    forwarded,
    message,
    sticker,
)

SMS = "【XX金融】您的借款已逾期20天，再不还钱就爆你通讯录，通知你家人和单位。"
GROUP = -1001234567
SEEN_TELEGRAM_METHODS = {"getMe", "sendMessage", "answerCallbackQuery", "editMessageReplyMarkup"}


def make_settings(**extra: Any) -> Settings:
    values: dict[str, Any] = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": "http://fake.invalid/bot"}
    return Settings(_env_file=None, **(values | extra))  # type: ignore[call-arg]


class Harness:
    """One application on one event loop for the whole test."""

    def __init__(self, service: Service, store: CaseStore, settings: Settings):
        self.api = FakeBotAPI()
        self.service = service
        self.store = store
        self.app = build_application(settings, service, request=FakeRequest(self.api))
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.app.initialize())

    def feed(self, *bodies: dict[str, Any]) -> None:
        for body in bodies:
            update = Update.de_json({"update_id": self.api.next_update_id(), **body}, self.app.bot)
            self.loop.run_until_complete(self.app.process_update(update))

    def close(self) -> None:
        self.loop.run_until_complete(self.app.shutdown())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.api.sent(chat_id)]

    def row(self, case_id: int) -> dict[str, Any]:
        return next(self.store.db.query("SELECT * FROM cases WHERE id = ?", [case_id]))


@pytest.fixture
def harness_factory(tmp_path, analyzer, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    made: list[tuple[Harness, CaseStore]] = []

    def make(service_cls: type[Service] = Service, rate: int = 10, **settings: Any) -> Harness:
        store = CaseStore(tmp_path / f"cases{len(made)}.db", b"k" * 32)
        service = service_cls(analyzer, store, user_rate_limit=rate)
        harness = Harness(service, store, make_settings(**settings))
        made.append((harness, store))
        return harness

    yield make
    for harness, store in made:
        harness.close()
        store.close()


@pytest.fixture
def tg(harness_factory) -> Harness:
    return harness_factory()


def case_id_of(sent: dict[str, Any]) -> int:
    data = next(b for b in buttons(sent) if b.startswith("fb:"))
    return int(data.split(":")[1])


# --- commands ---------------------------------------------------------------------------------------------


def test_start_help_about_privacy_answer_in_html(tg, kb):
    tg.feed(*(message(1, 1, cmd) for cmd in ("/start", "/help", "/about", "/privacy")))
    start, help_, about, privacy = tg.texts(1)
    assert "全文粘贴" in start and "/forget" in start and help_ in start
    assert kb.version in about and kb.reviewed.isoformat() in about and "不构成法律意见" in about
    assert "180 天" in privacy and "1440 分钟" in privacy and "/forget" in privacy
    assert all(m["parse_mode"] == "HTML" for m in tg.api.sent())
    assert tg.store.count() == 0  # commands are not cases


def test_forget_deletes_this_users_cases(tg):
    tg.feed(message(1, 7, SMS), message(1, 7, "上门催收合法吗"), message(2, 8, SMS), message(1, 7, "/forget"))
    assert "已删除你的 2 条记录" in tg.texts(1)[-1]
    assert tg.store.count() == 1  # the other user's case stays


def test_unknown_command_in_private_gets_a_hint(tg):
    tg.feed(message(1, 1, "/frobnicate"))
    assert tg.texts(1) == [UNKNOWN_COMMAND]


# --- messages ---------------------------------------------------------------------------------------------


def test_pasted_sms_gets_a_verdict_with_buttons_and_is_logged(tg):
    tg.feed(message(1, 1, SMS))
    [sent] = tg.api.sent(1)
    assert sent["parse_mode"] == "HTML" and "<b>⛔ 判断：" in sent["text"]
    assert sent["link_preview_options"] == {"is_disabled": True}
    case_id = case_id_of(sent)
    assert buttons(sent)[:2] == [f"fb:{case_id}:1", f"fb:{case_id}:0"]
    assert f"alt:{case_id}" in buttons(sent) and f"more:{case_id}" in buttons(sent)
    row = tg.row(case_id)
    assert row["channel"] == "telegram" and row["verdict"] == "illegal_collection"
    assert row["user_hash"] != "1" and row["forward_origin"] is None


def test_forwarded_sms_notes_origin_and_date_and_stores_no_name(tg):
    tg.feed(forwarded(1, 1, SMS, origin_date=1_790_000_000))  # 2026-09-21 14:13:20 UTC
    [sent] = tg.api.sent(1)
    assert sent["text"].startswith("<i>📨 转发的消息，原消息发于 2026-09-21 22:13（北京时间）。</i>")
    row = tg.row(case_id_of(sent))
    assert row["forward_origin"] == "hidden_user" and row["forwarded_at"] == "2026-09-21T14:13:20+00:00"
    assert "某催收员" not in str(row)


def test_caption_of_a_photo_is_judged(tg):
    photo = [{"file_id": "p", "file_unique_id": "pu", "width": 90, "height": 90}]
    tg.feed(message(1, 1, None, photo=photo, caption=SMS))
    [sent] = tg.api.sent(1)
    assert "图片/文件本身我暂时读不了" in sent["text"] and "判断" in sent["text"]
    assert tg.store.count() == 1


def test_sticker_photo_voice_document_get_a_helpful_reply_once_a_minute(tg):
    tg.feed(sticker(1, 1), sticker(1, 1))
    [hint] = tg.texts(1)
    assert "贴纸" in hint and "长按那条短信" in hint
    tg.feed(message(2, 2, None, photo=[{"file_id": "p", "file_unique_id": "pu", "width": 9, "height": 9}]))
    tg.feed(message(3, 3, None, voice={"file_id": "v", "file_unique_id": "vu", "duration": 3}))
    tg.feed(message(4, 4, None, document={"file_id": "d", "file_unique_id": "du"}))
    assert "截图" in tg.texts(2)[0] and "语音" in tg.texts(3)[0] and "文件" in tg.texts(4)[0]
    assert all(MEDIA_HOW.splitlines()[1] in tg.texts(c)[0] for c in (2, 3, 4))
    assert tg.store.count() == 0


def test_follow_ups_use_the_chats_last_case(tg):
    tg.feed(
        message(1, 1, SMS), message(1, 1, "详细"), message(1, 1, "怎么办"), message(1, 1, "这个号码是真的吗")
    )
    _, details, steps, number = tg.texts(1)
    assert len(details) > 50 and steps.startswith("怎么办：\n1. ") and "12368" in number
    assert tg.store.count() == 1


def test_flood_gets_one_notice_then_silence_and_everything_is_logged(harness_factory):
    tg = harness_factory(rate=3)
    tg.feed(*(message(1, 1, f"第{i}条：{SMS}") for i in range(7)))
    texts = tg.texts(1)
    assert len(texts) == 4 and texts[3] == THROTTLED_NOTICE
    assert tg.store.count() == 7
    assert tg.store.db.execute("SELECT count(*) FROM cases WHERE throttled = 1").fetchone()[0] == 4


def test_redelivered_update_is_answered_and_logged_once(tg):
    body = message(1, 1, SMS)
    tg.feed(body, body)
    assert len(tg.api.sent(1)) == 2 and tg.store.count() == 1


def test_edited_messages_are_not_judged_again(tg):
    edited = message(1, 1, SMS)["message"] | {"edit_date": 1_790_000_100}
    tg.feed({"edited_message": edited})
    assert tg.api.sent() == [] and tg.store.count() == 0


# --- groups -----------------------------------------------------------------------------------------------


def test_group_is_silent_unless_addressed(tg):
    tg.feed(message(GROUP, 5, SMS), message(GROUP, 5, "/help@other_bot"), message(GROUP, 5, "/frobnicate"))
    tg.feed(sticker(GROUP, 5))
    assert tg.api.sent() == [] and tg.store.count() == 0

    mention = message(GROUP, 5, f"@{BOT_USER['username']} {SMS}")
    tg.feed(mention)
    [answer] = tg.api.sent(GROUP)
    assert (
        "判断" in answer["text"]
        and answer["reply_parameters"]["message_id"] == mention["message"]["message_id"]
    )
    assert BOT_USER["username"] not in tg.row(case_id_of(answer))["text"]

    bot_reply = {"message_id": answer["message_id"], "date": 1, "chat": {"id": GROUP, "type": "supergroup"},
                 "from": BOT_USER, "text": "…"}  # fmt: skip
    tg.feed(message(GROUP, 5, "详细", reply_to_message=bot_reply), message(GROUP, 6, "/help"))
    assert len(tg.api.sent(GROUP)) == 3


def test_mention_in_reply_to_someone_judges_their_message(tg):
    theirs = message(GROUP, 9, "【法院】你涉嫌诈骗已立案，请立即转账到安全账户解冻。")["message"]
    tg.feed(message(GROUP, 5, f"@{BOT_USER['username']}", reply_to_message=theirs))
    [answer] = tg.api.sent(GROUP)
    assert "诈骗" in answer["text"]


# --- buttons ----------------------------------------------------------------------------------------------


def test_feedback_button_is_stored_answered_and_removed(tg):
    tg.feed(message(1, 1, SMS))
    [sent] = tg.api.sent(1)
    case_id = case_id_of(sent)
    tg.feed(callback(1, 1, f"fb:{case_id}:1", sent))
    assert tg.row(case_id)["feedback"] == "up"
    [answered] = tg.api.calls_of("answerCallbackQuery")
    assert "有帮助" in answered.params["text"]
    [edit] = tg.api.calls_of("editMessageReplyMarkup")
    assert edit.params["message_id"] == sent["message_id"]
    assert not any(b.startswith("fb:") for b in buttons(edit.params)) and f"more:{case_id}" in buttons(
        edit.params
    )
    tg.feed(callback(1, 1, f"fb:{case_id}:0", sent))
    assert tg.row(case_id)["feedback"] == "down"


def test_not_what_i_meant_shows_next_topics_and_a_topic_button_answers(tg, kb):
    tg.feed(message(1, 1, "他们说要上门，还说要起诉我，会坐牢吗"))
    [sent] = tg.api.sent(1)
    case_id = case_id_of(sent)
    tg.feed(callback(1, 1, f"alt:{case_id}", sent))
    [edit] = tg.api.calls_of("editMessageReplyMarkup")
    topics = [b for b in buttons(edit.params) if b.startswith("t:")]
    assert 1 <= len(topics) <= 4 and f"alt:{case_id}" not in buttons(edit.params)
    assert f"fb:{case_id}:1" in buttons(edit.params)  # feedback still possible
    topic_id = topics[0][2:]
    tg.feed(callback(1, 1, topics[0], sent | {"reply_markup": edit.params["reply_markup"]}))
    answer = tg.api.sent(1)[-1]
    assert kb.topic(topic_id).answer.split("\n")[0][:20] in answer["text"].replace("&quot;", '"')


def test_details_button_sends_the_long_answer(tg):
    tg.feed(message(1, 1, SMS))
    [sent] = tg.api.sent(1)
    tg.feed(callback(1, 1, f"more:{case_id_of(sent)}", sent))
    details = tg.api.sent(1)[-1]
    assert len(details["text"]) > 50 and "reply_markup" not in details


def test_buttons_of_a_forgotten_or_unknown_case_answer_politely(tg):
    tg.feed(callback(1, 1, "alt:999999", {"message_id": 5}), callback(1, 1, "fb:999999:1", {"message_id": 5}))
    tg.feed(callback(1, 1, "nonsense", {"message_id": 5}))
    first, second, third = tg.api.calls_of("answerCallbackQuery")
    assert first.params["text"] == STALE and first.params["show_alert"] is True
    assert "删除" in second.params["text"] and "text" not in third.params
    assert tg.api.sent() == []


def test_every_callback_data_fits_telegrams_64_bytes(kb):
    longest = max(kb.topic_by_id, key=len)
    assert len(f"td:{longest}".encode()) <= 64


# --- robustness -------------------------------------------------------------------------------------------


class ExplodingService(Service):
    def handle(self, incoming):
        if "炸" in incoming.text:
            raise RuntimeError("boom: internal detail")
        return super().handle(incoming)


def test_a_handler_error_apologises_without_traceback_and_the_bot_goes_on(harness_factory, caplog):
    tg = harness_factory(ExplodingService)
    tg.feed(message(1, 1, "炸"), message(1, 1, SMS))
    apology, verdict = tg.texts(1)
    assert apology == SORRY and "判断" in verdict
    assert "boom" in caplog.text  # the operator sees it in the log


class ThreadRecordingService(Service):
    threads: ClassVar[list[int]] = []

    def handle(self, incoming):
        self.threads.append(threading.get_ident())
        return super().handle(incoming)


def test_analysis_runs_in_a_worker_thread_not_on_the_event_loop(harness_factory):
    tg = harness_factory(ThreadRecordingService)
    tg.feed(message(1, 1, SMS))
    assert ThreadRecordingService.threads and threading.get_ident() not in ThreadRecordingService.threads


def test_sending_survives_server_errors(tg):
    tg.api.fail(500, methods={"sendMessage"}, times=2)
    tg.feed(message(1, 1, SMS))
    assert len(tg.api.sent(1)) == 1
    assert [c.status for c in tg.api.calls_of("sendMessage", ok_only=False)] == [500, 500, 200]


def test_only_allowed_bot_api_methods_are_called(tg):
    tg.feed(message(1, 1, "/start"), message(1, 1, SMS), sticker(1, 1))
    [sent] = [m for m in tg.api.sent(1) if buttons(m)]
    tg.feed(
        callback(1, 1, f"fb:{case_id_of(sent)}:1", sent), callback(1, 1, f"more:{case_id_of(sent)}", sent)
    )
    assert {c.method for c in tg.api.calls} <= SEEN_TELEGRAM_METHODS


# --- rendering --------------------------------------------------------------------------------------------


def test_everything_is_escaped_and_links_are_not_clickable():
    assert format_text("<b>a&b</b>") == "&lt;b&gt;a&amp;b&lt;/b&gt;"
    assert format_text("请登录pay-xx.cc/a?x=1&y=2还款") == "请登录<code>pay-xx.cc/a?x=1&amp;y=2</code>还款"
    assert format_text("点击 https://t.cn/abc。", "b") == "<b>点击 <code>https://t.cn/abc</code>。</b>"
    assert format_text("应还1,250.00元 12368") == "应还1,250.00元 12368"
    assert format_text("官网 https://jubao.nifa.org.cn", defuse=False) == "官网 https://jubao.nifa.org.cn"
    reply = Reply(
        headline="h", why=("链接：“http://pay-xx.cc”",), channels=("举报平台 https://jubao.nifa.org.cn",)
    )
    [part] = render_reply(reply)
    assert "<code>http://pay-xx.cc</code>" in part and "<code>https://jubao" not in part


def test_long_replies_split_under_4096_and_keep_valid_html():
    step = "不要转账<&>到“安全账户”😀" * 300  # 4,500+ UTF-16 units on its own, escaping makes it longer
    reply = Reply(
        headline="🚫 判断：疑似诈骗",
        why=("“<script>”",),
        steps=(step, "报警 110", step),
        footer="（自动判断）",
    )
    parts = render_reply(reply)
    assert len(parts) >= 3
    seen = ""
    for part in parts:
        error, plain = check_html(part)
        assert error is None and utf16_len(part) <= 4096
        seen += plain
    assert seen.count("不要转账<&>") == 600 and "<script>" in seen and "报警 110" in seen
    assert render_plain("a\n\nb") == ["a\n\nb"]
    assert all(utf16_len(p) <= 50 for p in render_plain("长" * 500, limit=50))


# --- settings ---------------------------------------------------------------------------------------------


def test_token_and_webhook_settings_are_checked_with_one_line_messages(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TelegramStartError, match="not set"):
        check_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    with pytest.raises(TelegramStartError, match="does not look like"):
        check_settings(make_settings(TELEGRAM_BOT_TOKEN="12345"))
    assert webhook_config(make_settings()) is None
    hook = webhook_config(
        make_settings(
            TELEGRAM_WEBHOOK_URL="https://bot.example.org/tg/hook", TELEGRAM_WEBHOOK_SECRET="s3cr-t_"
        )
    )
    assert hook is not None and (hook.url_path, hook.host, hook.port, hook.secret) == (
        "tg/hook",
        "127.0.0.1",
        8443,
        "s3cr-t_",
    )
    with pytest.raises(TelegramStartError, match="may only contain"):
        webhook_config(make_settings(TELEGRAM_WEBHOOK_URL="https://x.org/", TELEGRAM_WEBHOOK_SECRET="a b"))
    assert parse_listen("[::1]:8080") == ("::1", 8080) and parse_listen("0.0.0.0:443") == ("0.0.0.0", 443)
    for bad in ("8443", "host:", "host:99999", ":80"):
        with pytest.raises(TelegramStartError):
            parse_listen(bad)


def test_the_token_never_reaches_a_log_line(tg):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        make_settings()  # nothing is logged by the settings themselves
        build_application(make_settings(), tg.service, request=FakeRequest(tg.api))  # adds the log filter
        logging.getLogger("bot.test").error("calling https://api.telegram.org/bot%s/getMe", TOKEN)
        try:
            raise ValueError(f"token {TOKEN} in an exception")
        except ValueError:
            logging.getLogger("bot.test").exception("failed")
    finally:
        root.removeHandler(handler)
    assert TOKEN not in stream.getvalue() and "bot<token>/getMe" in stream.getvalue()
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert tg.app.bot.id == BOT_ID

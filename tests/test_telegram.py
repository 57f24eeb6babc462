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
from telegram.ext import CallbackQueryHandler

from bot.adapters import telegram as telegram_adapter
from bot.adapters.telegram import (
    DRAFT_NOTE,
    EVIDENCE_PRIVATE,
    IMAGE_FAILED,
    IMAGE_TOO_BIG,
    MEDIA_HOW,
    NOTIFY_OK,
    OPERATOR_BUTTON_ONLY,
    OPERATOR_ONLY,
    OPERATOR_PRIVATE,
    QUEUE_EMPTY,
    SORRY,
    STALE,
    UNKNOWN_COMMAND,
    TelegramChannel,
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
from bot.ocr import ReadResult
from bot.operators import Operators
from bot.service import OCR_OFF_REPLY, THROTTLED_NOTICE, Service
from bot.settings import Settings
from bot.store import CaseStore
from tests.fake_bot_api import (
    BOT_ID,
    BOT_USER,
    TOKEN,
    Call,
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
    values: dict[str, Any] = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": "http://fake.invalid/bot",
        "TELEGRAM_BASE_FILE_URL": "http://fake.invalid/file/bot",
    }
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

    @property
    def channel(self) -> TelegramChannel:
        return next(h.callback.__self__ for h in self.app.handlers[0] if isinstance(h, CallbackQueryHandler))

    def refused(self) -> list[Call]:
        """Calls the fake refused (invalid HTML, a message too long…): none should be."""
        return [c for c in self.api.calls if c.status >= 400]


@pytest.fixture
def harness_factory(tmp_path, analyzer, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    made: list[tuple[Harness, CaseStore]] = []

    def make(
        service_cls: type[Service] = Service,
        rate: int = 10,
        screenshots: Any = None,
        ocr: bool = False,
        **settings: Any,
    ) -> Harness:
        """``screenshots``: a stand-in OCR reader; ``ocr``: whether the OCR extra counts as installed."""
        monkeypatch.setattr(telegram_adapter, "ocr_available", lambda: ocr)
        store = CaseStore(tmp_path / f"cases{len(made)}.db", b"k" * 32)
        service = service_cls(analyzer, store, user_rate_limit=rate, screenshots=screenshots)
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
    # Telegram sends an update again when the bot died before confirming it (see telegram_polling): its
    # case is logged already, so the user is not answered twice.
    body = message(1, 1, SMS)
    tg.feed(body, body)
    assert len(tg.api.sent(1)) == 1 and tg.store.count() == 1


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


# --- screenshots ------------------------------------------------------------------------------------------

THREAT_READ = "10690000\n【XX金融】尊敬的张三先生，再不还钱就爆你通讯录，通知你家人和单位。"


class StubReader:
    """Stands in for the OCR models: returns ``text`` for any image and records what it was given."""

    def __init__(self, text: str = THREAT_READ, error: Exception | None = None):
        self.text = text
        self.error = error
        self.images: list[bytes] = []

    def load(self) -> float:
        return 0.0

    def read(self, image: bytes) -> ReadResult:
        self.images.append(image)
        if self.error is not None:
            raise self.error
        return ReadResult(self.text, (), 1080, 2340, 0.01)


def photo_sizes(file_id: str) -> list[dict[str, Any]]:
    """A photo as Telegram sends it: several sizes, the largest last."""
    return [
        {"file_id": f"{file_id}-s", "file_unique_id": f"{file_id}-su", "width": 90, "height": 195},
        {"file_id": file_id, "file_unique_id": f"{file_id}-u", "width": 591, "height": 1280, "file_size": 9},
    ]


def test_a_screenshot_is_downloaded_read_and_judged_with_the_text_read_shown_first(harness_factory):
    reader = StubReader()
    tg = harness_factory(screenshots=reader)
    tg.api.add_file("shot", b"\xff\xd8 jpeg bytes")
    tg.feed(message(1, 1, None, photo=photo_sizes("shot"), caption="这是真的吗"))
    [sent] = tg.api.sent(1)
    [get_file] = tg.api.calls_of("getFile")
    assert get_file.params["file_id"] == "shot" and tg.api.downloads == ["photos/shot"]
    assert reader.images == [b"\xff\xd8 jpeg bytes"]
    methods = [c.method for c in tg.api.calls if c.method != "getMe"]
    assert methods[0] == "sendChatAction" and methods[-1] == "sendMessage"
    assert tg.api.calls_of("sendChatAction")[0].params["action"] == "typing"
    echo, _, verdict = sent["text"].partition("</i>\n")
    assert echo == "<i>📷 我从截图里读到的文字（个人信息已隐去）："
    assert verdict.startswith("10690000\n【XX金融】尊敬的[姓名]先生，再不还钱就爆你通讯录")
    assert "张三" not in sent["text"] and "<b>⛔ 判断：违法催收" in verdict
    row = tg.row(case_id_of(sent))
    assert (
        row["verdict"] == "illegal_collection"
        and "张三" not in row["text"]
        and "这是真的吗" not in row["text"]
    )
    assert not tg.refused()


def test_an_image_file_is_read_other_files_and_failures_get_a_hint(harness_factory):
    reader = StubReader()
    tg = harness_factory(screenshots=reader)
    tg.api.add_file("png", b"\x89PNG")
    png = {"file_id": "png", "file_unique_id": "pngu", "mime_type": "image/png", "file_name": "a.png"}
    tg.feed(message(1, 1, None, document=png))
    assert "判断" in tg.texts(1)[0] and reader.images == [b"\x89PNG"]

    huge = png | {"file_id": "huge", "file_size": 20 * 1024 * 1024}
    tg.feed(message(2, 2, None, document=huge))
    assert tg.texts(2) == [f"{IMAGE_TOO_BIG}\n\n{MEDIA_HOW}"]
    tg.feed(message(3, 3, None, photo=photo_sizes("never-uploaded")))  # getFile refuses the file_id
    assert tg.texts(3) == [f"{IMAGE_FAILED}\n\n{MEDIA_HOW}"]
    pdf = {"file_id": "pdf", "file_unique_id": "pdfu", "mime_type": "application/pdf"}
    tg.feed(message(4, 4, None, document=pdf))
    assert "文件我暂时还打不开" in tg.texts(4)[0]
    assert len(reader.images) == 1 and tg.api.downloads == ["photos/png"] and tg.store.count() == 1


def test_a_screenshot_without_models_or_without_text_gets_a_hint(harness_factory):
    from bot.ocr import OcrUnavailable
    from bot.service import NO_TEXT_REPLY

    tg = harness_factory(screenshots=StubReader(error=OcrUnavailable("models missing")))
    tg.api.add_file("a", b"x")
    tg.feed(message(1, 1, None, photo=photo_sizes("a")))
    assert tg.texts(1) == [OCR_OFF_REPLY]
    blank = harness_factory(screenshots=StubReader("  "))
    blank.api.add_file("b", b"x")
    blank.feed(message(1, 1, None, photo=photo_sizes("b")))
    assert blank.texts(1) == [NO_TEXT_REPLY] and blank.store.count() == 0


def test_without_the_ocr_extra_photos_keep_the_hint_and_captions_are_judged(tg):
    assert not tg.channel.read_images
    tg.feed(message(1, 1, None, photo=photo_sizes("p")))
    tg.feed(message(2, 2, None, photo=photo_sizes("p"), caption=SMS))
    assert "截图里的文字我暂时还读不出来" in tg.texts(1)[0] and "判断" in tg.texts(2)[0]
    assert not tg.api.calls_of("getFile")
    tg.feed(message(3, 3, "/help"))
    assert "短信截图" not in tg.texts(3)[0]


def test_in_a_group_a_mention_in_reply_to_a_screenshot_reads_it(harness_factory):
    tg = harness_factory(screenshots=StubReader(), ocr=True)
    tg.api.add_file("g", b"x")
    theirs = message(GROUP, 9, None, photo=photo_sizes("g"))["message"]
    tg.feed(message(GROUP, 9, None, photo=photo_sizes("g")))  # not addressed: ignored
    assert tg.api.sent() == [] and not tg.api.downloads
    tg.feed(message(GROUP, 5, f"@{BOT_USER['username']}", reply_to_message=theirs))
    [answer] = tg.api.sent(GROUP)
    assert answer["text"].startswith("<i>📷") and "违法催收" in answer["text"]
    tg.feed(message(1, 1, "/help"))
    assert "短信截图" in tg.texts(1)[0]


# --- complaint drafts and /evidence -----------------------------------------------------------------------

THREAT = "【XX金融】尊敬的张伟先生，你已逾期，再不还钱就爆你通讯录，打断你的腿，联系催收员13812345678。"


def test_complaint_button_lists_channels_then_sends_a_draft_and_a_text_file(tg):
    tg.feed(
        message(1, 1, THREAT), message(1, 1, "【工商银行】您的信用卡本期应还1,250.00元，到期还款日12月05日。")
    )
    threat, reminder = tg.api.sent(1)
    case_id = case_id_of(threat)
    assert f"cp:{case_id}" in buttons(threat) and not any(b.startswith("cp:") for b in buttons(reminder))
    tg.feed(callback(1, 1, f"cp:{case_id}", threat))
    menu = tg.api.sent(1)[-1]
    channels = [b.split(":")[2] for b in buttons(menu) if b.startswith(f"cd:{case_id}:")]
    assert {"lender", "12378", "110"} <= set(channels) and f"cf:{case_id}" in buttons(menu)

    tg.feed(callback(1, 1, f"cd:{case_id}:110", menu))
    draft = tg.api.sent(1)[-1]["text"]
    assert draft.startswith("<b>投诉材料 ") and "打断你的腿" in draft and "【姓名】" in draft
    assert "13812345678" in draft  # the collector's number is evidence
    assert "张伟" not in draft and DRAFT_NOTE in draft

    tg.feed(callback(1, 1, f"cf:{case_id}", menu))
    [doc] = tg.api.calls_of("sendDocument")
    upload = doc.params["document"]
    assert upload["filename"].startswith("投诉材料-") and upload["filename"].endswith(".txt")
    content = upload["content"].decode("utf-8-sig")
    assert content.count("==== ") == len(channels) and "打断你的腿" in content and "张伟" not in content
    assert not tg.refused()


def test_complaint_button_of_an_older_message_drafts_that_message(tg):
    tg.feed(message(1, 1, THREAT), message(1, 1, "你就是个老赖，明天去你单位闹，让你同事都知道"))
    first, second = tg.api.sent(1)
    tg.feed(callback(1, 1, f"cd:{case_id_of(first)}:110", first))
    draft = tg.api.sent(1)[-1]["text"]
    assert "打断你的腿" in draft and "老赖" not in draft
    assert f"cp:{case_id_of(second)}" in buttons(second)


def test_complaint_buttons_after_the_text_left_memory_explain_why(tg):
    tg.feed(message(1, 1, THREAT))
    [sent] = tg.api.sent(1)
    tg.feed(message(1, 1, "/forget"))  # also clears what is held in memory
    tg.feed(callback(1, 1, f"cp:{case_id_of(sent)}", sent), callback(1, 1, "cf:e", sent))
    first, second = tg.api.calls_of("answerCallbackQuery")
    assert "内存" in first.params["text"] and "24 小时" in first.params["text"]
    assert first.params["show_alert"] is True and "内存" in second.params["text"]
    assert not tg.api.calls_of("sendDocument")


def test_evidence_collects_the_chats_sms_into_one_dated_record_with_drafts(tg):
    tg.feed(
        forwarded(1, 1, THREAT, origin_date=1_790_000_000),
        message(1, 1, "他们说要爆我通讯录，合法吗"),  # a question: not evidence
        message(1, 1, "你就是个老赖，明天去你单位闹，让你同事都知道"),
        message(1, 1, "/evidence"),
    )
    record = tg.api.sent(1)[-1]
    text = record["text"]
    assert text.startswith("<b>证据记录（整理于 ") and "共 2 条短信" in text
    assert "2026-09-21 22:13（原消息时间）" in text and "（发给本助手的时间）" in text
    assert "XX金融（短信自称）" in text and "【发送号码】" in text
    assert "尊敬的[姓名]先生" in text and "张伟" not in text and "[手机号]" in text
    assert "判断：违法催收" in text and "合法吗" not in text
    assert "只在内存里保留 24 小时" in text
    assert "cf:e" in buttons(record) and any(b.startswith("cd:e:") for b in buttons(record))
    tg.feed(callback(1, 1, "cd:e:12378", record))
    draft = tg.api.sent(1)[-1]["text"]
    assert "打断你的腿" in draft and "老赖" in draft
    assert "1. 2026-09-21 22:13（北京时间），" in draft and "2. 【收到时间】，" in draft
    tg.feed(callback(1, 1, "cf:e", record))
    content = tg.api.calls_of("sendDocument")[0].params["document"]["content"].decode("utf-8-sig")
    assert "证据记录" in content and "原消息时间" in content and "==== 1. " in content
    assert not tg.refused()


def test_evidence_in_groups_and_with_nothing_in_memory(tg):
    tg.feed(message(GROUP, 5, SMS), message(GROUP, 5, "/evidence"), message(2, 2, "/evidence"))
    assert tg.texts(GROUP) == [EVIDENCE_PRIVATE]
    [empty] = tg.texts(2)
    assert "没有你最近发来的短信" in empty and "24 小时" in empty


# --- "有新结论时通知我" and operators -----------------------------------------------------------------------

OPERATOR = 4242


def test_notify_me_is_offered_when_unsure_and_the_user_is_told_of_a_different_label(harness_factory):
    tg = harness_factory(LOW_CONFIDENCE=0.99, OPERATOR_IDS=f"7, {OPERATOR}")
    tg.feed(message(1, 1, "【XX金融】您的借款已逾期20天，我司将安排专员上门走访核实您的还款能力。"))
    [sent] = tg.api.sent(1)
    case_id = case_id_of(sent)
    assert f"nt:{case_id}" in buttons(sent)
    tg.feed(callback(1, 1, f"nt:{case_id}", sent))
    assert tg.api.calls_of("answerCallbackQuery")[-1].params["text"] == NOTIFY_OK
    assert f"nt:{case_id}" not in buttons(tg.api.calls_of("editMessageReplyMarkup")[-1].params)
    assert tg.store.db.execute("SELECT chat_id FROM case_notify").fetchall() == [("1",)]

    tg.feed(message(OPERATOR, OPERATOR, "/review"))
    shown = tg.api.sent(OPERATOR)[-1]
    assert f"#{case_id}" in shown["text"] and f"lb:{case_id}:scam" in buttons(shown)
    tg.feed(callback(OPERATOR, OPERATOR, f"lb:{case_id}:scam", shown))
    assert tg.row(case_id)["label"] == "scam"
    told = tg.texts(1)[-1]
    assert "人工复核后的结论是：疑似诈骗" in told and "施压式催收" in told
    assert tg.store.db.execute("SELECT count(*) FROM case_notify").fetchone()[0] == 0  # chat id deleted


def test_confident_verdicts_offer_no_notify_button(tg):
    tg.feed(message(1, 1, SMS))
    assert not any(b.startswith("nt:") for b in buttons(tg.api.sent(1)[0]))


def test_operator_commands_are_refused_politely_to_everyone_else(harness_factory):
    tg = harness_factory(OPERATOR_IDS=str(OPERATOR))
    tg.feed(message(1, 1, SMS), message(1, 1, "/review"), message(1, 1, "/stats"))
    assert tg.texts(1)[1:] == [OPERATOR_ONLY, OPERATOR_ONLY]
    tg.feed(message(GROUP, 5, "/review"))  # perhaps another bot's command: silence
    tg.feed(message(GROUP, 5, f"/stats@{BOT_USER['username']}"), message(GROUP, OPERATOR, "/review"))
    assert tg.texts(GROUP) == [OPERATOR_ONLY, OPERATOR_PRIVATE]
    case_id = case_id_of(tg.api.sent(1)[0])
    tg.feed(callback(1, 1, f"lb:{case_id}:scam", {"message_id": 5}), callback(1, 1, f"sk:{case_id}", {}))
    assert [c.params["text"] for c in tg.api.calls_of("answerCallbackQuery")] == [OPERATOR_BUTTON_ONLY] * 2
    assert tg.row(case_id)["label"] is None


def test_review_labels_groups_skips_and_ends_with_an_empty_queue_then_stats(harness_factory):
    tg = harness_factory(OPERATOR_IDS=str(OPERATOR), rate=20)
    tg.feed(
        message(1, 1, "【XX金融】您的借款已逾期20天，我司将安排专员上门走访核实您的还款能力。"),
        message(2, 2, "【XX金融】您的借款已逾期31天，我司将安排专员上门走访核实您的还款能力！"),
        message(3, 3, "尊敬的张伟先生，再不还款就爆你通讯录，联系催收员13812345678"),
        message(OPERATOR, OPERATOR, "/review"),
    )
    first = tg.api.sent(OPERATOR)[-1]  # the most asked first: the two near-duplicates
    assert "相似消息 ×2" in first["text"] and "自动判断：施压" in first["text"]
    labels = [b for b in buttons(first) if b.startswith("lb:")]
    assert len(labels) == 6 and any(b.startswith("sk:") for b in buttons(first))
    first_id = int(labels[0].split(":")[1])
    tg.feed(callback(OPERATOR, OPERATOR, f"sk:{first_id}", first))
    second = tg.api.sent(OPERATOR)[-1]
    assert "[姓名]" in second["text"] and "张伟" not in second["text"] and "13812345678" not in second["text"]
    second_id = int(next(b for b in buttons(second) if b.startswith("lb:")).split(":")[1])
    tg.feed(callback(OPERATOR, OPERATOR, f"lb:{second_id}:illegal_collection", second))
    assert tg.row(second_id)["label"] == "illegal_collection"
    done = tg.texts(OPERATOR)[-1]
    assert done.startswith(QUEUE_EMPTY) and "跳过了 2 条" in done
    edits = tg.api.calls_of("editMessageReplyMarkup")
    assert len(edits) == 2 and all("reply_markup" not in e.params for e in edits)  # handled: buttons gone

    tg.feed(message(OPERATOR, OPERATOR, "/review"))  # a new session: the skipped group comes back
    again = tg.api.sent(OPERATOR)[-1]
    assert f"#{first_id}" in again["text"]
    tg.feed(callback(OPERATOR, OPERATOR, f"lb:{first_id}:pressure", again))
    answered = tg.api.calls_of("answerCallbackQuery")[-1].params["text"]
    assert answered == "已标注为“施压”（2 条）"  # near-duplicates are labelled together
    assert tg.texts(OPERATOR)[-1] == QUEUE_EMPTY

    tg.feed(message(OPERATOR, OPERATOR, "/stats"))
    stats = tg.texts(OPERATOR)[-1]
    assert stats.startswith("<b>案例统计</b>\n案例 3 条") and "已标注 3" in stats
    assert not tg.refused()


def test_notifications_labelled_elsewhere_are_delivered_by_the_background_check(harness_factory):
    tg = harness_factory(LOW_CONFIDENCE=0.99)
    tg.feed(message(1, 1, SMS))
    case_id = case_id_of(tg.api.sent(1)[0])
    tg.feed(callback(1, 1, f"nt:{case_id}", tg.api.sent(1)[0]))
    # An operator labels it from the command line (another process, another connection).
    other = CaseStore(tg.store.path, b"k" * 32)
    Operators(other, low_confidence=0.6, knowledge=lambda: tg.service.analyzer.kb).label(case_id, "scam")
    other.close()

    channel = tg.channel
    channel.notify_interval = 0.05

    async def run_for_a_moment() -> None:
        channel.start_background(tg.app.bot, maintenance=False)
        await asyncio.sleep(0.3)
        await channel.stop_background()

    tg.loop.run_until_complete(run_for_a_moment())
    assert sum("人工复核后的结论是：疑似诈骗" in t for t in tg.texts(1)) == 1  # told once
    assert tg.store.db.execute("SELECT count(*) FROM case_notify").fetchone()[0] == 0
    assert channel._notifier is None and channel._maintenance is None


def test_operator_ids_must_be_numbers(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TelegramStartError, match="OPERATOR_IDS"):
        check_settings(make_settings(OPERATOR_IDS="12, @volunteer"))
    check_settings(make_settings(OPERATOR_IDS=" 12, 34 "))

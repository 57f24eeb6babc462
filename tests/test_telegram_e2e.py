"""End to end: ``python -m bot telegram`` as a real process against a fake Bot API on 127.0.0.1.

Polling (the issue's "done when" list, in order, on one bot process, then a screenshot read by OCR,
operators' /review, retention and a SIGHUP knowledge reload on the same process), webhook mode with and
without the secret token, and start-up failures. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import CaseStore, NewCase, keyed_hash
from tests.fake_bot_api import (
    BOT_USER,
    TOKEN,
    FakeBotAPI,
    buttons,
    callback,
    forwarded,
    message,
    sticker,
    utf16_len,
)
from tests.helpers import ROOT, BotChild, child_env, free_port, post_update, wait_listening

SECRET = "e2e-user-hash-secret-0123456789abcdef"
ALLOWED_METHODS = {
    "getMe", "deleteWebhook", "setWebhook", "getUpdates", "sendMessage", "sendDocument", "editMessageText",
    "editMessageReplyMarkup", "answerCallbackQuery", "sendChatAction", "setMyCommands", "getFile",
}  # fmt: skip
SMS = "【XX金融】您的借款已逾期20天，再不还钱就爆你通讯录，通知你家人和单位。"
FORWARDED_SMS = "【XX法院】你涉嫌恶意逾期已被立案，请于今日内将欠款转入指定安全账户，否则冻结你名下银行卡。"
GROUP = -100777
OPERATOR = 90
EXTRA_CASES: list[int] = []  # cases logged by tests that may be skipped (the screenshot needs OCR)


class BotProcess(BotChild):
    def __init__(self, fake: FakeBotAPI, base_url: str, tmp: Path, **env: str):
        self.db = tmp / "cases.db"
        full_env = (
            child_env()
            | {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_BASE_URL": base_url,
                "TELEGRAM_BASE_FILE_URL": fake.file_url,
                "TELEGRAM_RATE_LIMIT": "200",
                "SMSGUARD_DB": str(self.db),
                "SMSGUARD_SECRET": SECRET,
                "USER_RATE_LIMIT": "10",
            }
            | env
        )
        super().__init__(tmp, ["telegram"], full_env)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, params).fetchall()


def seed_old_case(db: Path, days: int = 400) -> int:
    """A case logged long ago, in the database the bot will open: retention purges it at start."""
    store = CaseStore(db, SECRET.encode())
    case_id = store.log_case(NewCase("telegram", "1", "很久以前的消息", None))
    assert case_id is not None
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(timespec="seconds")
    store.db.execute("UPDATE cases SET created_at = ? WHERE id = ?", [old, case_id])
    store.close()
    return case_id


@pytest.fixture(scope="module")
def polling(tmp_path_factory) -> Iterator[tuple[FakeBotAPI, BotProcess]]:
    fake = FakeBotAPI()
    base = fake.start()
    tmp = tmp_path_factory.mktemp("polling")
    seed_old_case(tmp / "cases.db")
    bot = BotProcess(fake, base, tmp, OPERATOR_IDS=str(OPERATOR))
    try:
        fake.wait_for(
            lambda: fake.calls_of("getUpdates") or bot.proc.poll() is not None, 60, "first getUpdates"
        )
        assert bot.proc.poll() is None, bot.stderr
        yield fake, bot
    finally:
        bot.stop()
        fake.stop()


def wait_sent(fake: FakeBotAPI, chat_id: int, n: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
    return fake.wait_for(
        lambda: len(fake.sent(chat_id)) >= n and fake.sent(chat_id), timeout, f"{n} to {chat_id}"
    )


def case_id_of(sent: dict[str, Any]) -> int:
    return int(next(b for b in buttons(sent) if b.startswith("fb:")).split(":")[1])


def test_start_pasted_and_forwarded_sms_get_verdicts_with_buttons(polling):
    fake, bot = polling
    fake.push(message(10, 10, "/start"))
    assert "全文粘贴" in wait_sent(fake, 10)[0]["text"]
    fake.push(message(10, 10, SMS))
    pasted = wait_sent(fake, 10, 2)[1]
    assert "违法催收" in pasted["text"] and pasted["parse_mode"] == "HTML"
    assert f"fb:{case_id_of(pasted)}:1" in buttons(pasted)
    fake.push(forwarded(20, 20, FORWARDED_SMS, origin_date=1_790_000_000))
    [fwd] = wait_sent(fake, 20)
    assert "疑似诈骗" in fwd["text"] and "转发的消息" in fwd["text"] and buttons(fwd)
    assert bot.rows("SELECT forward_origin, forwarded_at FROM cases WHERE id = ?", (case_id_of(fwd),)) == [
        ("hidden_user", "2026-09-21T14:13:20+00:00")
    ]
    assert fake.offsets and fake.offsets == sorted(fake.offsets)  # offset confirms what was fetched


def test_buttons_work_feedback_is_stored_in_sqlite(polling):
    fake, bot = polling
    fake.push(message(11, 11, SMS))
    [sent] = wait_sent(fake, 11)
    case_id = case_id_of(sent)
    fake.push(callback(11, 11, f"fb:{case_id}:1", sent))
    fake.wait_for(lambda: fake.calls_of("answerCallbackQuery"), what="answerCallbackQuery")
    fake.wait_for(lambda: bot.rows("SELECT feedback FROM cases WHERE id = ?", (case_id,)) == [("up",)], 5)
    fake.push(callback(11, 11, f"alt:{case_id}", sent))
    edits = fake.wait_for(lambda: fake.calls_of("editMessageReplyMarkup")[1:], what="keyboard edits")
    topic = next(b for b in buttons(edits[-1].params) if b.startswith("t:"))
    fake.push(callback(11, 11, topic, sent))
    assert len(wait_sent(fake, 11, 2)) == 2


def test_in_a_group_only_the_asker_can_rate_the_answer(polling):
    fake, bot = polling
    group = GROUP - 1
    fake.push(message(group, 71, f"@{BOT_USER['username']} {SMS}"))
    [sent] = wait_sent(fake, group)
    case_id = case_id_of(sent)
    EXTRA_CASES.append(case_id)
    answered = len(fake.calls_of("answerCallbackQuery"))
    fake.push(callback(group, 72, f"fb:{case_id}:0", sent))  # a bystander (or a forged button) presses 👎
    [answer] = fake.wait_for(
        lambda: fake.calls_of("answerCallbackQuery")[answered:], what="the bystander's answer"
    )
    assert "只有提问的人" in answer.params["text"]
    assert bot.rows("SELECT feedback FROM cases WHERE id = ?", (case_id,)) == [(None,)]
    fake.push(callback(group, 71, f"fb:{case_id}:1", sent))
    fake.wait_for(lambda: bot.rows("SELECT feedback FROM cases WHERE id = ?", (case_id,)) == [("up",)], 5)


def test_sticker_gets_a_helpful_reply(polling):
    fake, _ = polling
    fake.push(sticker(12, 12))
    [hint] = wait_sent(fake, 12)
    assert "贴纸" in hint["text"] and "复制" in hint["text"]


def test_group_is_silent_unless_addressed(polling):
    fake, bot = polling
    fake.push(message(GROUP, 70, SMS))  # not addressed: ignored, not even logged
    fake.push(message(GROUP, 70, f"@{BOT_USER['username']} {SMS}"))
    wait_sent(fake, GROUP)
    time.sleep(0.5)
    assert len(fake.sent(GROUP)) == 1
    user = keyed_hash(SECRET.encode(), "70")
    assert bot.rows("SELECT count(*) FROM cases WHERE user_hash = ?", (user,)) == [(1,)]


def test_a_flood_of_25_from_one_user_is_throttled_and_logged(polling):
    fake, bot = polling
    for i in range(25):
        fake.push(message(50, 50, f"第{i}条 {SMS}"))
    sent = wait_sent(fake, 50, 11)
    time.sleep(1.0)  # nothing more comes
    assert len(fake.sent(50)) == 11
    assert "发得有点快" in sent[10]["text"] and all("判断" in s["text"] for s in sent[:10])
    user = keyed_hash(SECRET.encode(), "50")
    assert bot.rows("SELECT throttled, count(*) FROM cases WHERE user_hash = ? GROUP BY 1", (user,)) == [
        (0, 10),
        (1, 15),
    ]


def test_429_and_500_from_the_server_are_survived(polling):
    fake, _ = polling
    fake.fail(429, methods={"sendMessage"}, times=2, retry_after=1)
    fake.push(message(60, 60, SMS))
    wait_sent(fake, 60, timeout=20)
    assert [c.status for c in fake.calls_of("sendMessage", ok_only=False) if c.params["chat_id"] == 60] == [
        429,
        429,
        200,
    ]
    fake.fail(500, methods={"getUpdates"}, seconds=2.0)
    fake.push(message(61, 61, SMS))  # fetched by the poll already waiting
    wait_sent(fake, 61)
    fake.push(message(62, 62, SMS))  # needs polling to recover from the 500s
    wait_sent(fake, 62, timeout=25)
    assert any(c.status == 500 for c in fake.calls_of("getUpdates", ok_only=False))


def test_retention_purged_the_old_case_at_start(polling):
    fake, bot = polling
    fake.wait_for(lambda: bot.rows("SELECT count(*) FROM cases WHERE text = '很久以前的消息'") == [(0,)], 10)


def test_a_rendered_screenshot_is_read_and_judged_with_the_text_shown(polling):
    from bot.ocr import ocr_available
    from tests.screenshots import find_cjk_font, render_sms_screenshot, to_jpeg

    font = find_cjk_font() if ocr_available() else None
    if font is None:
        pytest.skip("needs the ocr extra and a CJK font (Debian: fonts-noto-cjk)")
    fake, bot = polling
    jpeg = to_jpeg(render_sms_screenshot("10690000", [SMS], font=font), quality=80, max_side=1280)
    fake.add_file("shot-e2e", jpeg)
    sizes = [
        {
            "file_id": "shot-e2e",
            "file_unique_id": "se2e",
            "width": 591,
            "height": 1280,
            "file_size": len(jpeg),
        }
    ]
    fake.push(message(40, 40, None, photo=sizes))
    [answer] = wait_sent(fake, 40, timeout=90)  # the OCR models load on the first screenshot
    echo, _, verdict = answer["text"].partition("</i>\n")
    assert echo == "<i>📷 我从截图里读到的文字（个人信息已隐去）：" and "10690000" in verdict
    assert verdict.index("爆你通讯录") < verdict.index("判断：违法催收")
    assert answer["parse_mode"] == "HTML" and f"cp:{case_id_of(answer)}" in buttons(answer)
    assert "photos/shot-e2e" in fake.downloads
    assert any(c.params["chat_id"] == 40 for c in fake.calls_of("sendChatAction"))
    (text,) = bot.rows("SELECT text FROM cases WHERE id = ?", (case_id_of(answer),))[0]
    assert "爆你通讯录" in text
    EXTRA_CASES.append(case_id_of(answer))


def test_review_for_the_operator_refused_for_others(polling):
    fake, _ = polling
    fake.push(message(91, 91, "/review"))
    assert "只对复核案例的志愿者开放" in wait_sent(fake, 91)[0]["text"]
    fake.push(message(OPERATOR, OPERATOR, "/review"))
    [case] = wait_sent(fake, OPERATOR)
    assert "待复核 #" in case["text"] and sum(b.startswith("lb:") for b in buttons(case)) == 6
    scoped = [c for c in fake.calls_of("setMyCommands") if c.params.get("scope")]
    assert scoped and scoped[0].params["scope"] == {"type": "chat", "chat_id": OPERATOR}


def test_sighup_reloads_the_knowledge_and_the_bot_goes_on(polling):
    fake, bot = polling
    bot.proc.send_signal(signal.SIGHUP)
    fake.wait_for(lambda: "knowledge reloaded: version" in bot.stderr, 30, "the reload")
    fake.push(message(63, 63, SMS))
    assert "违法催收" in wait_sent(fake, 63)[0]["text"]


def test_sigint_stops_cleanly_and_every_case_was_logged(polling):
    fake, bot = polling
    assert bot.stop() == 0
    stderr = bot.stderr
    assert "Traceback" not in stderr, stderr
    assert TOKEN not in stderr and TOKEN.split(":")[1] not in stderr
    calls = fake.calls
    last_poll = fake.calls_of("getUpdates")[-1].params
    assert last_poll["timeout"] == 0 and last_poll["offset"] == max(fake.offsets)  # fetched updates confirmed
    assert {c.method for c in calls} <= ALLOWED_METHODS
    assert not [c for c in calls if c.status == 400], [c.params for c in calls if c.status == 400]
    assert all(utf16_len(c.params["text"]) <= 4096 for c in calls if c.method == "sendMessage")
    (cases,) = bot.rows("SELECT count(*) FROM cases")[0]
    # 10 pasted + 20 forwarded + 11 button test + 70 group + 25 flood + 60/61/62 + 63 after the reload
    # (+ the screenshot); the old case was purged
    assert cases == 1 + 1 + 1 + 1 + 25 + 3 + 1 + len(EXTRA_CASES)
    assert stderr.count("channel=telegram") == cases  # one log line per case


# --- webhook ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["wh-Secret_123", None])
def test_webhook_mode_with_and_without_secret(tmp_path, secret):
    fake = FakeBotAPI()
    base = fake.start()
    port = free_port()
    env = {
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/tg/hook",
        "TELEGRAM_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
    }
    if secret:
        env["TELEGRAM_WEBHOOK_SECRET"] = secret
    bot = BotProcess(fake, base, tmp_path, **env)
    try:
        fake.wait_for(lambda: fake.webhook or bot.proc.poll() is not None, 60, "setWebhook")
        assert bot.proc.poll() is None, bot.stderr
        assert fake.webhook is not None and fake.webhook["url"] == env["TELEGRAM_WEBHOOK_URL"]
        assert fake.webhook.get("secret_token") == secret
        wait_listening(port, bot.proc)
        update = {"update_id": 1} | message(30, 30, SMS)
        if secret:
            assert post_update(port, update, None) == 403
            assert post_update(port, update, "wrong") == 403
        assert post_update(port, update, secret) == 200
        # Answered only once handled: the reply is sent and the case logged before Telegram gets its 200.
        [sent] = fake.sent(30)
        assert "违法催收" in sent["text"] and buttons(sent)
        assert bot.rows("SELECT count(*) FROM cases") == [(1,)]
        assert post_update(port, {"nothing": "here"}, secret) == 400  # not an update
        assert post_update(port, [1, 2], secret) == 400
        assert not fake.calls_of("getUpdates", ok_only=False)
    finally:
        assert bot.stop() == 0
        fake.stop()
    assert "Traceback" not in bot.stderr and TOKEN not in bot.stderr
    assert bot.rows("SELECT count(*) FROM cases") == [(1,)]
    assert ("TELEGRAM_WEBHOOK_SECRET is unset" in bot.stderr) == (secret is None)


# --- start-up failures ------------------------------------------------------------------------------------


def test_wrong_or_missing_token_fails_with_one_line(tmp_path):
    fake = FakeBotAPI(token="987654321:AAOtherTokenTheServerKnows_abcdefgh")
    base = fake.start()
    try:
        bot = BotProcess(fake, base, tmp_path)
        returncode = bot.proc.wait(60)
        bot.stop()
        assert returncode == 1
    finally:
        fake.stop()
    lines = bot.stderr.strip().splitlines()
    assert lines == [
        "error: the Bot API rejected TELEGRAM_BOT_TOKEN (wrong or revoked token; check it with @BotFather)"
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "bot", "telegram"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")} | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "error: TELEGRAM_BOT_TOKEN is not set (create a bot with @BotFather to get one)"
    ]

"""Screenshots (issue 9): the layout rules on recognised boxes, then SMS screenshots rendered here (light and
dark, JPEG-compressed, with status bar and input box) through ``check --image`` as real processes and through
the service. The OCR tests skip when the ocr extra or a CJK font is missing; the model loads once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.ocr import (
    OcrUnavailable,
    ReadResult,
    ScreenshotReader,
    TextBox,
    format_read_text,
    layout_text,
    ocr_available,
)
from bot.service import (
    IMAGE_UNREADABLE_REPLY,
    NO_TEXT_REPLY,
    OCR_OFF_REPLY,
    THROTTLED_NOTICE,
    Incoming,
    Service,
)
from bot.store import CaseStore
from tests.helpers import ROOT, child_env, run_cli

W, H = 1080, 2340


def B(text: str, x0: float, y0: float, x1: float, y1: float, score: float = 0.99) -> TextBox:
    return TextBox(text, score, x0, y0, x1, y1)


# What the recogniser returned for a rendered 1080x2340 light-mode screenshot (coordinates as measured).
PHONE = [
    B("9:41", 56, 28, 158, 90),
    B("5G 76%", 663, 16, 948, 88),
    B("<", 36, 163, 71, 225, 0.5),
    B("106980095188", 376, 168, 704, 225),
    B("今天上午9:38", 438, 312, 645, 369),
    B("【XX金融】尊敬的张三先生，您在我", 90, 427, 760, 484),
    B("司的借款已逾期45天，欠款8,650.00", 70, 483, 751, 540),
    B("元。我司已将您的案件移交法务部门，", 67, 548, 768, 605),
    B("将于3个工作日内安排工作人员上门", 67, 607, 737, 664),
    B("核实您的还款能力并联系您的家人和", 73, 672, 749, 720),
    B("单位。请于今日18:00前还款。", 70, 728, 622, 785),
    B("今天上午9:40", 441, 840, 642, 889),
    B("退订回T", 56, 947, 240, 1016),
    B("你们是哪家公司？", 660, 1099, 996, 1168),
    B("已送达", 930, 1178, 1041, 1230),
    B("+", 45, 2165, 121, 2236),
    B("短信", 157, 2165, 279, 2239),
    B("发送", 959, 2174, 1044, 2231),
]


def test_layout_drops_status_bar_stamps_receipts_and_input_box_and_keeps_sender_and_bubbles():
    assert layout_text(PHONE, W, H).split("\n") == [
        "106980095188",
        "【XX金融】尊敬的张三先生，您在我司的借款已逾期45天，欠款8,650.00元。我司已将您的案件移交法务部门，"
        "将于3个工作日内安排工作人员上门核实您的还款能力并联系您的家人和单位。请于今日18:00前还款。",
        "退订回T",
        "你们是哪家公司？",
    ]


def test_layout_reads_in_order_whatever_order_the_boxes_come_in():
    assert layout_text(list(reversed(PHONE)), W, H) == layout_text(PHONE, W, H)


def test_layout_joins_fragments_of_one_row_left_to_right():
    boxes = [
        B("请点击", 70, 500, 250, 550),
        B("www.example.com", 520, 502, 900, 548),
        B("查看", 260, 501, 380, 549),
    ]
    assert layout_text(boxes, W, H) == "请点击查看www.example.com"
    assert (
        layout_text([B("Your", 70, 500, 200, 550), B("account", 230, 500, 420, 550)], W, H) == "Your account"
    )


def test_layout_keeps_a_sender_number_at_the_top_of_a_cropped_screenshot_but_not_a_clock():
    cropped = [
        B("9:41", 40, 10, 120, 50),
        B("95188", 480, 20, 600, 70),
        B("中国移动", 200, 15, 330, 55),
        B("【花呗】您的花呗账单已逾期，请及时还款。", 60, 200, 900, 250),
    ]
    assert layout_text(cropped, W, 1500) == "95188\n【花呗】您的花呗账单已逾期，请及时还款。"


def test_layout_keeps_dates_and_times_inside_a_bubble_and_drops_low_confidence_and_icons():
    boxes = [
        B("11月28日", 440, 300, 640, 340),  # a centred day stamp
        B("请于", 70, 400, 160, 450),
        B("12月05日", 170, 400, 360, 450),  # the same shape inside a bubble row: kept
        B("前还款", 370, 400, 500, 450),
        B("く", 30, 160, 70, 220),  # the back arrow
        B("口", 1000, 20, 1040, 60),  # the battery icon
        B("模糊不清", 70, 600, 300, 650, score=0.3),
    ]
    assert layout_text(boxes, W, H) == "请于12月05日前还款"


def test_layout_of_nothing_is_empty():
    assert layout_text([], W, H) == ""
    assert layout_text([B("9:41", 56, 28, 158, 90), B("发送", 959, 2174, 1044, 2231)], W, H) == ""


def test_read_text_echo_is_redacted_and_bounded():
    echo = format_read_text("尊敬的张三先生，请回电13812345678。" + "催" * 1000)
    assert "张三" not in echo and "13812345678" not in echo
    assert "[姓名]" in echo and "[手机号]" in echo
    assert len(echo) < 500 and echo.endswith("…")


# -- the service, without the model --------------------------------------------------------------------------


class StubReader(ScreenshotReader):
    def __init__(self, text: str = "", error: Exception | None = None):
        super().__init__()
        self.text, self.error, self.calls = text, error, 0

    def read(self, image: bytes) -> ReadResult:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return ReadResult(self.text, (), 1080, 2340, 0.1)


@pytest.fixture
def store(tmp_path):
    store = CaseStore(tmp_path / "cases.db", b"k" * 32)
    yield store
    store.close()


def photo(user: str = "u1", message_id: str | None = None) -> Incoming:
    return Incoming("telegram", user, "c1", "", message_id)


def test_screenshots_count_against_the_rate_limit_and_are_not_read_when_throttled(analyzer, store):
    reader = StubReader("再不还钱就爆你通讯录")
    service = Service(analyzer, store, user_rate_limit=2, screenshots=reader)
    assert service.handle(Incoming("telegram", "u1", "c1", "上门催收合法吗")) is not None
    assert service.handle_image(photo(), b"...").analysis.verdict == "illegal_collection"
    notice = service.handle_image(photo(), b"...")
    assert notice is not None and notice.text == THROTTLED_NOTICE
    assert service.handle_image(photo(), b"...") is None
    assert reader.calls == 1  # throttled images are logged, never read
    assert store.count() == 4
    assert store.db.execute("SELECT count(*) FROM cases WHERE throttled = 1").fetchone()[0] == 2


def test_screenshot_reply_leads_with_the_redacted_text_and_the_case_is_logged_redacted(analyzer, store):
    text = "10690000\n【XX金融】尊敬的张三先生，再不还款就联系你的家人和同事，回电13812345678。"
    service = Service(analyzer, store, screenshots=StubReader(text))
    out = service.handle_image(photo(message_id="9"), b"...")
    assert out is not None and out.read_text is not None and out.case_id is not None
    assert out.text.startswith(out.read_text + "\n\n")
    assert out.text.endswith(out.reply.as_text())
    assert "张三" not in out.text and "13812345678" not in out.text
    assert out.analysis.verdict == "illegal_collection"
    row = store.get_case(out.case_id)
    assert "张三" not in row["text"] and "联系你的家人" in row["text"]
    again = service.handle_image(photo(message_id="9"), b"...")  # redelivered: answered the same, logged once
    assert again.duplicate and again.text == out.text and store.count() == 1


@pytest.mark.parametrize(
    ("reader", "reply"),
    [
        (StubReader(error=OcrUnavailable("no extra")), OCR_OFF_REPLY),
        (StubReader("   \n "), NO_TEXT_REPLY),
    ],
)
def test_screenshot_without_the_extra_or_without_text_gets_a_hint_and_no_case(analyzer, store, reader, reply):
    out = Service(analyzer, store, screenshots=reader).handle_image(photo(), b"...")
    assert out is not None and out.text == reply and out.analysis is None
    assert store.count() == 0


def test_check_image_without_the_extra_exits_1_with_one_line(tmp_path):
    image = tmp_path / "shot.png"
    image.write_bytes(b"\x89PNG not really")
    proc = run_cli_blocking_rapidocr("check", "--image", str(image), "--json")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: reading screenshots needs the OCR extra: pip install '.[ocr]' (or: make run OCR=1)"
    ]


def run_bot(launcher: str, *args: str) -> subprocess.CompletedProcess[str]:
    """What ``python -m bot ARGS`` does, in a process that first runs ``launcher`` (as run_cli, otherwise)."""
    env = child_env()
    code = launcher + "\nimport runpy\nrunpy.run_module('bot', run_name='__main__')\n"
    argv = [sys.executable, "-c", code, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def run_cli_blocking_rapidocr(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` in a process where the ocr extra cannot be imported."""
    return run_bot("import sys\nsys.modules['rapidocr'] = None", *args)


# -- real OCR on rendered screenshots ------------------------------------------------------------------------

SCREENS = {
    "light-1080-q70": dict(
        sender="106980095188",
        bubbles=[
            "【XX金融】尊敬的张三先生，您在我司的借款已逾期45天，欠款8,650.00元。我司已将您的案件移交法务部门，"
            "将于3个工作日内安排工作人员上门核实，并联系您的家人和单位。",
            "退订回T",
        ],
        stamps=("今天 上午9:38", "今天 上午9:40"),
        dark=False,
        jpeg=dict(quality=70),
        verdict="illegal_collection",
        phrases=["106980095188", "已逾期45天", "8,650.00元", "联系您的家人和单位", "退订回T"],
    ),
    "dark-telegram-q60": dict(
        sender="10690123456789",
        bubbles=[
            "【京东金融】您的白条账户未注销，将影响征信。请添加客服QQ办理注销，并将额度转入监管账户。",
        ],
        stamps=("昨天 下午3:12",),
        dark=True,
        jpeg=dict(quality=60, max_side=1280),  # what Telegram makes of a photo
        verdict="scam",
        phrases=["10690123456789", "白条账户未注销", "转入监管账户"],
    ),
    "light-720-q50": dict(
        sender="12368",
        bubbles=[
            "【北京市朝阳区人民法院】您好，(2026)京0105民初23145号案件已立案，请登录人民法院在线服务查看起诉状，"
            "或致电12368核实。",
        ],
        stamps=("11月28日 上午10:05",),
        dark=False,
        jpeg=dict(quality=50),
        size=(720, 1560),
        verdict="legal_notice",
        phrases=["12368", "京0105民初23145号", "人民法院在线服务"],
    ),
}
CHROME = ["9:41", "76%", "5G", "已送达", "上午9:38", "下午3:12", "发送"]  # never part of the message


@pytest.fixture(scope="session")
def cjk_font():
    from tests.screenshots import find_cjk_font

    if not ocr_available():
        pytest.skip("the ocr extra is not installed: pip install '.[ocr]'")
    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk)")
    return font


@pytest.fixture(scope="session")
def screens(cjk_font, tmp_path_factory) -> dict[str, Path]:
    from tests.screenshots import render_sms_screenshot, to_jpeg

    folder = tmp_path_factory.mktemp("screens")
    paths = {}
    for name, case in SCREENS.items():
        width, height = case.get("size", (W, H))
        image = render_sms_screenshot(
            case["sender"],
            case["bubbles"],
            font=cjk_font,
            dark=case["dark"],
            width=width,
            height=height,
            stamps=case["stamps"],
            sent=["你们是谁？"] if not case["dark"] else (),
        )
        paths[name] = folder / f"{name}.jpg"
        paths[name].write_bytes(to_jpeg(image, **case["jpeg"]))
    return paths


@pytest.fixture(scope="session")
def reader(cjk_font) -> ScreenshotReader:
    reader = ScreenshotReader()
    reader.load()
    return reader


def assert_read(text: str, name: str) -> None:
    for phrase in SCREENS[name]["phrases"]:
        assert phrase in text, (phrase, text)
    for chrome in CHROME:
        assert chrome not in text, (chrome, text)
    assert text.startswith(SCREENS[name]["sender"] + "\n")


# Refuses name resolution and connections in the process: a model or font download would fail the test.
OFFLINE = (
    "import socket\n"
    "def _refuse(*a, **k): raise OSError('network access attempted')\n"
    "socket.getaddrinfo = socket.create_connection = socket.socket.connect = _refuse"
)


@pytest.mark.parametrize("name", ["light-1080-q70", "dark-telegram-q60"])
def test_check_image_json_in_a_real_process_offline(screens, name):
    args = ("check", "--image", str(screens[name]), "--json")
    proc = run_cli(*args) if name.startswith("light") else run_bot(OFFLINE, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    result = json.loads(proc.stdout)
    assert result["verdict"] == SCREENS[name]["verdict"], result["ocr_text"]
    assert_read(result["ocr_text"], name)
    for signal in result["signals"]:
        assert signal["evidence"] in result["ocr_text"]


def test_check_image_plain_shows_the_redacted_text_before_the_verdict(screens):
    proc = run_cli("check", "--image", str(screens["light-1080-q70"]))
    assert proc.returncode == 0, proc.stderr
    echo, _, reply = proc.stdout.partition("\n\n")
    assert echo.startswith("📷") and "尊敬的[姓名]先生" in echo and "张三" not in echo
    assert "判断：" in reply.lstrip().split("\n")[0]


def test_check_image_that_is_not_an_image_exits_1(tmp_path):
    if not ocr_available():
        pytest.skip("the ocr extra is not installed: pip install '.[ocr]'")
    bogus = tmp_path / "shot.jpg"
    bogus.write_bytes(b"this is text, not a JPEG")
    proc = run_cli("check", "--image", str(bogus))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {bogus}: not a readable image (UnidentifiedImageError)"


@pytest.mark.parametrize("name", list(SCREENS))
def test_service_reads_rendered_screenshots_to_the_right_verdict(analyzer, store, reader, screens, name):
    service = Service(analyzer, store, screenshots=reader)
    out = service.handle_image(photo(message_id=name), screens[name].read_bytes())
    assert out is not None and out.analysis is not None and out.read_text is not None
    assert out.analysis.verdict == SCREENS[name]["verdict"], out.read_text
    assert_read(out.read_text.split("\n", 1)[1], name)  # the echo's body: the text read, redacted
    assert out.text.startswith(out.read_text) and out.case_id is not None


def test_service_answers_an_unreadable_or_blank_image_with_a_hint(analyzer, store, reader):
    from PIL import Image

    service = Service(analyzer, store, screenshots=reader)
    assert service.handle_image(photo(), b"GIF89a broken").text == IMAGE_UNREADABLE_REPLY
    blank = io.BytesIO()
    Image.new("RGB", (720, 1560), (255, 255, 255)).save(blank, format="PNG")
    assert service.handle_image(photo(), blank.getvalue()).text == NO_TEXT_REPLY
    assert store.count() == 0

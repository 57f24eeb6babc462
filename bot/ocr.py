"""Read the text of an SMS screenshot on this machine (RapidOCR + onnxruntime): no cloud, no download.

The one module that owns RapidOCR. It is an optional extra (``pip install '.[ocr]'``, ``make run OCR=1``):
this module imports without it, and :class:`OcrUnavailable` says how to enable it when it is missing.

- The models are RapidOCR's defaults, shipped inside its wheel (PP-OCRv6 small detector and recogniser);
  nothing here selects another model or a download. Its drawing path (which fetches a font) is never used.
- :class:`ScreenshotReader` loads the models once, lazily, under a lock; :meth:`ScreenshotReader.read` is
  blocking and thread-safe, so a chat adapter calls it off its event loop (one image at a time: on two cores
  a second inference in parallel gains nothing).
- Speed: the detector runs on a copy scaled down to about 0.3 megapixels (phone text stays about 15 px
  high), the recogniser on crops of the full-size image, so each line is read at full resolution.
- :func:`layout_text` turns the recognised boxes into one message: it drops the status bar, time stamps,
  delivery receipts and the input box, keeps the sender number, and joins the bubbles in reading order.
"""

from __future__ import annotations

import importlib.util
import io
import math
import re
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.redact import redact

ENABLE_HINT = "pip install '.[ocr]' (or: make run OCR=1)"
MAX_PIXELS = 40_000_000  # larger images are refused (a decompression bomb, or no screenshot)
MAX_REC_WIDTH = 1440  # crops come from the image scaled down to at most this width
DET_PIXELS = 384 * 832  # the detector's input area (a 1080x2340 screenshot at 36 %)
DET_MIN_SHORT_SIDE = 320  # but never narrower than this, so text in long screenshots stays detectable
MIN_SCORE = 0.5  # recognised lines below this confidence are dropped (RapidOCR's own default)
ECHO_CHARS = 400  # at most this much of the read text is echoed back to the user

# RapidOCR settings: sizes are ours (see ``_det_scale``); the models stay RapidOCR's defaults.
ENGINE_PARAMS: dict[str, Any] = {
    "Global.log_level": "error",  # it logs to its own stderr handler; our failures are raised instead
    "Global.use_cls": False,  # screenshots are upright: no 180° text-direction classifier
    "Global.max_side_len": 8192,
    "Det.limit_type": "max",
    "Det.limit_side_len": 8192,
    # Short crops (a clock, "发送") are padded to this width before recognition; the default 320 makes a
    # four-character label cost as much as a ten-character line (measured: a third less recognition time).
    "Rec.rec_img_shape": [3, 48, 160],
}


class OcrUnavailable(RuntimeError):
    """The OCR extra is not installed, or its models cannot be loaded."""


class OcrImageError(ValueError):
    """The bytes are not an image this module can read."""


def ocr_available() -> bool:
    """Whether the OCR extra is installed (without importing or loading it)."""
    return all(importlib.util.find_spec(name) is not None for name in ("rapidocr", "onnxruntime", "PIL"))


@dataclass(frozen=True)
class TextBox:
    """One recognised line fragment, in pixels of the original image."""

    text: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def xc(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def yc(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class ReadResult:
    text: str  # the message as read: sender number, then the bubbles, in reading order
    boxes: tuple[TextBox, ...]  # everything recognised, before layout
    width: int
    height: int
    seconds: float


class ScreenshotReader:
    """RapidOCR with its default models, loaded once on first use (or by :meth:`load`)."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def load(self) -> float:
        """Load the models now (seconds taken; 0.0 when already loaded). Raises :class:`OcrUnavailable`."""
        with self._lock:
            if self._engine is not None:
                return 0.0
            started = time.perf_counter()
            self._engine = _load_engine()
            return time.perf_counter() - started

    def read(self, image: bytes) -> ReadResult:
        """The text of a screenshot. Raises :class:`OcrImageError` for unreadable bytes and
        :class:`OcrUnavailable` when the extra is missing."""
        if not ocr_available():
            raise OcrUnavailable(f"reading screenshots needs the OCR extra: {ENABLE_HINT}")
        started = time.perf_counter()
        rgb = _decode(image)
        with self._lock:  # RapidOCR keeps per-call flags on the engine: one call at a time
            if self._engine is None:
                self._engine = _load_engine()
            boxes = _recognise(self._engine, rgb)
        text = layout_text(boxes, rgb.width, rgb.height)
        return ReadResult(text, tuple(boxes), rgb.width, rgb.height, time.perf_counter() - started)


def _load_engine() -> Any:
    try:
        import numpy as np
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(f"reading screenshots needs the OCR extra ({exc}): {ENABLE_HINT}") from exc
    try:
        engine = RapidOCR(params=dict(ENGINE_PARAMS))
        # RapidOCR creates each model's session on first use: do both now, not on the user's first image.
        blank = np.full((48, 256, 3), 255, dtype=np.uint8)
        engine(blank, use_det=True, use_cls=False, use_rec=False)
        engine(blank, use_det=False, use_cls=False, use_rec=True)
    except Exception as exc:  # a model missing from the wheel would make RapidOCR try to download it
        raise OcrUnavailable(f"the OCR models could not be loaded ({exc}); reinstall: {ENABLE_HINT}") from exc
    return engine


def _decode(data: bytes) -> Any:
    """An RGB ``PIL.Image``, upright per its EXIF orientation."""
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise OcrUnavailable(f"reading screenshots needs the OCR extra ({exc}): {ENABLE_HINT}") from exc
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise OcrImageError(f"image too large ({opened.width}x{opened.height})")
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except OcrImageError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is OSError
        raise OcrImageError(f"not a readable image ({exc.__class__.__name__})") from exc
    if image.width < 8 or image.height < 8:
        raise OcrImageError(f"image too small ({image.width}x{image.height})")
    return image


def _det_scale(width: int, height: int) -> float:
    return min(1.0, max(math.sqrt(DET_PIXELS / (width * height)), DET_MIN_SHORT_SIDE / min(width, height)))


def _bgr(image: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def _recognise(engine: Any, rgb: Any) -> list[TextBox]:
    from PIL import Image

    width, height = rgb.size
    rec_scale = min(1.0, MAX_REC_WIDTH / width)
    rec_image = rgb
    if rec_scale < 1.0:
        rec_image = rgb.resize(
            (round(width * rec_scale), round(height * rec_scale)), Image.Resampling.LANCZOS
        )
    det_scale = _det_scale(width, height)
    det_size = (max(1, round(width * det_scale)), max(1, round(height * det_scale)))
    det_image = rgb.resize(det_size, Image.Resampling.BOX) if det_scale < 1.0 else rgb

    found = engine(_bgr(det_image), use_det=True, use_cls=False, use_rec=False)
    quads = getattr(found, "boxes", None)
    if quads is None or len(quads) == 0:
        return []
    source = _bgr(rec_image)
    fx, fy = rec_image.width / det_image.width, rec_image.height / det_image.height
    boxes = []
    for quad in quads:
        xs = [float(p[0]) * fx for p in quad]
        ys = [float(p[1]) * fy for p in quad]
        x0, x1 = max(0, math.floor(min(xs))), min(rec_image.width, math.ceil(max(xs)))
        y0, y1 = max(0, math.floor(min(ys))), min(rec_image.height, math.ceil(max(ys)))
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        read = engine(source[y0:y1, x0:x1], use_det=False, use_cls=False, use_rec=True)
        texts, scores = getattr(read, "txts", None), getattr(read, "scores", None)
        if not texts or not scores:
            continue
        back = 1.0 / rec_scale
        boxes.append(TextBox(str(texts[0]), float(scores[0]), x0 * back, y0 * back, x1 * back, y1 * back))
    return boxes


# -- layout: from recognised boxes to the message --------------------------------------------------------

STATUS_BAND = 0.06  # the top of the screen: clock, carrier, signal, battery
INPUT_BAND = 0.88  # the bottom of the screen: the input box, its buttons, the navigation bar

_IDEOGRAPH = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# What a status bar shows: clock, battery percentage, network type, stray icon glyphs (no 5-digit numbers:
# those are a sender number at the top of a cropped screenshot).
_STATUS = re.compile(r"^[0-9:：%.,\s|·•°*#+\-/()GgEeLlTtHhDdVvOoWwIiFfNnRr]*$")
_CARRIER = re.compile(
    r"^(?:中国)?(?:移动|联通|电信|广电)\s*[0-9a-z+]*$|^china\s*(?:mobile|unicom|telecom)$", re.I
)
_DAY = (
    r"(?:(?:[0-9]{4}\s*[年/.-]\s*)?[0-9]{1,2}\s*[月/.-]\s*[0-9]{1,2}\s*日?"
    r"|今天|昨天|前天|刚刚|星期[一二三四五六日天]|周[一二三四五六日天]|礼拜[一二三四五六日天])"
)
_CLOCK = r"(?:(?:上午|下午|中午|晚上|早上|凌晨|傍晚)\s*)?[0-2]?[0-9]\s*[:：]\s*[0-5][0-9](?:\s*(?:am|pm))?"
_STAMP = re.compile(rf"^(?:{_DAY}\s*)*{_CLOCK}(?:\s*{_DAY})?$", re.I)  # anything with a clock time
_DAY_ONLY = re.compile(rf"^(?:{_DAY}\s*)+$")
_RECEIPT = re.compile(
    r"^(?:已送达|已读|已发送|送达|未送达|发送失败|delivered|read|sent|not delivered)$", re.I
)
_LABEL = re.compile(
    r"^(?:短信/彩信|短信|彩信|信息|sms/mms|sms|mms|imessage|text message|rcs\S{0,8}|rcs信息)$", re.I
)
_INPUT = re.compile(
    r"^(?:短信|信息|消息|彩信|发送|回复|输入\S{0,8}|发(?:送)?(?:短信|信息|消息)|文本(?:消息|信息)|"
    r"imessage|text message|rcs\S{0,10}|chat message|message|send)$",
    re.I,
)


def _is_chrome(box: TextBox, text: str, width: float, height: float) -> bool:
    """Status bar, time stamp, receipt, label or input box: screen furniture, not the message."""
    top = box.yc < STATUS_BAND * height
    bottom = box.yc > INPUT_BAND * height
    centered = abs(box.xc - width / 2) < 0.08 * width and box.x1 - box.x0 < 0.7 * width
    compact = re.sub(r"\s+", "", text)
    if _STAMP.match(compact) or _RECEIPT.match(text):
        return True
    if top and (_CARRIER.match(text) or (_STATUS.match(text) and not re.search(r"[0-9]{5}", compact))):
        return True
    if bottom and _INPUT.match(text):
        return True
    if (centered or top or bottom) and (_DAY_ONLY.match(compact) or _LABEL.match(text)):
        return True
    if len(compact) == 1:  # a lone glyph: an icon (back arrow, "+", battery) read as a character
        return top or bottom or not (_IDEOGRAPH.match(compact) or compact.isdigit())
    return False


def _join(parts: Iterable[str]) -> str:
    """Concatenate fragments of one line: no space in Chinese, one between two ASCII words."""
    out = ""
    for part in parts:
        if out and out[-1].isascii() and out[-1].isalnum() and part[0].isascii() and part[0].isalnum():
            out += " "
        out += part
    return out


def layout_text(boxes: Sequence[TextBox], width: float, height: float) -> str:
    """The message on a screenshot: sender number and bubbles in reading order, one line per bubble."""
    kept = []
    for box in boxes:
        text = box.text.strip()
        if text and box.score >= MIN_SCORE and not _is_chrome(box, text, width, height):
            kept.append((box, text))
    if not kept:
        return ""
    kept.sort(key=lambda item: (item[0].yc, item[0].x0))
    # Rows: fragments that overlap vertically by at least half the smaller height.
    rows: list[list[tuple[TextBox, str]]] = []
    for box, text in kept:
        if rows:
            top, bottom = min(b.y0 for b, _ in rows[-1]), max(b.y1 for b, _ in rows[-1])
            overlap = min(bottom, box.y1) - max(top, box.y0)
            if overlap >= 0.5 * min(bottom - top, box.height):
                rows[-1].append((box, text))
                continue
        rows.append([(box, text)])
    spans = [(min(b.y0 for b, _ in row), max(b.y1 for b, _ in row)) for row in rows]
    line_height = statistics.median(y1 - y0 for y0, y1 in spans)
    # Bubbles: rows closer than most of a line height belong together (a wrapped line); a wider gap is a
    # bubble's padding, a removed time stamp or the header's edge.
    blocks: list[list[str]] = []
    for i, row in enumerate(rows):
        line = _join(text for _, text in sorted(row, key=lambda item: item[0].x0))
        if i and spans[i][0] - spans[i - 1][1] < 0.9 * line_height:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return "\n".join("".join(block) for block in blocks)


def format_read_text(text: str, limit: int = ECHO_CHARS) -> str:
    """What the user sees before the verdict: the read text, redacted, so a misreading is noticed."""
    shown = redact(text)
    if len(shown) > limit:
        shown = shown[:limit].rstrip() + "…"
    return "📷 我从截图里读到的文字（个人信息已隐去）：\n" + shown

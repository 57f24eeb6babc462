"""Render phone SMS screenshots with Pillow for the OCR tests and benchmark (no image files in the repo).

A screenshot has what a real one has: a status bar (clock, signal, battery), a header with the sender
number, a centred time stamp, received bubbles, and an input box with a send button at the bottom. Light and
dark themes; :func:`to_jpeg` compresses like a messenger does. Needs Pillow and a CJK font (:func:`find_cjk_font`
returns ``None`` when none is installed, so callers can skip).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

# Debian's fonts-noto-cjk first (what .ci/run installs), then other common CJK fonts.
_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
)


@dataclass(frozen=True)
class CjkFont:
    path: str
    index: int  # face inside a .ttc collection (Noto's Simplified Chinese face where there is one)

    def at(self, size: int) -> Any:
        from PIL import ImageFont

        return ImageFont.truetype(self.path, size, index=self.index)


def _covers_chinese(path: str, index: int) -> bool:
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(path, 40, index=index)
    except OSError:
        return False
    # A font without these glyphs draws the same "tofu" box for all of them.
    boxes = {font.getmask("催").getbbox(), font.getmask("收").getbbox(), font.getmask("短").getbbox()}
    return len(boxes) > 1


@lru_cache(maxsize=1)
def find_cjk_font() -> CjkFont | None:
    """An installed font that draws Simplified Chinese, or ``None``."""
    try:
        from PIL import ImageFont
    except ImportError:
        return None
    paths = [p for p in _FONT_CANDIDATES if Path(p).is_file()]
    if not paths and shutil.which("fc-match"):
        proc = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True, text=True, check=False
        )
        if proc.returncode == 0 and proc.stdout.strip():
            paths.append(proc.stdout.strip())
    for path in paths:
        faces = range(16) if path.lower().endswith(".ttc") else range(1)
        fallback = None
        for index in faces:
            try:
                name = " ".join(ImageFont.truetype(path, 20, index=index).getname())
            except OSError:
                break
            if not _covers_chinese(path, index):
                continue
            if fallback is None:
                fallback = CjkFont(path, index)
            if " SC" in name and "Mono" not in name:
                return CjkFont(path, index)
        if fallback is not None:
            return fallback
    return None


@dataclass(frozen=True)
class Theme:
    background: tuple[int, int, int]
    text: tuple[int, int, int]
    secondary: tuple[int, int, int]
    bubble_in: tuple[int, int, int]
    bubble_out: tuple[int, int, int]
    text_out: tuple[int, int, int]
    input_fill: tuple[int, int, int]
    accent: tuple[int, int, int]


LIGHT = Theme(
    background=(255, 255, 255),
    text=(17, 17, 17),
    secondary=(140, 140, 145),
    bubble_in=(233, 233, 235),
    bubble_out=(52, 199, 89),
    text_out=(255, 255, 255),
    input_fill=(246, 246, 248),
    accent=(0, 122, 255),
)
DARK = Theme(
    background=(0, 0, 0),
    text=(240, 240, 240),
    secondary=(142, 142, 147),
    bubble_in=(38, 38, 41),
    bubble_out=(48, 160, 72),
    text_out=(255, 255, 255),
    input_fill=(28, 28, 30),
    accent=(10, 132, 255),
)


_NO_LINE_START = set("，。、；：！？）】》”’,.;:!?)")


def _wrap(text: str, font: Any, max_width: float) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for char in paragraph:
            # Closing punctuation never starts a line (as phones wrap Chinese text).
            if line and font.getlength(line + char) > max_width and char not in _NO_LINE_START:
                lines.append(line)
                line = char
            else:
                line += char
        lines.append(line)
    return lines


def render_sms_screenshot(
    sender: str,
    bubbles: Sequence[str],
    *,
    font: CjkFont,
    dark: bool = False,
    width: int = 1080,
    height: int = 2340,
    clock: str = "9:41",
    battery: str = "76%",
    stamps: Sequence[str] = ("今天 上午9:38",),
    sent: Sequence[str] = (),
    placeholder: str = "短信",
) -> Any:
    """An RGB ``PIL.Image`` of a messaging app showing ``bubbles`` received from ``sender``.

    ``stamps[i]`` is drawn centred above bubble ``i`` (fewer stamps than bubbles: the rest have none);
    ``sent`` are the user's own replies, drawn on the right after the received bubbles.
    """
    from PIL import Image, ImageDraw

    theme = DARK if dark else LIGHT
    s = width / 1080  # every size below is for a 1080-pixel-wide screen
    image = Image.new("RGB", (width, height), theme.background)
    draw = ImageDraw.Draw(image)

    # Status bar: clock left; signal bars, network type and battery right.
    bar = font.at(round(38 * s))
    draw.text((round(70 * s), round(28 * s)), clock, font=bar, fill=theme.text)
    x = width - round(400 * s)
    for i in range(4):
        h = round((10 + 7 * i) * s)
        draw.rectangle(
            (x + round(16 * s) * i, round(68 * s) - h, x + round(16 * s) * i + round(9 * s), round(68 * s)),
            fill=theme.text,
        )
    draw.text((x + round(78 * s), round(28 * s)), "5G", font=bar, fill=theme.text)
    draw.text((width - round(230 * s), round(28 * s)), battery, font=bar, fill=theme.text)
    bx = width - round(120 * s)
    draw.rounded_rectangle(
        (bx, round(36 * s), bx + round(64 * s), round(68 * s)),
        round(8 * s),
        outline=theme.text,
        width=max(2, round(3 * s)),
    )
    draw.rectangle((bx + round(6 * s), round(42 * s), bx + round(44 * s), round(62 * s)), fill=theme.text)

    # Header: back chevron, the sender's number centred, a hairline below.
    draw.line(
        [(round(60 * s), round(170 * s)), (round(40 * s), round(195 * s)), (round(60 * s), round(220 * s))],
        fill=theme.accent,
        width=max(2, round(6 * s)),
    )
    title = font.at(round(46 * s))
    draw.text((width / 2, round(195 * s)), sender, font=title, fill=theme.text, anchor="mm")
    draw.line([(0, round(270 * s)), (width, round(270 * s))], fill=theme.secondary, width=1)

    body = font.at(round(42 * s))
    small = font.at(round(30 * s))
    pad = round(34 * s)
    line_height = round(60 * s)
    max_text = width * 0.70 - 2 * pad
    y = round(320 * s)

    def bubble(text: str, outgoing: bool) -> None:
        nonlocal y
        lines = _wrap(text, body, max_text)
        text_width = max(body.getlength(line) for line in lines)
        w, h = text_width + 2 * pad, len(lines) * line_height + 2 * pad - round(10 * s)
        left = width - round(40 * s) - w if outgoing else round(40 * s)
        fill, ink = (theme.bubble_out, theme.text_out) if outgoing else (theme.bubble_in, theme.text)
        draw.rounded_rectangle((left, y, left + w, y + h), round(40 * s), fill=fill)
        for i, line in enumerate(lines):
            draw.text((left + pad, y + pad + i * line_height), line, font=body, fill=ink, anchor="la")
        y += round(h + 36 * s)

    for i, text in enumerate(bubbles):
        if i < len(stamps):
            draw.text(
                (width / 2, y + round(20 * s)), stamps[i], font=small, fill=theme.secondary, anchor="mm"
            )
            y += round(70 * s)
        bubble(text, outgoing=False)
    for text in sent:
        bubble(text, outgoing=True)
        draw.text(
            (width - round(50 * s), y - round(20 * s)),
            "已送达",
            font=small,
            fill=theme.secondary,
            anchor="rm",
        )
        y += round(30 * s)

    # Input box: a "+" button, the rounded field with its placeholder, a send button; the gesture bar below.
    top = height - round(190 * s)
    cx, cy, r = round(80 * s), top + round(50 * s), round(36 * s)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=theme.input_fill)
    draw.line([(cx - r // 2, cy), (cx + r // 2, cy)], fill=theme.secondary, width=max(2, round(5 * s)))
    draw.line([(cx, cy - r // 2), (cx, cy + r // 2)], fill=theme.secondary, width=max(2, round(5 * s)))
    draw.rounded_rectangle(
        (round(140 * s), top, width - round(150 * s), top + round(100 * s)),
        round(50 * s),
        fill=theme.input_fill,
        outline=theme.secondary,
        width=1,
    )
    draw.text(
        (round(180 * s), top + round(50 * s)), placeholder, font=body, fill=theme.secondary, anchor="lm"
    )
    draw.text(
        (width - round(80 * s), top + round(50 * s)), "发送", font=small, fill=theme.accent, anchor="mm"
    )
    draw.rounded_rectangle(
        (
            width / 2 - round(140 * s),
            height - round(30 * s),
            width / 2 + round(140 * s),
            height - round(20 * s),
        ),
        round(5 * s),
        fill=theme.text,
    )
    return image


def to_jpeg(image: Any, quality: int = 70, max_side: int | None = None) -> bytes:
    """JPEG bytes of ``image``; ``max_side`` scales it down first (Telegram sends photos at most 1280 px)."""
    from PIL import Image

    if max_side is not None and max(image.size) > max_side:
        ratio = max_side / max(image.size)
        image = image.resize(
            (round(image.width * ratio), round(image.height * ratio)), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()

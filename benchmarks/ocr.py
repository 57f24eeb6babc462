"""Screenshot reading (bot/ocr.py): model load time, seconds per image with the model loaded, peak memory.

    .venv/bin/python benchmarks/ocr.py [--repeat N] [--output FILE]

Needs the ocr extra and a CJK font (Debian: fonts-noto-cjk). The screenshots are rendered here
(tests/screenshots.py), as a phone saves them (1080x2340 JPEG, what ``check --image`` and an image document
get) and as Telegram sends a photo (longest side 1280). Each image is read ``--repeat`` times after one
warm-up read; the table gives the median and the slowest wall time, and the CPU time of the median run (both
cores together). Also checked: that every bubble was read exactly and nothing of the screen's furniture
slipped in. Peak memory is this process's maximum RSS (``getrusage``), before and after the model is loaded.
Prints Markdown; ``--output FILE`` also writes it to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.ocr import ScreenshotReader, ocr_available  # noqa: E402
from tests.screenshots import find_cjk_font, render_sms_screenshot, to_jpeg  # noqa: E402

# Messages written for this benchmark (none taken from a data set): short, typical, a long conversation.
SAMPLES = {
    "short reminder, dark": dict(
        sender="95588",
        bubbles=["【工商银行】您尾号8812的信用卡本期应还1,250.00元，到期还款日12月05日。"],
        dark=True,
    ),
    "collection SMS, light": dict(
        sender="106980095188",
        bubbles=[
            "【XX金融】尊敬的张三先生，您在我司的借款已逾期45天，欠款8,650.00元。我司已将您的案件移交法务部门，"
            "将于3个工作日内安排工作人员上门核实，并联系您的家人和单位。",
            "退订回T",
        ],
        dark=False,
    ),
    "conversation of 5 bubbles, light": dict(
        sender="13812345678",
        bubbles=[
            "你好，我是XX资产管理公司的，你在XX平台的欠款已经转到我们这里了。",
            "今天下午五点前不处理，我们就按流程给你的紧急联系人打电话，并发函到你户籍地村委会。",
            "你现在还可以申请减免，只需要先转5000元到我们对公账户，账号稍后发你。",
            "别以为换了号码就找不到你，我们有你全部的通讯录。",
            "再不回复，后果自负。",
        ],
        dark=False,
    ),
}
FURNITURE = ("9:41", "76%", "已送达", "发送", "上午9:38")
SIZES = {
    "1080x2340 JPEG q80": dict(quality=80),
    "Telegram photo (≤1280 px) q80": dict(quality=80, max_side=1280),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed reads per image (default 5)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if not ocr_available():
        print("error: the ocr extra is not installed: pip install '.[ocr]'", file=sys.stderr)
        return 1
    font = find_cjk_font()
    if font is None:
        print("error: no CJK font installed (Debian: apt-get install fonts-noto-cjk)", file=sys.stderr)
        return 1

    images = []
    for name, sample in SAMPLES.items():
        picture = render_sms_screenshot(
            sample["sender"], sample["bubbles"], font=font, dark=sample["dark"], sent=["你们是谁？"]
        )
        for size, jpeg in SIZES.items():
            images.append((name, size, to_jpeg(picture, **jpeg), sample))

    rss_before = peak_rss_mb()
    reader = ScreenshotReader()
    load_seconds = reader.load()
    rss_loaded = peak_rss_mb()

    rows = []
    all_wall = []
    for name, size, data, sample in images:
        result = reader.read(data)  # warm-up
        runs = []
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            result = reader.read(data)
            runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        runs.sort()
        median = runs[len(runs) // 2]
        all_wall += [w for w, _ in runs]
        flat = result.text.replace("\n", "")
        exact = sum(b in flat for b in sample["bubbles"])
        leaked = [f for f in FURNITURE if f in result.text]
        rows.append(
            f"| {name} | {size} | {result.width}x{result.height} | {median[0]:.2f} | {runs[-1][0]:.2f} "
            f"| {median[1]:.2f} | {exact}/{len(sample['bubbles'])} | {', '.join(leaked) or 'none'} |"
        )
    rss_after = peak_rss_mb()

    load1, load5, _ = os.getloadavg()
    lines = [
        f"## Screenshot reading ({dt.date.today().isoformat()})",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; load average at the end {load1:.2f} (1 min) / {load5:.2f} (5 min).",
        "",
        f"- model load (imports + both ONNX sessions + warm-up): **{load_seconds:.2f} s**",
        f"- seconds per image with the model loaded, over all {len(all_wall)} timed reads: median "
        f"**{statistics.median(all_wall):.2f} s**, slowest {max(all_wall):.2f} s",
        f"- peak RSS: {rss_before:.0f} MB before loading, {rss_loaded:.0f} MB loaded, "
        f"**{rss_after:.0f} MB** after reading (the OCR adds about {rss_after - rss_before:.0f} MB)",
        "",
        "| screenshot | as | pixels | median s | slowest s | CPU s (median run) | bubbles read exactly "
        "| furniture in text |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    report = "\n".join(lines)
    print(report)
    if args.output is not None:
        args.output.write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

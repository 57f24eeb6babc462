"""Score labelled messages and questions (``smsguard eval``), as ../shared/eval/README.md defines it."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.core import Analysis
from bot.knowledge.models import VERDICT_ORDER


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    accept: tuple[str, ...] | None
    topics: tuple[str, ...] | None


class EvalFileError(ValueError):
    pass


def parse_rows(lines: Iterable[str]) -> list[Row]:
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise EvalFileError(f"line {number}: expected an object with a string 'text'")
        accept, topics = obj.get("accept"), obj.get("topics")
        if accept is None and topics is None:
            raise EvalFileError(f"line {number}: needs 'accept' (verdicts) or 'topics' (topic ids)")
        if accept is not None and (not accept or any(v not in VERDICT_ORDER for v in accept)):
            raise EvalFileError(
                f"line {number}: 'accept' must list verdicts among {', '.join(VERDICT_ORDER)}"
            )
        rows.append(
            Row(
                str(obj.get("id", number)),
                obj["text"],
                tuple(accept) if accept is not None else None,
                tuple(topics) if topics is not None else None,
            )
        )
    return rows


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def evaluate(rows: list[Row], analyze: Callable[[str], Analysis]) -> dict[str, Any]:
    latencies: list[float] = []
    verdict_rows = correct = 0
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    predicted: Counter[str] = Counter()
    right_by_pred: Counter[str] = Counter()
    gold_n: Counter[str] = Counter()
    right_by_gold: Counter[str] = Counter()
    scam_n = scam_hit = unrelated_n = unrelated_alarm = 0
    topic_n = top1 = top3 = 0
    misses: list[dict[str, Any]] = []

    for row in rows:
        started = time.perf_counter()
        result = analyze(row.text)
        latencies.append((time.perf_counter() - started) * 1000)
        if row.accept is not None:
            verdict_rows += 1
            ok = result.verdict in row.accept
            gold = result.verdict if ok else row.accept[0]
            correct += ok
            confusion[gold][result.verdict] += 1
            predicted[result.verdict] += 1
            gold_n[gold] += 1
            if ok:
                right_by_pred[result.verdict] += 1
                right_by_gold[gold] += 1
            else:
                misses.append({"id": row.id, "accept": list(row.accept), "got": result.verdict})
            if row.accept == ("scam",):
                scam_n += 1
                scam_hit += result.verdict == "scam"
            if row.accept == ("unrelated",):
                unrelated_n += 1
                unrelated_alarm += result.verdict != "unrelated"
        if row.topics is not None:
            topic_n += 1
            ranked = [t.id for t in result.topics]
            top1 += bool(ranked[:1]) and ranked[0] in row.topics
            top3 += any(t in row.topics for t in ranked[:3])
            if not ranked[:1] or ranked[0] not in row.topics:
                misses.append({"id": row.id, "topics": list(row.topics), "got_topics": ranked[:3]})

    per_verdict = {
        label: {
            "precision": _ratio(right_by_pred[label], predicted[label]),
            "recall": _ratio(right_by_gold[label], gold_n[label]),
            "n": gold_n[label],
        }
        for label in VERDICT_ORDER
    }
    return {
        "n": len(rows),
        "verdict_accuracy": _ratio(correct, verdict_rows),
        "per_verdict": per_verdict if verdict_rows else None,
        "confusion": {g: dict(c) for g, c in confusion.items()} if verdict_rows else None,
        "scam_recall": _ratio(scam_hit, scam_n),
        "false_alarm_rate": _ratio(unrelated_alarm, unrelated_n),
        "topic_top1": _ratio(top1, topic_n),
        "topic_top3": _ratio(top3, topic_n),
        "latency_ms": {"p50": _percentile(latencies, 0.5), "p99": _percentile(latencies, 0.99)},
        "misses": misses,
    }


def format_report(report: dict[str, Any]) -> str:
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = [f"messages: {report['n']}"]
    for key in ("verdict_accuracy", "scam_recall", "false_alarm_rate", "topic_top1", "topic_top3"):
        lines.append(f"{key:<18} {fmt(report[key])}")
    lat = report["latency_ms"]
    lines.append(f"{'latency_ms':<18} p50 {fmt(lat['p50'])}  p99 {fmt(lat['p99'])}")
    if report["per_verdict"]:
        lines.append("")
        lines.append(f"{'verdict':<20}{'n':>5}{'precision':>11}{'recall':>9}")
        for label, stats in report["per_verdict"].items():
            lines.append(f"{label:<20}{stats['n']:>5}{fmt(stats['precision']):>11}{fmt(stats['recall']):>9}")
    if report["misses"]:
        lines.append("")
        lines.append(f"misses ({len(report['misses'])}):")
        for miss in report["misses"][:30]:
            lines.append("  " + json.dumps(miss, ensure_ascii=False))
    return "\n".join(lines)

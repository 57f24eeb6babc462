"""What operators do with logged cases: review, label, stats, promote phrasings into the knowledge base.

One :class:`Operators` object serves every front end: the ``smsguard cases`` commands build it from the
settings, a running bot (Telegram ``/review``, ``/stats``, "有新结论时通知我") builds it beside its
:class:`~bot.service.Service`::

    ops = Operators(service.store, low_confidence=settings.LOW_CONFIDENCE, knowledge=lambda: service.analyzer.kb)
    group = ops.next_case()                 # /review: the next queue group, or None
    result = ops.label(case_id, "scam")     # a verdict button; result.notify: users to tell now
    ops.request_notify(case_id, "telegram", chat_id)      # the user tapped the button
    for n in ops.due_notifications("telegram"): send(n.chat_id, ops.notification_text(n)); ops.notified(n)
    format_stats_short(ops.stats())         # /stats
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.knowledge import Knowledge, KnowledgeError, load_knowledge
from bot.knowledge.edit import EditError, add_list_item
from bot.knowledge.models import VERDICT_LABELS_ZH, VERDICT_ORDER
from bot.store import CaseStore, admin, case_json, queries
from bot.store.admin import Notification
from bot.store.queries import CaseFilter, QueueGroup

SHORT_LABELS = {
    "scam": "诈骗",
    "illegal_collection": "违法催收",
    "pressure": "施压",
    "legal_notice": "法律程序",
    "reminder": "提醒",
    "unrelated": "无关",
}
MAX_PHRASING_CHARS = 1000  # longer texts are not phrasings; an operator can still add an excerpt by hand


class OperatorError(Exception):
    """A refused request; the message is one line for the operator."""


@dataclass(frozen=True)
class LabelResult:
    case: dict[str, Any]  # the case after labelling (DESIGN's case object)
    changed: bool  # the label differs from the bot's verdict
    notify: tuple[Notification, ...]  # users who asked to hear about this case, to tell now


@dataclass(frozen=True)
class Promotion:
    case_id: int
    topic_id: str
    field: str  # "questions" for a question, else "messages"
    phrasing: str  # the redacted text, on one line
    path: Path  # knowledge/topics/<topic>.yaml


def check_verdict(verdict: str) -> str:
    if verdict not in VERDICT_ORDER:
        raise OperatorError(f"unknown verdict {verdict!r} (one of: {', '.join(VERDICT_ORDER)})")
    return verdict


class Operators:
    def __init__(self, store: CaseStore, *, low_confidence: float, knowledge: Callable[[], Knowledge]):
        self.store = store
        self.low_confidence = low_confidence
        self._knowledge = knowledge  # called only when a topic id must be checked

    # --- reading ---------------------------------------------------------------------------------------

    def list_cases(self, f: CaseFilter) -> list[dict[str, Any]]:
        if f.verdict is not None:
            check_verdict(f.verdict)
        return [case_json(row) for row in queries.list_cases(self.store.db, f)]

    def row(self, case_id: int) -> dict[str, Any]:
        """The full stored row (for ``show``), without ``raw_text``, ``user_hash`` and ``message_key``."""
        row = queries.get_row(self.store.db, case_id)
        if row is None:
            raise OperatorError(f"no case #{case_id}")
        for private in ("raw_text", "user_hash", "message_key"):
            row.pop(private, None)
        return row

    def queue(self, exclude: Sequence[int] = ()) -> list[QueueGroup]:
        return queries.review_queue(self.store.db, self.low_confidence, exclude)

    def next_case(self, exclude: Sequence[int] = ()) -> QueueGroup | None:
        """The first group of the review queue (``exclude``: ids skipped in this session), or None."""
        groups = self.queue(exclude)
        return groups[0] if groups else None

    def stats(self, since: str | None = None) -> dict[str, Any]:
        return queries.case_stats(self.store.db, since)

    def is_low_confidence(self, confidence: float | None) -> bool:
        """Whether a verdict is unsure enough to queue first and to offer "有新结论时通知我"."""
        return confidence is not None and confidence < self.low_confidence

    # --- labelling -------------------------------------------------------------------------------------

    def check_topic(self, topic_id: str) -> str:
        if topic_id not in self._knowledge().topic_by_id:
            raise OperatorError(f"unknown topic {topic_id!r} (see `smsguard kb export --json`)")
        return topic_id

    def label(
        self, case_id: int, verdict: str, topic: str | None = None, note: str | None = None
    ) -> LabelResult:
        check_verdict(verdict)
        if topic is not None:
            self.check_topic(topic)
        if not admin.label_case(self.store, case_id, verdict, topic, note):
            raise OperatorError(f"no case #{case_id}")
        case = self.store.get_case(case_id)
        assert case is not None
        notify = tuple(admin.due_notifications(self.store, case_id=case_id))
        return LabelResult(case, case["label"] != case["verdict"], notify)

    # --- follow-up to users who asked ------------------------------------------------------------------

    def request_notify(self, case_id: int, channel: str, chat_id: str) -> bool:
        """The user tapped "有新结论时通知我" under this case's reply; False when the case is gone."""
        return admin.request_notify(self.store, case_id, channel, chat_id)

    def due_notifications(self, channel: str | None = None) -> list[Notification]:
        """Users to tell: their case was labelled differently from the bot's verdict (by any operator)."""
        return admin.due_notifications(self.store, channel)

    def notified(self, notification: Notification) -> None:
        """Call once the message is sent: the chat id is deleted."""
        admin.clear_notification(self.store, notification.id)

    @staticmethod
    def notification_text(notification: Notification) -> str:
        return (
            f"你之前发来的消息，志愿者人工复核后的结论是：{VERDICT_LABELS_ZH[notification.label]}"
            f"（自动判断曾是：{VERDICT_LABELS_ZH[notification.verdict]}）。"
            "如需对应的建议，请把原文再发一次。人工复核也不构成法律意见。"
        )

    # --- maintenance -----------------------------------------------------------------------------------

    def purge_older_than(self, before: str) -> int:
        return admin.purge_before(self.store, before)

    def backup(self, destination: Path) -> None:
        try:
            admin.backup(self.store, destination)
        except FileExistsError:
            raise OperatorError(f"{destination} exists; choose a new file name") from None
        except OSError as exc:
            raise OperatorError(f"cannot write {destination}: {exc.strerror or exc}") from None

    # --- promoting a case's text into the knowledge base -----------------------------------------------

    def prepare_promotion(self, case_id: int, topic_id: str, root: Path) -> Promotion:
        """Check everything before asking the operator: the case, the topic, the phrasing."""
        row = self.row(case_id)
        if row.get("promoted_at"):
            raise OperatorError(f"case #{case_id} was already promoted to {row.get('promoted_topic')!r}")
        try:
            kb = load_knowledge(root)
        except KnowledgeError as exc:
            raise OperatorError(
                f"the knowledge base in {root} is invalid before the edit: {exc.problems[0]}"
            ) from None
        topic = kb.topic_by_id.get(topic_id)
        if topic is None:
            raise OperatorError(f"unknown topic {topic_id!r} in {root}")
        phrasing = " ".join(str(row["text"]).split())
        if not phrasing:
            raise OperatorError(f"case #{case_id} has no text to promote")
        if len(phrasing) > MAX_PHRASING_CHARS:
            raise OperatorError(
                f"case #{case_id} is {len(phrasing)} characters long, too long for a phrasing; "
                "add an excerpt by hand"
            )
        if phrasing in topic.examples:
            raise OperatorError(f"topic {topic_id!r} already has this phrasing")
        field = "questions" if row["kind"] == "question" else "messages"
        return Promotion(case_id, topic_id, field, phrasing, root / "topics" / f"{topic_id}.yaml")

    def promote(self, promotion: Promotion) -> Knowledge:
        """Append the phrasing to the topic file, run the knowledge check, mark the case promoted.

        The file is restored byte for byte when the edit or the check fails.
        """
        original = promotion.path.read_bytes()
        try:
            edited = add_list_item(original.decode("utf-8"), promotion.field, promotion.phrasing)
        except (EditError, UnicodeDecodeError) as exc:
            raise OperatorError(f"{promotion.path.name}: {exc}") from None
        _write_atomically(promotion.path, edited.encode("utf-8"))
        try:
            kb = load_knowledge(promotion.path.parents[1])
        except KnowledgeError as exc:
            _write_atomically(promotion.path, original)
            raise OperatorError(
                f"kb check failed, {promotion.path.name} restored: {'; '.join(exc.problems)}"
            ) from None
        admin.mark_promoted(self.store, promotion.case_id, promotion.topic_id)
        return kb


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step (a running bot's reloader never sees half a file); the temporary file
    does not end in .yaml, so it is never loaded as knowledge."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def format_stats_short(stats: dict[str, Any]) -> str:
    """A few lines for a chat (Telegram ``/stats``)."""
    verdicts = "、".join(f"{SHORT_LABELS.get(v, v)} {n}" for v, n in stats["per_verdict"].items())
    platforms = "、".join(f"{p} {n}" for p, n in list(stats["per_platform"].items())[:5])
    fb = stats["feedback"]
    p50, p99 = stats["analysis_ms"]["p50"], stats["analysis_ms"]["p99"]

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    lines = [
        f"案例 {stats['cases']} 条（分析 {stats['analysed']}，限流 {stats['throttled']}）",
        f"判断：{verdicts or '—'}",
        f"平台：{platforms or '—'}",
        f"反馈：👍 {fb['up']} · 👎 {fb['down']}（有用 {pct(fb['helpful_ratio'])}）",
        f"未匹配话题：{pct(stats['unmatched_rate'])} · 已标注 {stats['labelled']}"
        f"（与自动判断一致 {pct(stats['label_agreement'])}）",
        f"分析耗时：中位 {p50 if p50 is not None else '—'} ms · p99 {p99 if p99 is not None else '—'} ms",
    ]
    return "\n".join(lines)

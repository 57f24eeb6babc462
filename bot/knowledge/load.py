"""Load and validate ``knowledge/`` into one immutable :class:`Knowledge` object.

Every error names the file and the entry id, so an operator who edits YAML by hand knows where to look.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import re2
import yaml
from pydantic import BaseModel, ValidationError

from bot.cache import cache_dir
from bot.knowledge.models import (
    SOURCE_REF,
    ComplaintChannel,
    ConductRule,
    Platform,
    SafetyPhrases,
    Signal,
    Source,
    Synonym,
    Topic,
)

# libyaml's loader when PyYAML was built with it: the same safe constructors, several times faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "knowledge"

M = TypeVar("M", bound=BaseModel)


class KnowledgeError(Exception):
    """The knowledge base is invalid; ``problems`` lists every error found, each naming file and entry."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


_SIGNAL_OPTIONS = re2.Options()
_SIGNAL_OPTIONS.log_errors = False  # errors are reported to the operator, not printed to stderr by RE2
# Only a whole match's span is ever read; without capture groups RE2 finds it with its DFAs alone.
_SIGNAL_OPTIONS.never_capture = True


class LazyRegexes(Sequence[Any]):
    """A signal's patterns, each compiled by RE2 the first time it is asked for. A message needs only the few
    that detection's prefilter leaves; compiling all ~450 up front cost about 0.1 s of every start."""

    def __init__(self, patterns: Sequence[str]):
        self._patterns = tuple(patterns)
        self._compiled: list[Any] = [None] * len(self._patterns)

    def __len__(self) -> int:
        return len(self._patterns)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]  # no slices: nothing asks for them
        regex = self._compiled[index]
        if regex is None:
            regex = self._compiled[index] = re2.compile(self._patterns[index], _SIGNAL_OPTIONS)
        return regex


@dataclass(frozen=True)
class CompiledSignal:
    signal: Signal
    regexes: Sequence[Any]  # re2 compiled patterns, same order as signal.patterns


@dataclass(frozen=True)
class Knowledge:
    topics: tuple[Topic, ...]
    signals: tuple[CompiledSignal, ...]
    platforms: tuple[Platform, ...]
    sources: dict[str, Source]
    version: str
    warnings: tuple[str, ...] = ()
    topic_by_id: dict[str, Topic] = field(default_factory=dict)
    root: Path | None = None
    complaint_channels: tuple[ComplaintChannel, ...] = ()
    conduct_rules: tuple[ConductRule, ...] = ()
    synonyms: tuple[Synonym, ...] = ()
    safety: tuple[SafetyPhrases, ...] = ()

    def topic(self, topic_id: str) -> Topic:
        return self.topic_by_id[topic_id]

    @property
    def reviewed(self) -> dt.date:
        return max(t.reviewed for t in self.topics)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name}: not valid YAML: {exc}")
        return None


def _entries(path: Path, data: Any, problems: list[str]) -> Iterator[dict[str, Any]]:
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else None
    if items is None:
        problems.append(f"{path.name}: expected a mapping or a list of mappings")
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"{path.name}: entry #{index + 1} is not a mapping")
            continue
        yield item


def _validate(model: type[M], path: Path, item: dict[str, Any], problems: list[str]) -> M | None:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        entry = item.get("id", "?")
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(entry)"
            problems.append(f"{path.name}: entry {entry!r}: {where}: {err['msg']}")
        return None


def _load_all(model: type[M], paths: Iterable[Path], problems: list[str]) -> list[tuple[Path, M]]:
    loaded: list[tuple[Path, M]] = []
    for path in paths:
        data = _read_yaml(path, problems)
        if data is None:
            continue
        for item in _entries(path, data, problems):
            obj = _validate(model, path, item, problems)
            if obj is not None:
                loaded.append((path, obj))
    return loaded


def _no_duplicate_ids(kind: str, loaded: list[tuple[Path, Any]], problems: list[str]) -> None:
    seen: dict[str, Path] = {}
    for path, obj in loaded:
        if obj.id in seen:
            problems.append(
                f"{path.name}: entry {obj.id!r}: duplicate {kind} id (also in {seen[obj.id].name})"
            )
        seen[obj.id] = path


def _signal_pattern_problems(path: Path, signal: Signal, regexes: LazyRegexes) -> list[str]:
    problems = []
    for index, pattern in enumerate(signal.patterns):
        try:
            regex = regexes[index]
        except re2.error as exc:
            problems.append(f"{path.name}: entry {signal.id!r}: pattern {pattern!r} is not valid RE2: {exc}")
            continue
        # A pattern that can match nothing at all (a stray "|") hides every real match after it.
        if regex.fullmatch("") is not None:
            problems.append(f"{path.name}: entry {signal.id!r}: pattern {pattern!r} matches the empty string")
    return problems


def _patterns_checked_mark(signals: Iterable[Signal], safety: Iterable[SafetyPhrases]) -> Path:
    """A file whose presence says these exact patterns passed the checks below with this RE2 and Python.

    Checking compiles every pattern (about 0.2 s); the result depends on nothing else, so a start with the same
    patterns as an earlier, clean one skips it. A changed pattern is a different name, checked again."""
    digest = hashlib.sha256()
    engine = os.stat(re2._re2.__file__)  # a reinstalled or upgraded RE2 is another file
    digest.update(f"{sys.version}|{engine.st_size}|{engine.st_mtime_ns}".encode())
    for signal in signals:
        digest.update(b"\1" + "\0".join(signal.patterns).encode())
    for phrases in safety:
        digest.update(b"\2" + phrases.kind.encode() + b"\0" + "\0".join(phrases.patterns).encode())
    return cache_dir() / f"patterns-checked-{digest.hexdigest()[:20]}"


def _mark(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:  # no writable cache: the next start checks again, nothing else changes
        pass


# In the safety check's patterns "~N" is up to N characters within one clause (bot/core/safety.py).
_WINDOW = re.compile(r"~(\d+)")
_LOOKAROUND = re.compile(r"\(\?<?[!=][^()]*\)")


_QUIET = re2.Options()
_QUIET.log_errors = False  # problems are reported to the operator, not printed by RE2


def expand_safety_pattern(pattern: str) -> str:
    return _WINDOW.sub(r"[^,。!?]{0,\1}", pattern)


def without_lookarounds(pattern: str) -> str:
    """The pattern with its lookarounds dropped: it then matches more, never less, and RE2 can run it."""
    return _LOOKAROUND.sub("", pattern)


def safety_pattern_problems(phrases: SafetyPhrases) -> list[str]:
    problems = []
    for pattern in phrases.patterns:
        expanded = expand_safety_pattern(pattern)
        try:
            if re.compile(expanded).fullmatch(""):
                problems.append(f"pattern {pattern!r} matches the empty string")
        except re.error as exc:
            problems.append(f"pattern {pattern!r} is not a valid regular expression: {exc}")
            continue
        relaxed = without_lookarounds(expanded)
        if phrases.kind == "idiom" and relaxed != expanded:
            problems.append(f"pattern {pattern!r}: idioms may not use lookarounds (they run in RE2)")
        try:
            re2.compile(relaxed, _QUIET)
        except re2.error:
            problems.append(f"pattern {pattern!r}: a lookaround holds parentheses, or RE2 cannot run it")
    return problems


def _content_hash(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _existing(path: Path) -> list[Path]:
    return [path] if path.exists() else []


def knowledge_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def load_knowledge(root: Path | None = None, today: dt.date | None = None) -> Knowledge:
    """Load and validate the knowledge directory; raise :class:`KnowledgeError` listing every problem."""
    root = Path(root or DEFAULT_DIR)
    today = today or dt.date.today()
    problems: list[str] = []
    if not root.is_dir():
        raise KnowledgeError([f"{root}: knowledge directory not found"])

    topics = _load_all(Topic, sorted((root / "topics").glob("*.yaml")), problems)
    signals = _load_all(Signal, sorted((root / "signals").glob("*.yaml")), problems)
    platforms = _load_all(Platform, _existing(root / "platforms.yaml"), problems)
    sources = _load_all(Source, _existing(root / "sources.yaml"), problems)
    complaints_dir = root / "complaints"
    channels = _load_all(ComplaintChannel, _existing(complaints_dir / "channels.yaml"), problems)
    conduct = _load_all(ConductRule, _existing(complaints_dir / "conduct.yaml"), problems)
    synonyms = _load_all(Synonym, _existing(root / "synonyms.yaml"), problems)
    safety = _load_all(SafetyPhrases, _existing(root / "safety.yaml"), problems)
    for kind, loaded in (
        ("topic", topics),
        ("signal", signals),
        ("platform", platforms),
        ("source", sources),
        ("complaint channel", channels),
        ("conduct rule", conduct),
        ("synonym", synonyms),
        ("safety phrase group", safety),
    ):
        _no_duplicate_ids(kind, loaded, problems)
    if not topics:
        problems.append(f"{root.name}/topics: no topics found")

    source_ids = {s.id for _, s in sources}
    topic_ids = {t.id for _, t in topics}

    def check_refs(path: Path, entry: str, refs: Iterable[str]) -> None:
        for ref in refs:
            match = SOURCE_REF.match(ref)
            if match and match["id"] not in source_ids:
                problems.append(f"{path.name}: entry {entry!r}: unknown source id {match['id']!r}")

    warnings: list[str] = []
    for path, topic in topics:
        check_refs(path, topic.id, topic.sources)
        for channel in topic.channels:
            check_refs(path, topic.id, channel.sources)
        for related in topic.related:
            if related not in topic_ids:
                problems.append(f"{path.name}: entry {topic.id!r}: related topic {related!r} does not exist")
        if path.stem != topic.id:
            problems.append(f"{path.name}: entry {topic.id!r}: file name must be {topic.id}.yaml")
        if topic.valid_until and topic.valid_until < today:
            warnings.append(f"{path.name}: entry {topic.id!r}: valid_until {topic.valid_until} has passed")
    for path, platform in platforms:
        check_refs(path, platform.id, platform.sources)

    signal_ids = [sig.id for _, sig in signals]
    for path, rule in conduct:
        for r in rule.rules:
            check_refs(path, rule.id, r.sources)
        for prefix in rule.signals:
            if not any(sid.startswith(prefix) for sid in signal_ids):
                problems.append(f"{path.name}: entry {rule.id!r}: no signal id starts with {prefix!r}")
    for path, complaint in channels:
        check_refs(path, complaint.id, complaint.sources)
        for prefix in complaint.when_signals:
            if not any(sid.startswith(prefix) for sid in signal_ids):
                problems.append(f"{path.name}: entry {complaint.id!r}: no signal id starts with {prefix!r}")

    compiled: list[CompiledSignal] = []
    for path, signal in signals:
        if signal.verdict != "unrelated" and "damps" in signal.model_fields_set:
            problems.append(
                f"{path.name}: entry {signal.id!r}: only unrelated (advice) signals can damp others"
            )
        for topic_id in signal.topics:
            if topic_id not in topic_ids:
                problems.append(f"{path.name}: entry {signal.id!r}: topic {topic_id!r} does not exist")
        compiled.append(CompiledSignal(signal, LazyRegexes(signal.patterns)))

    checked_mark = _patterns_checked_mark((s for _, s in signals), (p for _, p in safety))
    if not checked_mark.exists():
        pattern_problems: list[str] = []
        for (path, signal), cs in zip(signals, compiled, strict=True):
            pattern_problems += _signal_pattern_problems(path, signal, cs.regexes)  # type: ignore[arg-type]
        for path, phrases in safety:
            pattern_problems += [
                f"{path.name}: entry {phrases.id!r}: {p}" for p in safety_pattern_problems(phrases)
            ]
        problems += pattern_problems
        if not pattern_problems:
            _mark(checked_mark)
    if not any(phrases.kind == "crisis" for _, phrases in safety):
        problems.append(f"{root.name}/safety.yaml: no crisis phrases (the safety check would catch nothing)")

    if problems:
        raise KnowledgeError(problems)
    topic_list = tuple(t for _, t in topics)
    return Knowledge(
        topics=topic_list,
        signals=tuple(compiled),
        platforms=tuple(p for _, p in platforms),
        sources={s.id: s for _, s in sources},
        version=_content_hash(knowledge_files(root), root),
        warnings=tuple(warnings),
        topic_by_id={t.id: t for t in topic_list},
        root=root,
        complaint_channels=tuple(c for _, c in channels),
        conduct_rules=tuple(r for _, r in conduct),
        synonyms=tuple(s for _, s in synonyms),
        safety=tuple(s for _, s in safety),
    )


def export_knowledge(kb: Knowledge) -> dict[str, Any]:
    """The ``kb export --json`` document (DESIGN's command-line contract)."""
    return {
        "version": kb.version,
        "topics": [
            {
                "id": t.id,
                "title": t.title,
                "examples": list(t.examples),
                "steps": list(t.steps),
                "sources": list(t.sources),
                "related": list(t.related),
                "reviewed": t.reviewed.isoformat(),
            }
            for t in kb.topics
        ],
        "signals": [
            {
                "id": cs.signal.id,
                "label": cs.signal.label,
                "verdict": cs.signal.verdict,
                "weight": cs.signal.weight,
                "patterns": list(cs.signal.patterns),
            }
            for cs in kb.signals
        ],
        "platforms": [
            {
                "id": p.id,
                "name": p.name,
                "aliases": list(p.aliases),
                "company": p.company,
                "contact": p.contact,
            }
            for p in kb.platforms
        ],
    }

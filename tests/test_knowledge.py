import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
import yaml

from bot.knowledge import DEFAULT_DIR, KnowledgeError, export_knowledge, load_knowledge

REQUIRED_TOPICS = {
    "home-visit", "lawsuit-threat", "court-sms-verify", "arbitration", "lawyer-letter", "pre-suit-mediation",
    "criminal-threat", "contacts-harassment", "hometown-letter", "threats-insults", "collection-rules",
    "harassing-calls", "freeze-assets", "dishonest-list", "credit-report", "negotiate", "credit-card-installment",
    "interest-fees", "overdue-basics", "statute-limitations", "debt-transfer", "family-liability", "unknown-debt",
    "verify-official", "legit-reminder", "complaint-channels", "huabei-jiebei", "scam-cancel-account",
    "scam-credit-repair", "scam-transfer-personal", "scam-unfreeze-fee", "scam-fake-authority",
    "anti-collection-agency", "crisis-support",
}  # fmt: skip


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    shutil.copytree(DEFAULT_DIR, root)
    return root


def _edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _problems(root: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(root)
    return info.value.problems


def test_the_shipped_knowledge_base_loads(kb):
    assert {t.id for t in kb.topics} >= REQUIRED_TOPICS
    assert {cs.signal.verdict for cs in kb.signals} >= {
        "scam", "illegal_collection", "pressure", "legal_notice", "reminder"
    }  # fmt: skip


def test_a_non_re2_pattern_is_refused_with_file_and_entry(kb_copy):
    # A backreference is valid for Python's re but not RE2: it could backtrack, so the loader refuses it.
    _edit_yaml(kb_copy / "signals" / "scam.yaml", lambda d: d[0]["patterns"].append(r"(催)\1"))
    problems = _problems(kb_copy)
    assert any("scam.yaml" in p and "scam.safe-account" in p and "RE2" in p for p in problems)


def test_broken_safety_patterns_are_refused_with_file_and_entry(kb_copy):
    def spoil(groups):
        groups[0]["patterns"].append("不想活(")  # unbalanced
        groups[0]["patterns"].append("想死(?!(你|您))")  # a lookaround holding parentheses
        next(g for g in groups if g["kind"] == "idiom")["patterns"].append("笑死(?!了)")
        groups[0]["kind"] = "cry"

    _edit_yaml(kb_copy / "safety.yaml", spoil)
    problems = _problems(kb_copy)
    assert any("safety.yaml" in p and "kind" in p for p in problems)
    _edit_yaml(kb_copy / "safety.yaml", lambda groups: groups[0].update(kind="crisis"))
    problems = _problems(kb_copy)
    assert any("'wanting-to-die'" in p and "不想活(" in p and "not a valid" in p for p in problems)
    assert any("'wanting-to-die'" in p and "lookaround" in p for p in problems)
    assert any("'death-idioms'" in p and "idioms may not use lookarounds" in p for p in problems)


def test_a_knowledge_base_without_crisis_phrases_is_refused(kb_copy):
    _edit_yaml(kb_copy / "safety.yaml", lambda groups: groups.__setitem__(slice(None), groups[4:]))
    assert any("no crisis phrases" in p for p in _problems(kb_copy))


def test_unknown_key_names_file_and_entry(kb_copy):
    _edit_yaml(kb_copy / "topics" / "home-visit.yaml", lambda d: d.update(anwser="typo"))
    problems = _problems(kb_copy)
    assert any("home-visit.yaml" in p and "'home-visit'" in p and "anwser" in p for p in problems)


def test_too_few_steps_and_unknown_related_topic(kb_copy):
    _edit_yaml(kb_copy / "topics" / "arbitration.yaml", lambda d: d.update(steps=d["steps"][:2]))
    _edit_yaml(kb_copy / "topics" / "home-visit.yaml", lambda d: d.update(related=["no-such-topic"]))
    problems = _problems(kb_copy)
    assert any("arbitration.yaml" in p and "steps" in p for p in problems)
    assert any("no-such-topic" in p for p in problems)


def test_unknown_source_id_is_an_error(kb_copy):
    _edit_yaml(kb_copy / "topics" / "arbitration.yaml", lambda d: d.update(sources=["W999 第1条"]))
    assert any("W999" in p and "arbitration.yaml" in p for p in _problems(kb_copy))


def test_broken_yaml_names_the_file(kb_copy):
    (kb_copy / "signals" / "broken.yaml").write_text("- id: [unclosed\n", encoding="utf-8")
    assert any(p.startswith("broken.yaml") for p in _problems(kb_copy))


def test_duplicate_signal_id(kb_copy):
    path = kb_copy / "signals" / "scam.yaml"
    _edit_yaml(path, lambda d: d.append(dict(d[0])))
    assert any("duplicate" in p and "scam.safe-account" in p for p in _problems(kb_copy))


def test_version_is_a_content_hash(kb_copy):
    before = load_knowledge(kb_copy).version
    assert load_knowledge(kb_copy).version == before
    _edit_yaml(kb_copy / "topics" / "arbitration.yaml", lambda d: d["questions"].append("仲裁短信怎么查"))
    assert load_knowledge(kb_copy).version != before


def test_passed_valid_until_is_a_warning_not_an_error(kb_copy):
    _edit_yaml(kb_copy / "topics" / "arbitration.yaml", lambda d: d.update(valid_until="2020-01-01"))
    kb = load_knowledge(kb_copy, today=dt.date(2026, 11, 28))
    assert any("arbitration" in w and "valid_until" in w for w in kb.warnings)


def test_export_has_the_contract_keys(kb):
    doc = export_knowledge(kb)
    assert set(doc) == {"version", "topics", "signals", "platforms"}
    topic = doc["topics"][0]
    assert set(topic) == {"id", "title", "examples", "steps", "sources", "related", "reviewed"}
    assert set(doc["signals"][0]) == {"id", "label", "verdict", "weight", "patterns"}
    if doc["platforms"]:
        assert set(doc["platforms"][0]) == {"id", "name", "aliases", "company", "contact"}


def test_every_signal_fires_on_its_own_examples(kb, analyzer):
    from bot.core.detect import detect_signals
    from bot.core.normalize import normalize

    for compiled in kb.signals:
        for example in compiled.signal.examples:
            fired = {h.id for h in detect_signals(normalize(example), [compiled])}
            assert compiled.signal.id in fired, (compiled.signal.id, example)


def test_a_pattern_matching_the_empty_string_is_refused(kb_copy):
    _edit_yaml(kb_copy / "signals" / "reminder.yaml", lambda d: d[0]["patterns"].append("已逾期|"))
    assert any("empty string" in p and "reminder.yaml" in p for p in _problems(kb_copy))


def test_the_detector_finds_exactly_what_the_patterns_find_one_by_one(kb):
    import json

    from bot.core.detect import SignalDetector, detect_signals
    from bot.core.normalize import normalize
    from tests.helpers import verdict_cases

    detector = SignalDetector(kb.signals)
    long_text = "催收说要上门，" * 30000 + "再不还钱就爆你通讯录，转入安全账户"  # ~200 KB
    stored = [
        json.loads(line)["text"]
        for path in sorted((Path(__file__).parent / "data").glob("messages_fresh*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert len(stored) > 3000
    # Every fourth stored message keeps this test to seconds; all of them were compared when it was written.
    for text in [c["text"] for c in verdict_cases()] + stored[::4] + [long_text, ""]:
        norm = normalize(text)
        assert detector.detect(norm) == detect_signals(norm, kb.signals), text[:40]


def test_complaint_templates_are_validated(kb_copy):
    path = kb_copy / "complaints" / "conduct.yaml"
    _edit_yaml(path, lambda d: d[0].update(signals=["nosuch."]))
    assert any("conduct.yaml" in p and "nosuch." in p for p in _problems(kb_copy))


def test_shipped_complaint_channels(kb):
    assert {c.id for c in kb.complaint_channels} == {"lender", "12378", "110", "96110", "12321"}
    assert kb.conduct_rules


# Every phone number the knowledge base may print, each confirmed by the fact base (§11, Part 2 §F).
CONFIRMED_NUMBERS = {
    "110", "119", "120",  # emergency lines (W19b, W33a; 12356 links with them, W48a)
    "96110",  # police anti-fraud line (W19a)
    "12368",  # courts (W20a)
    "12378",  # banking and insurance consumer complaints (W16a)
    "12381", "12300", "12321",  # MIIT lines and spam reporting (W17a, W18a)
    "12363",  # PBOC financial consumers (W35)
    "12348",  # public legal services (W36)
    "12356",  # psychological assistance (W45)
    "400-161-9995",  # 希望24热线, offered only as a second option, status unconfirmed (W51)
    "106",  # not a number: the prefix of bulk-SMS senders, discussed as such (§4)
}  # fmt: skip
_PHONE_LIKE = re.compile(
    r"(?<![0-9A-Za-z-])(?:[48]00-?[0-9]{3}-?[0-9]{4}|1[0-9]{2}|9[56][0-9]{3}|1[0-2][0-9]{3}|1[3-9][0-9]{9})(?![0-9天号])"
)


def test_knowledge_prints_only_confirmed_phone_numbers(kb):
    texts = []
    for t in kb.topics:
        texts += [t.answer, t.details or "", *t.steps] + [
            f"{c.name} {c.contact or ''} {c.note or ''}" for c in t.channels
        ]
    for c in kb.complaint_channels:
        texts += [c.to, c.opening, c.note or "", *c.asks]
    texts += [p.contact or "" for p in kb.platforms]
    found = {n for text in texts for n in _PHONE_LIKE.findall(text)}
    assert found <= CONFIRMED_NUMBERS, found - CONFIRMED_NUMBERS


def test_only_advice_signals_may_damp_other_verdicts(tmp_path):
    import shutil

    from bot.knowledge import KnowledgeError, load_knowledge

    root = tmp_path / "knowledge"
    shutil.copytree(Path(__file__).resolve().parents[1] / "knowledge", root)
    path = root / "signals" / "pressure.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "  verdict: pressure\n", "  verdict: pressure\n  damps: [scam]\n", 1
        ),
        encoding="utf-8",
    )
    with pytest.raises(KnowledgeError, match="only unrelated"):
        load_knowledge(root)


def _count_compiles(monkeypatch) -> list[str]:
    import bot.knowledge.load as load_module

    compiled: list[str] = []
    real = load_module.re2.compile

    def counting(pattern, *args, **kwargs):
        compiled.append(pattern)
        return real(pattern, *args, **kwargs)

    monkeypatch.setattr(load_module.re2, "compile", counting)
    return compiled


def test_patterns_are_checked_once_then_trusted_until_one_changes(kb_copy, tmp_path, monkeypatch):
    monkeypatch.setattr("bot.knowledge.load.cache_dir", lambda: tmp_path / "cache")
    compiled = _count_compiles(monkeypatch)
    load_knowledge(kb_copy)
    assert len(compiled) > 400  # the first start compiles every signal pattern to check it
    assert list((tmp_path / "cache").glob("patterns-checked-*"))

    compiled.clear()
    kb = load_knowledge(kb_copy)
    assert compiled == []  # same patterns, already checked: nothing compiled at load
    regex = kb.signals[0].regexes[0]  # compiled when first used, once
    assert compiled == [kb.signals[0].signal.patterns[0]]
    assert kb.signals[0].regexes[0] is regex

    # A changed pattern is checked again: the mark for the old patterns does not cover it.
    _edit_yaml(kb_copy / "signals" / "reminder.yaml", lambda d: d[0]["patterns"].append("已逾期("))
    assert any("not valid RE2" in p and "reminder.yaml" in p for p in _problems(kb_copy))


def test_an_unwritable_cache_only_means_checking_again(kb_copy, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setattr("bot.knowledge.load.cache_dir", lambda: blocker / "cache")
    compiled = _count_compiles(monkeypatch)
    load_knowledge(kb_copy)
    first = len(compiled)
    load_knowledge(kb_copy)
    assert first > 400 and len(compiled) == 2 * first


def test_warm_up_compiles_every_pattern_so_no_first_message_waits(monkeypatch):
    import bot.core.detect as detect_module
    from bot.core import Analyzer

    text = "您的账户涉嫌洗钱，请将资金转入安全账户配合调查，否则冻结银行卡"
    compiled = _count_compiles(monkeypatch)
    # Short texts run the patterns' Python translations (bot/core/backtrack.py): count those compiles too.
    translated: list[str] = []
    real_compile_short = detect_module.compile_short

    def counting_short(pattern):
        translated.append(pattern)
        return real_compile_short(pattern)

    monkeypatch.setattr(detect_module, "compile_short", counting_short)
    cold = Analyzer(load_knowledge())
    compiled.clear()
    cold.analyze(text)
    assert compiled  # without warm-up the message pays for the patterns it needs
    assert translated

    warm = Analyzer(load_knowledge())
    warm.warm_up()
    compiled.clear()
    translated.clear()
    warm.analyze(text)
    assert compiled == []
    assert translated == []

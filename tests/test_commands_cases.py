"""`smsguard cases ...` and `eval --from-cases` on a database filled through the console chat.

Most commands run in-process through click's runner (the real entry point, fast); the exit-code contract
is also checked on a separate process.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import main
from bot.knowledge import DEFAULT_DIR, load_knowledge
from bot.store.cases import CASE_FIELDS
from tests.helpers import run_cli

CASE_KEYS = set(CASE_FIELDS)


@pytest.fixture
def env(case_db, tmp_path, monkeypatch):
    for name in ("SMSGUARD_SECRET", "STORE_RAW_TEXT", "LOW_CONFIDENCE", "RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMSGUARD_DB", str(case_db))
    monkeypatch.setenv("SMSGUARD_SECRET", "test-secret")
    monkeypatch.chdir(tmp_path)  # no stray .env
    return {"SMSGUARD_DB": str(case_db), "SMSGUARD_SECRET": "test-secret"}


def smsguard(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def ok_json(*args: str):
    result = smsguard(*args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def refused(*args: str) -> str:
    result = smsguard(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def find(text: str) -> dict:
    return ok_json("cases", "list", "--search", text, "--json")[0]


def test_list_table_and_json(env):
    table = smsguard("cases", "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "created", "(UTC)", "channel"] and len(lines) == 11
    assert "[姓名]" in table.stdout and "张伟" not in table.stdout and "13812345678" not in table.stdout
    cases = ok_json("cases", "list", "--json")
    assert len(cases) == 10 and all(set(c) == CASE_KEYS for c in cases)
    assert all(isinstance(c["signals"], list) and isinstance(c["throttled"], bool) for c in cases)
    assert len(ok_json("cases", "list", "--json", "--limit", "2")) == 2
    assert {c["verdict"] for c in ok_json("cases", "list", "--verdict", "scam", "--json")} == {"scam"}
    assert len(ok_json("cases", "list", "--search", "催收", "--json")) == 2  # a two-character word
    assert len(ok_json("cases", "list", "--search", "上门走访", "--json")) == 3
    assert len(ok_json("cases", "list", "--since", "1h", "--json")) == 10
    assert ok_json("cases", "list", "--unreviewed", "--json") == cases


def test_list_low_confidence_and_unmatched(env, monkeypatch):
    cases = ok_json("cases", "list", "--json")
    lowest = min(c["confidence"] for c in cases)
    monkeypatch.setenv("LOW_CONFIDENCE", str(lowest + 0.0001))
    unsure = ok_json("cases", "list", "--low-confidence", "--json")
    assert unsure and all(c["confidence"] == lowest for c in unsure)
    unmatched = ok_json("cases", "list", "--unmatched", "--json")
    assert all(c["topics"] == [] for c in unmatched)
    assert len(unmatched) == sum(1 for c in cases if not c["topics"])


def test_bad_requests_exit_1_with_one_line(env):
    case_id = str(find("火锅")["id"])
    assert "unknown verdict" in refused("cases", "label", case_id, "fraud")
    assert "unknown topic" in refused("cases", "label", case_id, "scam", "--topic", "nope")
    assert "no case #9999" in refused("cases", "label", "9999", "scam")
    assert "no case #9999" in refused("cases", "show", "9999")
    assert "unknown verdict" in refused("cases", "list", "--verdict", "fraud")
    assert smsguard("cases", "list", "--since", "7x").exit_code == 2  # a usage error
    assert ok_json("cases", "show", case_id, "--json")["label"] is None


def test_bad_label_on_a_separate_process(env):
    proc = run_cli("cases", "label", "1", "not-a-verdict", env=env)
    assert proc.returncode == 1 and proc.stderr.startswith("error: unknown verdict")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("cases", "list", "--json", env={"SMSGUARD_DB": "/nonexistent/cases.db"})
    assert proc.returncode == 1 and "no case database" in proc.stderr


def test_label_then_show(env):
    case = find("门口堵我")
    result = smsguard(
        "cases", "label", str(case["id"]), "illegal_collection", "--topic", "home-visit",
        "--note", "张伟先生来电 13812345678 说明情况",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"case #{case['id']} labelled illegal_collection" in result.stdout
    shown = ok_json("cases", "show", str(case["id"]), "--json")
    assert set(shown) >= CASE_KEYS and set(shown) - CASE_KEYS == {"reply", "label_topic", "promoted_topic"}
    assert shown["label"] == "illegal_collection" and shown["label_topic"] == "home-visit"
    assert "13812345678" not in shown["note"] and "张伟" not in shown["note"]
    text = smsguard("cases", "show", str(case["id"])).stdout
    for part in (
        "verdict:",
        "label:      illegal_collection",
        "topic home-visit",
        "signals:",
        "topics:",
        "reply:",
    ):
        assert part in text
    assert case["text"] in text
    assert find("门口堵我")["id"] not in [c["id"] for c in ok_json("cases", "list", "--unreviewed", "--json")]


def test_queue_groups_duplicates(env):
    groups = ok_json("cases", "queue", "--json")
    assert sum(g["count"] for g in groups) == 10
    visits = [g for g in groups if "上门走访" in g["case"]["text"]]
    assert len(visits) == 1 and visits[0]["count"] == 3 and len(visits[0]["case_ids"]) == 3
    assert set(visits[0]) == {"count", "case_ids", "low_confidence", "thumbs_down", "unmatched", "case"}
    assert set(visits[0]["case"]) == CASE_KEYS
    text = smsguard("cases", "queue").stdout
    assert "×3" in text


def test_stats(env):
    stats = ok_json("cases", "stats", "--json")
    assert stats["cases"] == 10 and sum(stats["per_verdict"].values()) == 10
    assert set(stats) >= {
        "per_day",
        "per_verdict",
        "per_platform",
        "feedback",
        "unmatched_rate",
        "analysis_ms",
    }
    assert stats["analysis_ms"]["p50"] <= stats["analysis_ms"]["p99"]
    text = smsguard("cases", "stats").stdout
    assert "per verdict:" in text and "unmatched rate:" in text and "p99" in text


def test_export_csv_and_jsonl(env, tmp_path):
    out = smsguard("cases", "export", "--format", "csv")
    assert out.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 10 and list(rows[0]) == list(CASE_FIELDS)
    assert "13812345678" not in out.stdout  # raw text was stored (STORE_RAW_TEXT) but is never exported
    target = tmp_path / "cases.jsonl"
    result = smsguard("cases", "export", "--format", "jsonl", "--since", "1d", "--output", str(target))
    assert result.exit_code == 0 and result.stdout == "" and "exported 10" in result.stderr
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 10 and all(set(c) == CASE_KEYS for c in lines)
    assert smsguard("cases", "export", "--format", "xml").exit_code == 2


def test_purge_and_backup(env, case_db, tmp_path):
    sqlite3.connect(case_db).execute(
        "UPDATE cases SET created_at = '2020-01-01T00:00:00+00:00' WHERE id <= 3"
    ).connection.commit()
    result = smsguard("cases", "purge", "--older-than", "90d")
    assert result.exit_code == 0 and "purged 3 case(s)" in result.stdout
    assert len(ok_json("cases", "list", "--json")) == 7
    target = tmp_path / "copy.db"
    result = smsguard("cases", "backup", str(target))
    assert result.exit_code == 0 and "backed up 7" in result.stdout
    assert sqlite3.connect(target).execute("SELECT count(*) FROM cases").fetchone()[0] == 7
    assert "exists" in refused("cases", "backup", str(target))


def test_promote_into_a_copy_of_the_knowledge_and_eval_from_cases(env, tmp_path):
    kb_dir = tmp_path / "knowledge"
    shutil.copytree(DEFAULT_DIR, kb_dir)
    question = find("门口堵我")
    # the operator sees the redacted text and declines: nothing changes
    declined = smsguard(
        "cases", "promote", str(question["id"]), "--topic", "home-visit", "--kb-dir", str(kb_dir), input="n\n"
    )
    assert declined.exit_code == 1 and question["text"] in declined.stdout
    assert question["text"] not in (kb_dir / "topics" / "home-visit.yaml").read_text(encoding="utf-8")

    result = smsguard(
        "cases", "promote", str(question["id"]), "--topic", "home-visit", "--kb-dir", str(kb_dir), "--yes"
    )
    assert result.exit_code == 0, result.stderr
    assert "kb check ok" in result.stdout
    data = yaml.safe_load((kb_dir / "topics" / "home-visit.yaml").read_text(encoding="utf-8"))
    assert data["questions"][-1] == question["text"]
    assert smsguard("kb", "check", "--kb-dir", str(kb_dir)).exit_code == 0
    assert question["text"] in load_knowledge(kb_dir).topic_by_id["home-visit"].examples
    assert question["text"] not in (DEFAULT_DIR / "topics" / "home-visit.yaml").read_text(encoding="utf-8")
    assert "unknown topic" in refused(
        "cases", "promote", "1", "--topic", "nope", "--kb-dir", str(kb_dir), "--yes"
    )

    # labelled cases are the regression set; the promoted one is not part of it
    assert "no labelled cases" in refused("eval", "--from-cases")
    scam = find("监管账户")
    assert smsguard("cases", "label", str(question["id"]), "illegal_collection").exit_code == 0
    assert (
        smsguard("cases", "label", str(scam["id"]), "scam", "--topic", "scam-cancel-account").exit_code == 0
    )
    report = ok_json("eval", "--from-cases", "--json")
    assert report["n"] == 1 and report["verdict_accuracy"] == 1.0 and report["scam_recall"] == 1.0
    assert report["topic_top1"] is not None
    assert smsguard("eval").exit_code == 2 and smsguard("eval", "x.jsonl", "--from-cases").exit_code == 2


@pytest.mark.parametrize(
    "command",
    [
        ["cases"],
        *[
            ["cases", c]
            for c in ("list", "show", "label", "queue", "stats", "export", "purge", "backup", "promote")
        ],
        ["dashboard"],
        ["eval"],
    ],
)
def test_every_operator_command_answers_help(command):
    result = smsguard(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout

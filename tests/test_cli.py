"""The command-line contract of DESIGN.md, run as separate processes."""

import json

import pytest

from tests.helpers import check_json, run_cli

DONE_WHEN = [
    ("【XX金融】您的借款已逾期20天，我司将安排专员上门走访核实您的还款能力。", "pressure"),
    ("再不还钱就把你的照片P成通缉令发给你通讯录所有人。", "illegal_collection"),
    ("【京东金融】您的白条账户未注销将影响征信，请添加客服QQ办理注销并将额度转入监管账户。", "scam"),
    ("【工商银行】您尾号8812的信用卡本期应还1,250.00元，到期还款日12月05日。", "reminder"),
    (
        "您好，(2026)京0105民初23145号案件已立案，请登录人民法院在线服务查看起诉状，或致电12368核实。",
        "legal_notice",
    ),
    ("晚上一起吃火锅吗？", "unrelated"),
]
RESULT_KEYS = {
    "kind",
    "verdict",
    "confidence",
    "signals",
    "entities",
    "topics",
    "crisis",
    "reply",
    "kb_version",
}
ENTITY_KEYS = {
    "senders", "phones", "urls", "amounts", "dates", "case_numbers", "platforms", "id_numbers", "card_numbers"
}  # fmt: skip


def test_check_json_contract_on_the_issue_examples():
    lines = "\n".join(
        json.dumps({"text": t, "id": i}, ensure_ascii=False) for i, (t, _) in enumerate(DONE_WHEN)
    )
    proc = run_cli("check", "--jsonl", stdin=lines + "\n")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in results] == list(range(len(DONE_WHEN)))
    for (text, verdict), result in zip(DONE_WHEN, results, strict=True):
        assert result["verdict"] == verdict, text
        assert set(result) - {"id"} == RESULT_KEYS
        assert set(result["entities"]) == ENTITY_KEYS
        assert 0.0 <= result["confidence"] <= 1.0
        assert len(result["topics"]) <= 5
        for signal in result["signals"]:
            assert set(signal) == {"id", "label", "verdict", "evidence"}
            assert signal["evidence"] in text


def test_check_single_text_json_and_plain():
    result = check_json("【工商银行】您尾号8812的信用卡本期应还1,250.00元，到期还款日12月05日。")
    assert result["verdict"] == "reminder"
    assert result["entities"]["platforms"] == ["icbc-card"]
    plain = run_cli("check", "再不还钱就爆你通讯录")
    assert plain.returncode == 0
    assert "违法催收" in plain.stdout and "怎么办" in plain.stdout


def test_check_empty_text_is_valid_and_unrelated():
    result = check_json("")
    assert result["verdict"] == "unrelated"


def test_check_jsonl_bad_lines_do_not_stop_processing():
    stdin = 'not json\n{"text": 5}\n{"text": "晚上吃饭吗", "id": "x"}\n'
    proc = run_cli("check", "--jsonl", stdin=stdin)
    assert proc.returncode == 0
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "error" in out[0] and "error" in out[1]
    assert out[2]["id"] == "x" and out[2]["verdict"] == "unrelated"


def test_usage_errors_exit_2():
    assert run_cli("check").returncode == 2
    assert run_cli("no-such-command").returncode == 2


def test_kb_check_and_export():
    proc = run_cli("kb", "check")
    assert proc.returncode == 0 and proc.stdout.startswith("ok:")
    export = json.loads(run_cli("kb", "export", "--json").stdout)
    assert len(export["topics"]) >= 34
    version = check_json("hi")["kb_version"]
    assert export["version"] == version


def test_kb_check_fails_with_exit_1_on_a_broken_knowledge_base(tmp_path):
    (tmp_path / "topics").mkdir()
    (tmp_path / "topics" / "x.yaml").write_text("id: x\n", encoding="utf-8")
    proc = run_cli("kb", "check", "--kb-dir", str(tmp_path))
    assert proc.returncode == 1
    assert "x.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_json_keys_and_one_line_error(tmp_path):
    data = tmp_path / "mini.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(row, ensure_ascii=False)
            for row in [
                {"id": "a", "text": "晚上一起吃饭吗", "accept": ["unrelated"]},
                {"id": "b", "text": "请把验证码发给客服，并转入安全账户", "accept": ["scam"]},
                {"id": "c", "text": "催收说要上门怎么办", "topics": ["home-visit"]},
            ]
        ),
        encoding="utf-8",
    )
    proc = run_cli("eval", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {
        "n", "verdict_accuracy", "per_verdict", "confusion", "scam_recall", "false_alarm_rate",
        "topic_top1", "topic_top3", "latency_ms",
    }  # fmt: skip
    assert report["n"] == 3 and report["verdict_accuracy"] == 1.0 and report["topic_top1"] == 1.0
    assert report["false_alarm_rate"] == 0.0 and report["scam_recall"] == 1.0
    missing = run_cli("eval", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", [[], ["chat"], ["run"], ["check"], ["kb"], ["kb", "check"], ["kb", "export"], ["eval"]]
)
def test_every_command_answers_help(command):
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and "smsguard" in proc.stdout


def test_a_file_that_is_not_a_database_is_one_clear_line(tmp_path):
    bogus = tmp_path / "cases.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    proc = run_cli("chat", stdin="hi\n", env={"SMSGUARD_DB": str(bogus)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error:")

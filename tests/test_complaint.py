"""Complaint drafts: quoted evidence, the right source ids, placeholders for the user, nothing invented."""

import json
import re

import pytest

from bot.core.complaint import Message, draft_complaints, fitting_channels
from tests.helpers import run_cli

THREAT = (
    "尊敬的张伟：你在XX金融的欠款已严重逾期，再不还钱就爆你通讯录，明天找人去你家堵你，打断你的腿。"
    "身份证110105199003071234已登记。联系专员13812345678"
)
SCAM = "【京东金融】您的白条账户未注销将影响征信，请添加客服QQ办理注销并将额度转入监管账户。"
KNOWN_NUMBERS = {"110", "12378", "96110", "12321", "13812345678"}


def drafts_for(kb, analyzer, text, channel=None, **facts):
    return draft_complaints(kb, [Message(text, analyzer.analyze(text), **facts)], channel)


def test_threat_gets_lender_12378_and_110_drafts_quoting_the_threat(kb, analyzer):
    drafts = {d.channel: d for d in drafts_for(kb, analyzer, THREAT)}
    assert set(drafts) == {"lender", "12378", "110"}
    for draft in drafts.values():
        assert "打断你的腿" in draft.body and "爆你通讯录" in draft.body
        assert "13812345678" in draft.body  # the collector's number is evidence
        assert "张伟" not in draft.body and "110105199003071234" not in draft.body
        assert "【姓名】" in draft.body and "【身份证号】" in draft.body and "【收到时间】" in draft.body
        assert "L13 第25条" in draft.sources and "L3 第1033条" in draft.sources


def test_scam_gets_police_and_anti_fraud_drafts(kb, analyzer):
    channels = [d.channel for d in drafts_for(kb, analyzer, SCAM)]
    assert channels == ["110", "96110", "12321"]
    draft = drafts_for(kb, analyzer, SCAM, "96110")[0]
    assert "转入监管账户" in draft.body and "L23 第30条" in draft.sources


def test_forward_metadata_fills_the_placeholders(kb, analyzer):
    draft = drafts_for(
        kb, analyzer, THREAT, "lender", received_at="2026-11-27 21:14", sender="+86 171 0000 1111"
    )[0]
    assert "2026-11-27 21:14" in draft.body and "+86 171 0000 1111" in draft.body
    assert "【收到时间】" not in draft.body


def test_no_draft_for_a_lawful_reminder(kb, analyzer):
    text = "【工商银行】您尾号8812的信用卡本期应还1,250.00元，到期还款日12月05日。"
    assert fitting_channels(kb, [Message(text, analyzer.analyze(text))]) == ()


def test_drafts_invent_no_numbers_and_cite_only_known_sources(kb, analyzer):
    for text in (THREAT, SCAM):
        for draft in drafts_for(kb, analyzer, text):
            numbers = set(re.findall(r"(?<![0-9])[0-9]{3,}(?![0-9])", draft.body))
            allowed = (
                KNOWN_NUMBERS | set(re.findall(r"[0-9]{3,}", text)) | {"2012", "2026", "1033", "1038", "1024"}
            )
            allowed |= {str(n) for n in range(10, 400)}  # article numbers
            assert numbers <= allowed, numbers - allowed
            for ref in draft.sources:
                assert ref.split(" ")[0] in kb.sources


def test_cli_json_and_exit_codes():
    proc = run_cli("complaint", "--channel", "110", "--json", THREAT)
    assert proc.returncode == 0, proc.stderr
    drafts = json.loads(proc.stdout)
    assert [set(d) for d in drafts] == [{"channel", "to", "subject", "body", "sources"}]
    assert "打断你的腿" in drafts[0]["body"]
    refused = run_cli("complaint", "--channel", "96110", THREAT)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert run_cli("complaint", "--channel", "999", THREAT).returncode == 2


@pytest.mark.parametrize("channel", ["lender", "12378", "110"])
def test_cli_plain_text_for_each_threat_channel(channel):
    proc = run_cli("complaint", "--channel", channel, THREAT)
    assert proc.returncode == 0 and "打断你的腿" in proc.stdout and "【姓名】" in proc.stdout

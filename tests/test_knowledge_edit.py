"""Textual YAML edits for `cases promote`: the rest of the file stays byte for byte."""

from __future__ import annotations

import pytest
import yaml

from bot.knowledge.edit import EditError, add_list_item, yaml_scalar

TOPIC = """\
# 手写的注释要保留
id: home-visit
title: 说要上门催收
questions:
  - 上门催收合法吗   # 最常见的问法
  - 催收的人真的会上门吗

  # 以下是外访相关
  - 外访催收是什么意思
messages:
  - 【XX金融】我司已安排外访专员近日上门核实。
keywords: [上门, 外访]
answer: >-
  很多"明天上门"的短信只是施压。
steps:
- 不开门
- 核实
- 报警
"""


def added_lines(before: str, after: str) -> list[str]:
    old = before.splitlines()
    return [line for line in after.splitlines() if line not in old]


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        ("questions", "催收说要上门怎么办", "  - 催收说要上门怎么办"),
        ("messages", "最后通知：明天到你家", "  - 最后通知：明天到你家"),
        ("keywords", "家访", None),  # a flow list: the item goes inside the brackets
        ("steps", "录音", "- 录音"),  # a list at column 0 keeps its indentation
    ],
)
def test_append_keeps_everything_else(key, value, line):
    after = add_list_item(TOPIC, key, value)
    data = yaml.safe_load(after)
    assert data[key][-1] == value
    assert (
        after.startswith("# 手写的注释要保留\n") and "# 最常见的问法" in after and "# 以下是外访相关" in after
    )
    if line is not None:
        assert added_lines(TOPIC, after) == [line]
        assert len(after.splitlines()) == len(TOPIC.splitlines()) + 1
    else:
        assert 'keywords: [上门, 外访, "家访"]' in after


def test_item_goes_after_the_last_item_not_after_a_trailing_comment():
    text = "id: x\nquestions:\n  - 一\n  # 末尾注释\nanswer: 好\n"
    assert (
        add_list_item(text, "questions", "二")
        == "id: x\nquestions:\n  - 一\n  - 二\n  # 末尾注释\nanswer: 好\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: x\ntitle: 标题\nanswer: 好\n", "id: x\ntitle: 标题\nquestions:\n  - 问\nanswer: 好\n"),
        ("id: x\nquestions: []\nanswer: 好\n", "id: x\nquestions:\n  - 问\nanswer: 好\n"),
        ("id: x\nquestions:\nanswer: 好\n", "id: x\nquestions:\n  - 问\nanswer: 好\n"),
        ("id: x\ntitle: 标题", "id: x\ntitle: 标题\nquestions:\n  - 问\n"),  # no final newline
    ],
)
def test_missing_or_empty_list_is_created(text, expected):
    assert add_list_item(text, "questions", "问") == expected


@pytest.mark.parametrize(
    "value",
    [
        "[手机号]说要上门",
        "催收: 明天上门",
        "上门 #真的吗",
        "'引号'开头",
        '他说"明天来"',
        "- 破折号",
        "yes",
        "123",
    ],
)
def test_values_that_need_quoting_read_back_unchanged(value):
    after = add_list_item("id: x\nquestions:\n  - 问\n", "questions", value)
    assert yaml.safe_load(after)["questions"] == ["问", value]
    assert yaml.safe_load(f"- {yaml_scalar(value)}") == [value]


def test_layouts_it_cannot_extend_are_refused():
    with pytest.raises(EditError):
        add_list_item("id: x\nquestions: 一个字符串\n", "questions", "问")
    with pytest.raises(EditError):
        add_list_item("id: [\n", "questions", "问")

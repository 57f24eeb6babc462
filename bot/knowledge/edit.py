"""Small textual edits of knowledge YAML files that keep everything else (comments, order, wrapping) as is.

A YAML re-dump would reformat an operator's hand-written file; these functions insert lines instead and then
check that the result parses to exactly the old data plus the new item.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml


class EditError(ValueError):
    """The edit cannot be made textually (an unusual layout): edit the file by hand."""


# Where a missing list key goes: after the first of these keys that the file has.
_ANCHORS = {"questions": ("title", "id"), "messages": ("questions", "title", "id")}
_INDENT = "  "


def yaml_scalar(value: str) -> str:
    """``value`` as a one-line YAML scalar for a block list item: plain when that reads back unchanged."""
    if "\n" not in value and value == value.strip():
        try:
            if yaml.safe_load(f"- {value}\n") == [value]:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _top_level_key(line: str) -> str | None:
    match = re.match(r"^([A-Za-z_][\w-]*):(?:\s|$)", line)
    return match[1] if match else None


def _block_end(lines: list[str], start: int) -> int:
    """Index after the last content line of the value that begins on line ``start`` (a top-level key)."""
    end = start + 1
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments do not extend the block
        if not lines[j].startswith((" ", "\t")) and not stripped.startswith("-"):
            break  # the next top-level key
        end = j + 1
    return end


def _with_newline(line: str) -> str:
    return line if line.endswith("\n") else line + "\n"


def add_list_item(text: str, key: str, value: str) -> str:
    """Append ``value`` to the top-level list ``key`` of one YAML mapping document, textually."""
    try:
        before = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EditError(f"not valid YAML: {exc}") from None
    if not isinstance(before, dict):
        raise EditError("expected one mapping at the top level")
    lines = text.splitlines(keepends=True)
    index = next((i for i, line in enumerate(lines) if _top_level_key(line) == key), None)
    item = yaml_scalar(value)
    if index is None:
        anchor = next(
            (
                i
                for name in _ANCHORS.get(key, ())
                for i, line in enumerate(lines)
                if _top_level_key(line) == name
            ),
            None,
        )
        at = _block_end(lines, anchor) if anchor is not None else len(lines)
        if at > 0:
            lines[at - 1] = _with_newline(lines[at - 1])
        lines[at:at] = [f"{key}:\n", f"{_INDENT}- {item}\n"]
    else:
        rest = lines[index].split(":", 1)[1]
        value_part = rest.split(" #", 1)[0].strip()
        if value_part in ("", "[]", "null", "~"):
            end = _block_end(lines, index)
            items = [j for j in range(index + 1, end) if lines[j].lstrip().startswith("-")]
            if value_part or not items:  # empty or null: start a block list
                lines[index] = f"{key}:\n"
                lines[index + 1 : index + 1] = [f"{_INDENT}- {item}\n"]
            else:
                first = lines[items[0]]
                indent = first[: len(first) - len(first.lstrip())]
                lines[end - 1] = _with_newline(lines[end - 1])
                lines[end:end] = [f"{indent}- {item}\n"]
        elif value_part.startswith("[") and value_part.endswith("]"):
            head, _, tail = lines[index].rpartition("]")
            lines[index] = f"{head}, {json.dumps(value, ensure_ascii=False)}]{tail}"
        else:
            raise EditError(f"{key!r} is not a list this tool can extend; add the phrasing by hand")
    new_text = "".join(lines)
    _check_only_appended(before, new_text, key, value)
    return new_text


def _check_only_appended(before: dict[str, Any], new_text: str, key: str, value: str) -> None:
    try:
        after = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise EditError(f"the edit would break the YAML ({exc}); add the phrasing by hand") from None
    expected = dict(before)
    expected[key] = [*(before.get(key) or []), value]
    if after != expected:
        raise EditError("the edit would change more than the list; add the phrasing by hand")

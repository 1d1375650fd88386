"""The JSONL sink's batch encoder writes what ``json.dumps`` would, line by line."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from connector_core.json_encoding import encode_json, json_lines

VALUES: list[Any] = [
    {"name": "Zoë", "city": "東京", "emoji": "🙂", "quote": 'say "hi"\n', "nul": "\x00"},
    {"n": 1, "f": 1.5, "big": 10**30, "b": True, "none": None, "nan": float("nan"), "inf": float("-inf")},
    {"nested": {"list": [1, {"a": []}], "empty": {}}, "tuple": (1, 2)},
    {"date": datetime.date(2024, 1, 2), "decimal": decimal.Decimal("1.10"), 3: "int key", None: "null key"},
    {},
    [1, "two"],
    "text",
]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def test_each_line_is_json_dumps_of_the_value() -> None:
    assert json_lines(VALUES) == "".join(dumps(value) + "\n" for value in VALUES)
    assert [encode_json(value) for value in VALUES] == [dumps(value) for value in VALUES]


def test_no_values_no_text() -> None:
    assert json_lines([]) == ""

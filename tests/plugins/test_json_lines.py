"""The JSONL sink's batch encoder writes what ``json.dumps`` would, line by line, and always JSON."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from connector_core.json_encoding import encode_json, json_lines

VALUES: list[Any] = [
    {"name": "Zoë", "city": "東京", "emoji": "🙂", "quote": 'say "hi"\n', "nul": "\x00"},
    {"n": 1, "f": 1.5, "big": 10**30, "b": True, "none": None, "tiny": 5e-324, "neg": -0.0},
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


class Measure(float):
    """A float subclass, as numpy's ``float64`` is one."""


NON_FINITE: list[tuple[Any, Any]] = [
    ({"nan": float("nan")}, {"nan": "NaN"}),
    ({"v": [1.5, float("inf"), {"w": -float("inf")}]}, {"v": [1.5, "Infinity", {"w": "-Infinity"}]}),
    ({float("inf"): 1, "t": (float("nan"),)}, {"Infinity": 1, "t": ["NaN"]}),
    ({"sub": Measure("nan"), "ok": Measure(2.5)}, {"sub": "NaN", "ok": 2.5}),
]


def strict_loads(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_float_json_cannot_spell_is_written_as_its_name() -> None:
    """NaN and the infinities are not JSON (``json.dumps`` writes them bare, which strict readers refuse):
    they are written as text, whichever way the batch is encoded, and the values around them as before."""
    values = [{"before": 1}] + [value for value, _ in NON_FINITE] + [{"after": 2}]
    lines = json_lines(values).splitlines()
    assert [strict_loads(line) for line in lines] == [{"before": 1}] + [want for _, want in NON_FINITE] + [{"after": 2}]
    assert [strict_loads(encode_json(value)) for value, _ in NON_FINITE] == [want for _, want in NON_FINITE]


def test_no_values_no_text() -> None:
    assert json_lines([]) == ""

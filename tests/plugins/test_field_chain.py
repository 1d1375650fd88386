"""The compiled ``fields`` mapper against a plain reference, over generated rules and messy records."""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest

from connector_core.components import Emitter
from connector_core.records import Record
from crmsync_plugins.transforms.field_rules import CompiledRule, RecordRejected, compile_rule
from crmsync_plugins.transforms.fields import FieldRule, FieldsMapper, FieldsOptions
from crmsync_plugins.transforms.functions import TEXT_RESULT, TRANSFORMS

from .kit import build

COLUMNS = ["First Name", "Email", "Website", "Phone", "n", "flag", "Notes"]
TEXTS = [
    "",
    " ",
    "\t \n",
    "Ada",
    "  Ada Lovelace  ",
    "ADA@Example.COM",
    " ada@example.com ",
    "Ada <ada@Sub.Example.org.>",
    "no-at-sign",
    "https://www.Example.com/about",
    "HTTP://user:pw@WWW.x.io:8080/?q",
    "[::1]",
    "example.com.",
    "+1 (555) 010-9999",
    "42",
    " 42.0 ",
    "1.5",
    "yes",
    "off",
    "maybe",
    "Zoë, Łukasz & 東京",
    "Dr. Ada M. Lovelace Jr.",
    "Lovelace, Ada",
    "line\nbreak",
    "{braces}",
    "\u00a0",
]
OTHERS: list[Any] = [None, 0, 7, 2.5, 3.0, True, False, [], ["a"], {}, {"k": "v"}]


def messy_value(rng: random.Random) -> Any:
    return rng.choice(TEXTS) if rng.random() < 0.8 else rng.choice(OTHERS)


def messy_row(rng: random.Random) -> dict[str, Any]:
    """A record as CSV, JSONL or SQLite sources give them: mostly text, sometimes other types or missing fields."""
    return {column: messy_value(rng) for column in COLUMNS if rng.random() < 0.9}


def random_rule(rng: random.Random, earlier: list[str]) -> dict[str, Any]:
    """A rule in spec form, drawn from every option a rule has."""
    rule: dict[str, Any] = {}
    source = rng.random()
    if source < 0.1:
        rule["value"] = rng.choice([*TEXTS, 5, 1.5, True])
    elif source < 0.25:
        names = [*COLUMNS, *earlier, "missing"]
        one, two = (rng.choice(names) for _ in range(2))
        shapes = ["{1} {2}", "<{1}>", "{1}", "plain text", "{{x}} {1!r}", "{1:>6}"]
        rule["template"] = rng.choice(shapes).replace("1", one).replace("2", two)
    elif source < 0.9:
        rule["from"] = rng.choice([*COLUMNS, "missing"])
    for flag in ("strip", "lower", "upper", "required"):
        if rng.random() < 0.2 and not (flag == "upper" and rule.get("lower")):
            rule[flag] = True
    if rng.random() < 0.5:
        rule["transform"] = [rng.choice(list(TRANSFORMS)) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.2:
        rule["default"] = rng.choice(["n/a", "", "0", 0, "x"])
    if rng.random() < 0.2:
        rule["type"] = rng.choice(["str", "int", "float", "bool"])
    return rule


def reference(rules: list[CompiledRule], keep: bool, drop: frozenset[str], batch: list[Record]) -> Emitter:
    """The rules applied one field at a time, each by its ``produce`` and ``finish`` functions."""
    out = Emitter()
    for record in batch:
        data = record.data
        result = {k: v for k, v in data.items() if k not in drop} if keep else {}
        try:
            for rule in rules:
                value = data.get(rule.source) if rule.produce is None else rule.produce(data, result)
                result[rule.field] = value if rule.finish is None else rule.finish(value)
        except RecordRejected as exc:
            out.fail(record, exc.reason)
            continue
        out.emit(record.with_data(result))
    return out


def outcome(out: Emitter) -> tuple[list[Any], list[Any]]:
    """What an emitter got, comparable exactly: values with their types, and key order."""
    passed = [(r.key, r.position, [(k, type(v), v) for k, v in r.data.items()]) for r in out.routed.get("default", [])]
    failed = [(f.record.position, f.reason) for f in out.failed]
    return passed, failed


@pytest.mark.parametrize("seed", range(60))
def test_compiled_rules_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    fields: dict[str, Any] = {}
    for number in range(rng.randint(1, 8)):
        name = rng.choice([f"f{number}", *COLUMNS])
        fields[name] = random_rule(rng, list(fields))
    keep = rng.random() < 0.3
    drop = sorted(rng.sample(COLUMNS, rng.randint(0, 2))) if keep else []
    mapper = build(FieldsMapper, {"fields": fields, "keep": keep, "drop": drop})
    options: FieldsOptions = mapper.options
    rules = [compile_rule(name, rule or FieldRule()) for name, rule in options.fields.items()]
    batch = [Record(messy_row(rng), f"k{n}", "src", n) for n in range(400)]
    compiled = Emitter()
    mapper.process(batch, compiled)
    assert outcome(compiled) == outcome(reference(rules, keep, frozenset(drop), batch))


def test_field_names_are_data_never_code() -> None:
    tricky = ["a'b", 'c"d', "e\nf", "{g}", "h\\", "__import__('os')", "v0"]
    fields = {name: {"from": name, "strip": True} for name in tricky}
    fields["both"] = {"template": "{a'b}|{v0}|{__import__('os')}"}
    mapper = build(FieldsMapper, {"fields": fields})
    out = Emitter()
    row = {name: f" {index} " for index, name in enumerate(tricky)}
    mapper.process([Record(row, "k", "src", 1)], out)
    assert out.routed["default"][0].data == {**{name: str(i) for i, name in enumerate(tricky)}, "both": "0|6|5"}


def test_strip_lower_and_upper_never_blank_a_non_blank_string() -> None:
    # The compiled mapper skips the emptiness check after these: proved here for every character.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char.isspace():
            continue
        for method in (str.strip, str.lower, str.upper):
            result = method(char)
            assert result and not result.isspace(), (hex(code), method.__name__)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_return_text_or_none(name: str) -> None:
    # The compiled mapper relies on it: text or None after a transform, never None for TEXT_RESULT ones.
    for value in [*TEXTS[3:], 5, 2.5, True, ["x"], {"a": 1}]:
        result = TRANSFORMS[name](value)
        assert result is None or result.__class__ is str
        if name in TEXT_RESULT:
            assert result is not None

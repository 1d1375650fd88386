"""Every option of every built-in component, given a value of the wrong type, is refused when the spec loads
with one plain line naming file, line and key: no library internals, no other exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from connector_core.errors import SpecError
from connector_core.plugin_manager import get_plugin_host
from connector_core.spec.converter import yaml_name
from connector_core.spec.loader import load_spec

HOST = get_plugin_host()
SECTIONS = {"connections": HOST.connections, "sources": HOST.sources, "mappers": HOST.mappers, "sinks": HOST.sinks}
OPTIONS = [
    (section, name, yaml_name(field.name))
    for section, registry in SECTIONS.items()
    for name in registry.names()
    for field in attrs.fields(registry.get(name).cls.Options)  # type: ignore[union-attr]
]
WRONG: list[Any] = [[[1]], {"a": [1]}, "some text", 2.5, True, None]
#: Words of Python's and cattrs' own messages that must not reach a user.
INTERNALS = (
    "typing",
    "<class",
    "invalid literal",
    "NoneType",
    "has no attribute",
    "unknown error",
    "could not convert",
)


@pytest.mark.parametrize(("section", "type_name", "key"), OPTIONS, ids=[f"{t}.{k}" for _, t, k in OPTIONS])
def test_wrong_values_give_plain_one_line_errors(tmp_path: Path, section: str, type_name: str, key: str) -> None:
    path = tmp_path / "job.yaml"
    for value in WRONG:
        body: dict[str, Any] = {"type": type_name, key: value}
        if section in ("mappers", "sinks"):
            body["inputs"] = ["leads"]
        spec = {"version": 1, "job": "j", "sources": {"leads": {"type": "csv", "path": "in.csv"}}, section: {"c": body}}
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        try:
            load_spec(path, HOST, {})
        except SpecError as error:
            for problem in error.problems:
                assert problem.startswith(f"{path}:"), problem
                assert "\n" not in problem
                assert not any(word in problem for word in INTERNALS), problem

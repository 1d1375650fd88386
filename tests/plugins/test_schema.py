"""``crmsync schema``: a JSON Schema every example spec validates against, and that flags misspelled options."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from connector_core.cli import main
from connector_core.plugin_manager import get_plugin_host
from connector_core.spec.schema import spec_schema

ROOT = Path(__file__).resolve().parents[2]
#: The flagship example job, shipped inside the package.
EXAMPLE = ROOT / "plugins" / "apollo" / "example" / "config.example.yaml"
BUILT_INS = "files,transforms,apollo"
SCHEMA_LINE = "# yaml-language-server: $schema="
#: Example specs shipped with the project, wherever they live.
EXAMPLES = sorted(
    path
    for pattern in ("*.yaml", "examples/**/*.yaml", "docs/**/*.yaml", "plugins/**/*.yaml", "connector_core/**/*.yaml")
    for path in ROOT.glob(pattern)
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_schema(get_plugin_host())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, spec: dict[str, Any]) -> list[tuple[list[Any], str]]:
    return [(list(error.absolute_path), error.message) for error in validator.iter_errors(spec)]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_there_are_example_specs() -> None:
    assert EXAMPLE in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_example_spec_is_valid_and_names_the_schema(path: Path, validator) -> None:
    assert errors(validator, load(path)) == []
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(SCHEMA_LINE), f"{path} should start with a {SCHEMA_LINE}... line for editors"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_examples_point_editors_at_the_committed_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert (path.parent / first.removeprefix(SCHEMA_LINE)).resolve() == ROOT / "crmsync.schema.json"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_misspelled_option_of_any_component_is_flagged(path: Path, validator) -> None:
    spec = load(path)
    for section in ("connections", "sources", "mappers", "sinks"):
        for name, body in spec.get(section, {}).items():
            broken = copy.deepcopy(spec)
            broken[section][name][f"{next(iter(body))}_typo"] = 1
            found = errors(validator, broken)
            assert any(where == [section, name] and "_typo" in message for where, message in found), (section, name)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda spec: spec.update(jobb="x"), []),
        (lambda spec: spec["settings"].update(max_eror_rate=0.1), ["settings"]),
        (lambda spec: spec["connections"]["apollo"].update(auth="basic"), ["connections", "apollo", "auth"]),
        (lambda spec: spec["sinks"]["created"].update(type="jsonll"), ["sinks", "created", "type"]),
        (lambda spec: spec["mappers"]["enrich"].update(batch_size=11), ["mappers", "enrich", "batch_size"]),
        (lambda spec: spec["mappers"]["enrich"].pop("connection"), ["mappers", "enrich"]),
        (
            lambda spec: spec["mappers"]["people"]["fields"]["domain"].update(transform="url_domian"),
            ["mappers", "people", "fields", "domain"],  # a rule or null: jsonschema reports the anyOf
        ),
        (
            lambda spec: spec["mappers"]["people"]["fields"]["email"].update(transform=["strip", "lowr"]),
            ["mappers", "people", "fields", "email"],
        ),
    ],
    ids=[
        "top-level key",
        "setting",
        "enum value",
        "component type",
        "batch over the API limit",
        "required option",
        "transform name",
        "transform name in a list",
    ],
)
def test_other_mistakes_are_flagged(change, where: list[str], validator) -> None:
    spec = load(EXAMPLE)
    change(spec)
    assert [found for found, _ in errors(validator, spec) if found[: len(where)] == where]


def test_env_references_are_accepted_where_numbers_go(validator) -> None:
    spec = load(EXAMPLE)
    spec["mappers"]["enrich"]["batch_size"] = "${BATCH}"
    spec["settings"] = {"max_error_rate": "${RATE:-0.1}", "stop_on_error": "${STOP}"}
    assert errors(validator, spec) == []


def test_the_committed_schema_matches_the_built_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_PLUGINS", BUILT_INS)
    committed = json.loads((ROOT / "crmsync.schema.json").read_text(encoding="utf-8"))
    regenerate = f"CRMSYNC_PLUGINS={BUILT_INS} crmsync schema -o crmsync.schema.json"
    assert committed == spec_schema(get_plugin_host()), f"crmsync.schema.json is stale: regenerate with {regenerate}"


def test_schema_command_prints_or_writes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == printed


def test_option_help_becomes_the_description(validator) -> None:
    contacts = validator.schema["$defs"]["mapper.apollo.bulk_match"]["properties"]["connection"]
    assert "apollo connection" in contacts["description"]

"""Environment interpolation in specs (and which values become secrets), and relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector_core import testing

from . import kit
from .conftest import CANARY, Jobs

STAMP = """\
version: 1
job: env
sources:
  nums:
    type: t.numbers
    count: 2
    message: {message}
mappers:
  stamp:
    type: t.stamp
    inputs: [nums]
    values: {values}
sinks:
  out:
    type: t.collect
    inputs: [stamp]
"""


def stamp_values(jobs: Jobs, values: str, environ: dict[str, str], message: str = "plain") -> object:
    spec = jobs.load(STAMP.format(values=values, message=message), environ)
    return spec.components["stamp"].options.values


def test_plain_variable(jobs: Jobs) -> None:
    assert stamp_values(jobs, "{owner: '${OWNER}'}", {"OWNER": "ada"}) == {"owner": "ada"}


def test_variable_inside_a_string(jobs: Jobs) -> None:
    assert stamp_values(jobs, "{url: 'https://${HOST}:${PORT}/v1'}", {"HOST": "crm.example", "PORT": "8443"}) == {
        "url": "https://crm.example:8443/v1"
    }


def test_default_used_when_unset_or_empty(jobs: Jobs) -> None:
    values = "{a: '${A:-fallback}', b: '${B:-}', c: '${C:-x y z}'}"
    assert stamp_values(jobs, values, {"C": ""}) == {"a": "fallback", "b": "", "c": "x y z"}


def test_default_ignored_when_set(jobs: Jobs) -> None:
    assert stamp_values(jobs, "{a: '${A:-fallback}'}", {"A": "given"}) == {"a": "given"}


def test_dollar_escape(jobs: Jobs) -> None:
    values = "{price: 'cost $$5', literal: '$${NOT_A_VAR}', lone: 'a $ sign', bare: '$HOME'}"
    assert stamp_values(jobs, values, {"NOT_A_VAR": "oops"}) == {
        "price": "cost $5",
        "literal": "${NOT_A_VAR}",
        "lone": "a $ sign",
        "bare": "$HOME",
    }


def test_nested_lists_and_dicts_at_any_depth(jobs: Jobs) -> None:
    values = "{a: {b: [1, {c: '${DEEP}', d: ['${DEEP}-x', [ '${DEEP:-no}' ]]}]}}"
    assert stamp_values(jobs, values, {"DEEP": "v"}) == {"a": {"b": [1, {"c": "v", "d": ["v-x", ["v"]]}]}}


def test_interpolated_values_are_typed_by_the_options(jobs: Jobs) -> None:
    text = STAMP.format(values="{}", message="m").replace("count: 2", "count: ${COUNT}")
    spec = jobs.load(text, {"COUNT": "7"})
    assert spec.components["nums"].options.count == 7


def test_env_values_are_secrets_unless_public(jobs: Jobs) -> None:
    text = "public_env: [OWNER]\n" + STAMP.format(
        values="{owner: '${OWNER}', token: '${TOKEN}', region: '${REGION:-eu-west-1}'}", message="'${GREETING}'"
    )
    spec = jobs.load(text, {"OWNER": "ada-lovelace", "TOKEN": CANARY, "GREETING": "hello there"})
    assert spec.secrets == frozenset({CANARY, "hello there"})


def test_defaults_are_not_secrets(jobs: Jobs) -> None:
    spec = jobs.load(STAMP.format(values="{region: '${REGION:-eu-west-1}'}", message="m"), {})
    assert spec.secrets == frozenset()


def test_run_uses_interpolated_values(jobs: Jobs) -> None:
    report = jobs.run(STAMP.format(values="{owner: '${OWNER}'}", message="m"), {"OWNER": "ada"})
    assert report.status == "success"
    assert kit.STORE["out"] == [{"i": 0, "owner": "ada"}, {"i": 1, "owner": "ada"}]


def test_cli_reads_the_process_environment(jobs: Jobs, kit_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from connector_core.cli import main

    monkeypatch.setenv("OWNER", "grace")
    path = jobs.write(STAMP.format(values="{owner: '${OWNER}'}", message="m"))
    assert main(["run", str(path)]) == 0
    assert [row["owner"] for row in kit.STORE["out"]] == ["grace", "grace"]


FILE_SINK = """\
version: 1
job: paths
sources:
  nums: {{type: t.numbers, count: 3}}
sinks:
  out:
    type: t.file
    inputs: [nums]
    path: {path}
"""


def test_relative_path_resolves_against_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = testing.write_spec(spec_dir, FILE_SINK.format(path="out/numbers.txt"))
    spec = testing.load(path, {}, [kit.KIT])
    assert spec.components["out"].options.path == spec_dir.resolve() / "out" / "numbers.txt"
    report = testing.run_job(Path("../specs/job.yaml"), {}, [kit.KIT])
    assert report.status == "success", report.failure
    assert (spec_dir / "out" / "numbers.txt").read_text() == "0\n1\n2\n"
    assert not (elsewhere / "out").exists()


def test_relative_path_from_env_resolves_against_the_spec_folder(jobs: Jobs) -> None:
    spec = jobs.load(FILE_SINK.format(path="${OUT_DIR}/n.txt"), {"OUT_DIR": "exports"})
    assert spec.components["out"].options.path == jobs.folder.resolve() / "exports" / "n.txt"


def test_absolute_path_is_kept(jobs: Jobs, tmp_path: Path) -> None:
    target = tmp_path / "abs" / "n.txt"
    spec = jobs.load(FILE_SINK.format(path=str(target)))
    assert spec.components["out"].options.path == target


def test_home_path_is_expanded(jobs: Jobs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = jobs.load(FILE_SINK.format(path="~/n.txt"))
    assert spec.components["out"].options.path == tmp_path / "home" / "n.txt"

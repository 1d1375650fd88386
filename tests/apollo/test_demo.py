"""``crmsync demo``: the packaged example job against an in-process sandbox, from any folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from connector_core.cli import main
from connector_core.testing import read_jsonl
from crmsync_plugins.apollo.demo import EXAMPLE_DIR, EXAMPLE_SPEC, OUT_ENV

#: What the example job makes of its 25 leads against the default sandbox seed.
EXPECTED = {"created.jsonl": 19, "existing.jsonl": 3, "missing.jsonl": 3, "skipped.jsonl": 0, "errors.jsonl": 0}


def outputs(folder: Path) -> dict[str, int]:
    return {name: len(read_jsonl(folder / name)) for name in EXPECTED}


def test_demo_runs_from_an_empty_folder_into_its_out_folder_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(OUT_ENV, raising=False)
    for _ in range(2):  # a second demo replaces the outputs of the first, it does not add to them
        assert main(["-q", "demo"]) == 0
        assert outputs(tmp_path / "out") == EXPECTED
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    assert f"{tmp_path / 'out' / 'created.jsonl'}" in capsys.readouterr().out
    assert not (EXAMPLE_DIR / "out").exists()  # nothing written inside the installed package


def test_demo_out_option_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "demo", "--out", "results/demo", "--report", "report.json"]) == 0
    assert outputs(tmp_path / "results" / "demo") == EXPECTED
    assert (tmp_path / "report.json").is_file() and not (tmp_path / "out").exists()
    assert OUT_ENV not in os.environ  # the demo puts the environment back


def test_copy_to_writes_a_runnable_job_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--copy-to", "job"]) == 0
    spec = tmp_path / "job" / "config.example.yaml"
    first, *rest = spec.read_bytes().splitlines(keepends=True)
    assert rest == EXAMPLE_SPEC.read_bytes().splitlines(keepends=True)[1:]
    # Editors find the schema the first line names, beside the copy; the spec validates against it.
    assert first == b"# yaml-language-server: $schema=crmsync.schema.json\n"
    schema = json.loads((tmp_path / "job" / "crmsync.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(spec.read_text(encoding="utf-8")))
    assert (tmp_path / "job" / "data" / "leads.csv").read_bytes() == (EXAMPLE_DIR / "data" / "leads.csv").read_bytes()
    assert main(["-q", "demo", "--spec", str(spec), "--out", "job/out"]) == 0
    assert outputs(tmp_path / "job" / "out") == EXPECTED
    spec.write_text("# my edits\n")
    capsys.readouterr()
    assert main(["demo", "--copy-to", "job"]) == 2
    assert "already exists" in capsys.readouterr().err and spec.read_text() == "# my edits\n"


def test_demo_with_a_missing_spec_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--spec", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: not found" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["a-file", "a-file/below"])
def test_demo_out_that_cannot_be_a_folder_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    """Said in one line before the job starts, not as each sink's failure to open, under a list of outputs that
    were never written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("mine\n")
    assert main(["demo", "--out", out]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"crmsync: error: --out {out}: ") and "name a folder" in line
    assert "is a file" in line if out == "a-file" else "cannot be made a folder" in line
    assert (tmp_path / "a-file").read_text() == "mine\n"


def test_the_repository_copy_of_the_example_job_is_the_packaged_one() -> None:
    # `crmsync run config.example.yaml` from a checkout (the README) runs the very job `crmsync demo` ships.
    root = Path(__file__).resolve().parents[2]
    repository, packaged = (
        path.read_text(encoding="utf-8").splitlines() for path in (root / "config.example.yaml", EXAMPLE_SPEC)
    )
    assert repository[1:] == packaged[1:]  # the first line points editors at the schema, relative to each file
    assert (root / "data" / "leads.csv").read_bytes() == (EXAMPLE_DIR / "data" / "leads.csv").read_bytes()

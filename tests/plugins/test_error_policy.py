"""The default error policy: a run fails when it rejected every input record, unless the spec allows that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.testing import read_jsonl

from .kit import Write

SPEC = """\
version: 1
job: policy
settings: {settings}
sources:
  people: {{type: csv, path: people.csv}}
mappers:
  shape:
    type: fields
    inputs: [people]
    fields:
      email: {{required: true}}
sinks:
  good: {{type: jsonl, inputs: [shape], path: out/good.jsonl}}
  bad: {{type: jsonl, inputs: [errors], path: out/errors.jsonl}}
"""


def run(tmp_path: Path, write: Write, emails: list[str], settings: str = "{}") -> tuple[int, dict]:
    write("people.csv", "name,email\n" + "".join(f"p{i},{email}\n" for i, email in enumerate(emails)))
    write("job.yaml", SPEC.format(settings=settings))
    code = main(["-q", "run", str(tmp_path / "job.yaml"), "--report", str(tmp_path / "report.json")])
    return code, json.loads((tmp_path / "report.json").read_text())


@pytest.mark.parametrize("count", [1, 3, 250])
def test_every_record_rejected_fails_the_run_by_default(tmp_path: Path, write: Write, count: int) -> None:
    code, report = run(tmp_path, write, [""] * count)
    assert code == 1 and report["status"] == "failed"
    assert report["failure"] == f"all {count} input records were rejected (set max_error_rate: 1 to allow it)"
    assert len(read_jsonl(tmp_path / "out" / "errors.jsonl")) == count  # the rejects are still written


@pytest.mark.parametrize("emails", [["", "", "a@x.io"], ["a@x.io"], []])
def test_a_run_that_delivered_something_or_read_nothing_succeeds(
    tmp_path: Path, write: Write, emails: list[str]
) -> None:
    code, report = run(tmp_path, write, emails)
    assert code == 0 and report["status"] == "success", report["failure"]


def test_max_error_rate_one_accepts_a_run_with_only_rejects(tmp_path: Path, write: Write) -> None:
    code, report = run(tmp_path, write, ["", ""], settings="{max_error_rate: 1}")
    assert code == 0 and report["status"] == "success"


def test_the_command_line_limit_replaces_the_default(tmp_path: Path, write: Write) -> None:
    write("people.csv", "name,email\np,\n")
    write("job.yaml", SPEC.format(settings="{}"))
    assert main(["-q", "run", str(tmp_path / "job.yaml"), "--max-error-rate", "1"]) == 0

"""The test kit's pytest fixtures (loaded through the ``pytest11`` entry point, no import needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import people, stranger, write_leads

JOB = """
version: 1
job: kit-fixtures
connections:
  apollo: {type: apollo, base_url: "${APOLLO_BASE_URL}", api_key: "${APOLLO_API_KEY}"}
sources:
  leads: {type: jsonl, path: leads.jsonl, key: email}
mappers:
  enrich: {type: apollo.bulk_match, connection: apollo, inputs: [leads]}
sinks:
  matched: {type: jsonl, inputs: [enrich.matched], path: out/matched.jsonl}
  missing: {type: csv, inputs: [enrich.missing], path: out/missing.csv}
  skipped: {type: jsonl, inputs: [enrich.skipped], path: out/skipped.jsonl}
  rejected: {type: jsonl, inputs: [errors], path: out/errors.jsonl}
"""


def test_a_job_against_the_sandbox_fixture(apollo_sandbox, crmsync_job, read_stream, tmp_path: Path) -> None:
    write_leads(tmp_path, [*people(3), stranger(1)])
    report = crmsync_job(JOB)
    assert report.status == "success", report.failure
    assert len(read_stream("out/matched.jsonl")) == 3
    assert [row["email"] for row in read_stream("out/missing.csv")] == ["nobody1@nowhere.invalid"]
    assert apollo_sandbox.base_url.startswith("http://127.0.0.1:")
    assert "sandbox-test-key" not in json.dumps(report.to_dict())


def test_crmsync_job_honours_the_tests_environment(crmsync_job, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "in.jsonl").write_text('{"n": 1}\n', encoding="utf-8")
    monkeypatch.setenv("KIT_OUT", "from-env.jsonl")
    spec = "version: 1\njob: env\nsources: {s: {type: jsonl, path: in.jsonl}}\n"
    spec += "sinks: {o: {type: jsonl, inputs: [s], path: '${KIT_OUT}'}}\n"
    assert crmsync_job(spec).status == "success"
    assert (tmp_path / "from-env.jsonl").is_file()
    assert crmsync_job(spec.replace("${KIT_OUT}", "${KIT_OUT:-explicit.jsonl}"), environ={}).status == "success"
    assert (tmp_path / "explicit.jsonl").is_file()

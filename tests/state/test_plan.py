"""``crmsync plan``: what a run would do, with no write or paid call."""

from __future__ import annotations

import json
from pathlib import Path

from connector_core.cli import main

from ..apollo.conftest import env, people, stranger, write_job, write_leads


def plan(spec: Path, monkeypatch, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["plan", str(spec), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_estimates_without_calling_apollo(tmp_path: Path, sandbox, monkeypatch, capsys) -> None:
    write_leads(tmp_path, [*people(23), {"title": "no identity"}])
    spec = write_job(tmp_path, state=True)
    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    report = plan(spec, monkeypatch, capsys)
    assert sandbox.sandbox.state()["calls"] == {}
    api = report["api"]
    assert api["planned_calls"] == {
        f"{sandbox.base_url}/api/v1/people/bulk_match": 3,
        f"{sandbox.base_url}/api/v1/contacts/bulk_create": 1,
    }
    assert api["estimated_credits"] == 23 and api["contacts_to_create"] == 23
    assert report["streams"]["enrich.missing"] == 1
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / ".crmsync").exists() and "state" not in report  # no state yet: none is created

    assert main(["-q", "run", str(spec)]) == 0  # now really run it
    write_leads(tmp_path, [*people(23), {"title": "no identity"}, stranger(1), *people(2, start=50)])
    report = plan(spec, monkeypatch, capsys)
    assert report["state"]["skipped_unchanged"] == 24  # already delivered (23 people, 1 missing)
    assert report["api"]["estimated_credits"] == 3 and report["api"]["contacts_to_create"] == 3
    refresh = plan(spec, monkeypatch, capsys, "--full-refresh")
    assert refresh["api"]["cache_hits"] == 23  # a full refresh would reuse the cache
    assert refresh["api"]["contacts_replayed_from_state"] == 23  # and the contacts this job already sent


def test_plan_reads_an_existing_state_and_changes_nothing(tmp_path: Path, sandbox, monkeypatch, capsys) -> None:
    write_leads(tmp_path, people(5))
    spec = write_job(tmp_path)  # no state section: --state switches it on
    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    state = tmp_path / "elsewhere" / "state.db"
    plan(spec, monkeypatch, capsys, "--state", str(state))
    assert not state.parent.exists()
    assert main(["-q", "run", str(spec), "--state", str(state)]) == 0
    before = {path.name: path.read_bytes() for path in state.parent.iterdir()}
    report = plan(spec, monkeypatch, capsys, "--state", str(state))
    assert report["state"]["skipped_unchanged"] == 5
    assert {path.name: path.read_bytes() for path in state.parent.iterdir()} == before


def test_plan_text_output(tmp_path: Path, sandbox, monkeypatch, capsys) -> None:
    write_leads(tmp_path, people(3))
    spec = write_job(tmp_path)
    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "nothing was sent or written" in out and "planned_calls" in out
    headline = out.splitlines()[0]
    assert headline.startswith("plan: ") and "3 input records" in headline and "success" not in out

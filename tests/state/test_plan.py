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


def test_plan_before_the_first_run_refuses_what_the_run_would(tmp_path: Path, capsys) -> None:
    """Without a state file yet a plan creates none, but it still refuses a state path the run would refuse: a
    sink's output file, or a path under a file. The run gives the same one-line error."""
    (tmp_path / "in.csv").write_text("id,email\n1,a@x.com\n")
    (tmp_path / "afile").write_text("")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "version: 1\njob: planned\nsources:\n  src: {type: csv, path: in.csv, key: id}\n"
        "sinks:\n  out: {type: jsonl, inputs: [src], path: out.jsonl}\n"
    )
    expected = {
        "afile/state.db": f"{tmp_path}/afile/state.db: cannot open the state database: {tmp_path}/afile is a file",
        "out.jsonl": f"$.sinks.out.path: sink 'out' writes {tmp_path}/out.jsonl, the job's state database",
    }
    for state, message in expected.items():
        for command in ("plan", "run"):
            assert main([command, str(spec), "--state", str(tmp_path / state)]) == 2
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile", "in.csv", "job.yaml"]
    assert main(["plan", str(spec), "--state", str(tmp_path / "new" / "state.db")]) == 0
    assert not (tmp_path / "new").exists(), "a plan creates no state"

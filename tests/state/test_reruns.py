"""Re-runs with state over real files: dedupe decisions, a fresh state beside old outputs, two versions of one
key, the errors file of every run, and failed runs that leave earlier outputs as they were.

Every run is checked for rows in = rows skipped as unchanged + rows delivered + rows in the error stream
(+ duplicates dropped by ``dedupe``), and the files for each record exactly once.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connector_core.cli import main
from connector_core.state.sqlite import SqliteStateStore
from connector_core.testing import read_jsonl, write_spec

JOB = """
version: 1
job: reruns
{state}
sources:
  leads: {{type: jsonl, path: leads.jsonl, key: id}}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      id: {{}}
      name: {{}}
      email: {{required: true}}
  unique: {{type: dedupe, inputs: [people], by: email}}
sinks:
  out: {{type: jsonl, inputs: [unique], path: out/people.jsonl, metadata: true}}
  table: {{type: csv, inputs: [unique], path: out/people.csv, columns: [id, name, email]}}
{duplicates}
  rejected: {{type: jsonl, inputs: [errors], path: out/errors.jsonl, metadata: true}}
"""


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest) -> str:
    """The job's ``state:`` line, for a SQLite file or a real PostgreSQL database."""
    if request.param == "sqlite":
        return "state: {path: state.db, max_attempts: 2}"
    return f"state: {{url: '{request.getfixturevalue('postgres_url')}', max_attempts: 2}}"


def job(folder: Path, state: str = "state: {path: state.db, max_attempts: 2}", duplicates: bool = False) -> Path:
    sink = "  dups: {type: jsonl, inputs: [unique.duplicates], path: out/dups.jsonl, metadata: true}"
    return write_spec(folder, JOB.format(state=state, duplicates=sink if duplicates else ""))


def leads(folder: Path, rows: list[dict[str, Any]]) -> None:
    (folder / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def run(spec: Path, *extra: str) -> dict[str, Any]:
    report = spec.parent / "report.json"
    code = main(["-q", "run", str(spec), "--report", str(report), *extra])
    data: dict[str, Any] = json.loads(report.read_text())
    data["exit_code"] = code
    return data


def accounted(report: dict[str, Any]) -> None:
    """Rows in = skipped unchanged + already delivered to ``out`` by an earlier run + delivered to ``out`` + error
    stream (rejects and set aside) + duplicates."""
    streams, state = report["streams"], report.get("state") or {}
    out = report["delivered"].get("out", 0) + state.get("already_delivered", {}).get("out", 0)
    parts = state.get("skipped_unchanged", 0) + out + streams.get("errors", 0) + streams.get("unique.duplicates", 0)
    assert report["input_records"] == parts, report


def keys(path: Path) -> list[str]:
    return [row["_key"] for row in read_jsonl(path)] if path.exists() else []


def csv_ids(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["id", "name", "email"], "one header row, at the top"
    assert ["id", "name", "email"] not in rows[1:]
    return [row[0] for row in rows[1:]]


def people(count: int) -> list[dict[str, Any]]:
    return [{"id": f"p{n}", "name": f"Person {n}", "email": f"p{n}@example.com"} for n in range(count)]


@pytest.mark.parametrize("duplicates_sink", [False, True])
def test_dedupe_decisions_are_remembered(tmp_path: Path, duplicates_sink: bool, any_store: str) -> None:
    rows = people(5)
    rows.insert(2, {"id": "twin", "name": "Twin of p0", "email": " P0@Example.com"})
    leads(tmp_path, rows)
    spec = job(tmp_path, any_store, duplicates=duplicates_sink)
    expected = ["p0", "p1", "p2", "p3", "p4"]
    for _ in range(3):
        report = run(spec)
        assert report["exit_code"] == 0
        accounted(report)
        assert sorted(keys(tmp_path / "out" / "people.jsonl")) == expected  # the twin never, on any run
        assert sorted(csv_ids(tmp_path / "out" / "people.csv")) == expected
        if duplicates_sink:
            assert keys(tmp_path / "out" / "dups.jsonl") == ["twin"]  # once, across runs
    # A new record with a known identity is a duplicate too; a changed version of the first one still passes.
    rows.append({"id": "late", "name": "Late twin", "email": "p1@example.com"})
    rows[0] = {**rows[0], "name": "Person 0, renamed"}
    leads(tmp_path, rows)
    report = run(spec)
    accounted(report)
    assert report["delivered"]["out"] == 1 and report["streams"]["unique.duplicates"] >= 1
    assert sorted(keys(tmp_path / "out" / "people.jsonl")) == ["p0", *expected]  # two versions of p0


def test_plan_with_dedupe_writes_no_memory(tmp_path: Path) -> None:
    leads(tmp_path, people(3))
    spec = job(tmp_path)
    assert main(["-q", "plan", str(spec)]) == 0
    if (tmp_path / "state.db").exists():
        store = SqliteStateStore(tmp_path / "state.db")
        assert store.summary("reruns")["objects"] == 0
        store.close()
    assert run(spec)["delivered"]["out"] == 3
    store = SqliteStateStore(tmp_path / "state.db")
    assert store.summary("reruns")["objects"] == 3  # one remembered identity per email
    store.close()


@pytest.mark.parametrize("how", ["deleted", "reset", "first use"])
def test_a_fresh_state_starts_its_files_over(tmp_path: Path, how: str) -> None:
    leads(tmp_path, people(4))
    spec = job(tmp_path)
    if how == "first use":  # outputs of a run without state are already there
        run(job(tmp_path, state="state: false"))
        spec = job(tmp_path)
    else:
        run(spec)
        if how == "deleted":
            for file in tmp_path.glob("state.db*"):
                file.unlink()
        else:
            assert main(["-q", "state", "reset", str(spec)]) == 0
    report = run(spec)
    assert report["exit_code"] == 0 and report["delivered"]["out"] == 4
    accounted(report)
    assert sorted(keys(tmp_path / "out" / "people.jsonl")) == ["p0", "p1", "p2", "p3"]
    assert sorted(csv_ids(tmp_path / "out" / "people.csv")) == ["p0", "p1", "p2", "p3"]
    again = run(spec)  # and the journal goes on from there
    assert again["delivered"].get("out", 0) == 0
    assert sorted(keys(tmp_path / "out" / "people.jsonl")) == ["p0", "p1", "p2", "p3"]


def test_two_versions_of_one_key_do_not_grow_the_outputs(tmp_path: Path, any_store: str) -> None:
    rows = [
        {"id": "a", "name": "First", "email": "a1@example.com"},
        {"id": "b", "name": "Other", "email": "b@example.com"},
        {"id": "a", "name": "Second", "email": "a2@example.com"},
    ]
    leads(tmp_path, rows)
    spec = job(tmp_path, any_store)
    sizes = []
    for _ in range(4):
        report = run(spec)
        accounted(report)
        sizes.append(len(keys(tmp_path / "out" / "people.jsonl")))
    assert sizes == [3, 3, 3, 3]
    rows[2]["name"] = "Third"  # a changed version is written once more, then stays
    leads(tmp_path, rows)
    assert run(spec)["delivered"]["out"] == 1
    assert run(spec)["delivered"].get("out", 0) == 0
    assert len(keys(tmp_path / "out" / "people.jsonl")) == 4


def test_the_errors_file_lists_every_runs_rejects(tmp_path: Path) -> None:
    rows = people(8)
    for n in (1, 5):
        rows[n]["email"] = ""
    leads(tmp_path, rows)
    spec = job(tmp_path)  # max_attempts: 2
    listed = []
    for _ in range(3):
        report = run(spec)
        accounted(report)
        errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
        assert len(errors) == report["errors"]["count"], "the errors file and the summary agree"
        listed.append(sorted(e["_key"] for e in errors))
    # Rejected, rejected again (second and last attempt, then discarded), then not sent any more.
    assert listed == [["p1", "p5"], ["p1", "p5"], []]
    assert sorted(keys(tmp_path / "out" / "people.jsonl")) == sorted(f"p{n}" for n in (0, 2, 3, 4, 6, 7))


def test_a_failed_run_leaves_earlier_outputs_as_they_were(tmp_path: Path) -> None:
    for stateful in (False, True):
        state = "state: {path: state.db}" if stateful else "state: false"
        folder = tmp_path / ("stateful" if stateful else "stateless")
        folder.mkdir()
        rows = people(150)
        leads(folder, rows)
        spec = job(folder, state=state)
        assert run(spec)["exit_code"] == 0
        before = {path.name: path.read_bytes() for path in (folder / "out").iterdir()}
        for row in rows[::2]:  # half the input is broken now (and changed: the state does not skip it)
            row["email"] = ""
        rows.extend(people(170)[150:])
        leads(folder, rows)
        failed = run(spec, "--max-error-rate", "0.1")
        assert failed["exit_code"] == 1 and "max_error_rate" in failed["failure"]
        accounted(failed)
        after = {
            path.name: path.read_bytes()
            for path in (folder / "out").iterdir()
            if not path.name.startswith(".")  # hidden: a part for the next run, a failed run's records
        }
        errors = read_jsonl(folder / "out" / "errors.jsonl")  # the run's own account: why it failed
        assert len(errors) == failed["errors"]["count"] == 75
        del after["errors.jsonl"], before["errors.jsonl"]
        assert after == before, f"{folder.name}: a failed run changed an earlier output"
        # The failed run's records are not lost: without state they are kept beside, with state the next run
        # adds those the failed run delivered.
        if not stateful:
            kept = read_jsonl(folder / "out" / ".people.jsonl.failed")
            assert len(kept) == failed["delivered"]["out"]
        for row in rows:
            row["email"] = row["email"] or f"{row['id']}@fixed.example.com"
        leads(folder, rows)
        fixed = run(spec)
        assert fixed["exit_code"] == 0
        accounted(fixed)
        counts = Counter(keys(folder / "out" / "people.jsonl"))
        assert set(counts) == {row["id"] for row in rows}
        if stateful:  # the original 150, their 75 fixed versions, the 20 new ones: each once
            assert sum(counts.values()) == 150 + 75 + 20 and max(counts.values()) == 2
        else:
            assert sum(counts.values()) == 170


def test_a_reset_after_a_failed_run_drops_its_part(tmp_path: Path) -> None:
    rows = people(150)
    leads(tmp_path, rows)
    spec = job(tmp_path, state="state: {path: state.db}")
    for row in rows[::2]:
        row["email"] = ""
    leads(tmp_path, rows)
    assert run(spec, "--max-error-rate", "0.1")["exit_code"] == 1
    assert [p.name for p in (tmp_path / "out").glob(".people.jsonl.run*.part")]  # kept for the next run
    assert main(["-q", "state", "reset", str(spec)]) == 0
    report = run(spec)
    accounted(report)
    assert sorted(keys(tmp_path / "out" / "people.jsonl")) == sorted(r["id"] for r in rows if r["email"])
    assert not list((tmp_path / "out").glob(".*.part"))


def test_a_full_refresh_accounts_for_records_the_sinks_already_have(tmp_path: Path) -> None:
    """A full refresh processes every record again; a file sink writes none it already holds (each record once in
    its file), and the report says so per sink, so rows in still add up."""
    spec = job(tmp_path)
    leads(tmp_path, [{"id": str(n), "name": f"P{n}", "email": f"p{n}@x.io"} for n in range(6)])
    first = run(spec)
    accounted(first)
    before = (tmp_path / "out" / "people.jsonl").read_bytes()
    refresh = run(spec, "--full-refresh")
    assert refresh["state"]["skipped_unchanged"] == 0 and refresh["delivered"].get("out", 0) == 0
    assert refresh["state"]["already_delivered"] == {"out": 6, "table": 6}
    accounted(refresh)
    assert (tmp_path / "out" / "people.jsonl").read_bytes() == before

"""A real full disk: the outputs live on a small tmpfs (mounting one needs root; skipped otherwise). The run
stops new API work at the first failed write, names the sink, leaves the earlier files as they were, and the
run after space came back writes every record exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

from ..apollo.conftest import env, people, write_job, write_leads
from .jobs import without_state_unless, write_as_it_goes
from .test_crash_and_faults import check_exactly_once


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """``mount`` on a tmpfs of ``size``, unmounted afterwards; skips the test when mounting is not allowed."""
    mount.mkdir(exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", f"crmsync-test-{uuid.uuid4().hex[:8]}", str(mount)],
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root: " + made.stderr.decode(errors="replace").strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/out`` on a 64 KiB tmpfs."""
    with mounted_tmpfs(tmp_path / "out", "64k") as mount:
        yield mount


def fill(path: Path, leave: int = 0) -> None:
    """Take every byte left on ``path``'s filesystem but ``leave`` (something else filled the disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.truncate(fd, max(0, os.fstat(fd).st_size - leave))
        os.close(fd)


def run(spec: Path, server: SandboxServer, report: Path | None = None) -> dict:
    report = report or spec.parent / "report.json"
    finished = subprocess.run(
        [sys.executable, "-m", "connector_core", "-q", "run", str(spec), "--report", str(report)],
        env={**os.environ, **env(server)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in finished.stderr, finished.stderr
    assert report.exists(), finished.stderr
    data = json.loads(report.read_text())
    data["exit_code"] = finished.returncode
    return data


def test_full_disk_stops_api_work_and_the_resume_writes_no_duplicates(tmp_path: Path, small_disk: Path) -> None:
    rows = people(200)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, enrich="concurrency: 1", contacts="batch_size: 10")
    write_as_it_goes(spec, batch_size=10)
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=30))) as server:
        first = run(spec, server)
        assert first["exit_code"] == 1
        assert "No space left on device" in first["failure"], first["failure"]
        failing = first["failure"].split(" failed: ", 1)[0]
        assert failing in ("created", "existing", "missing"), first["failure"]  # a sink, by its spec name
        calls = server.sandbox.state()["calls"]
        print(f"first run: {calls}, streams {first['streams']}, set aside {first['errors']['set_aside']}")
        # Stopped at the first failed write: far fewer than the 20 bulk_match calls the whole input needs.
        assert calls["/api/v1/people/bulk_match"] < 15, calls
        assert first["streams"]["enrich.skipped"] > 0
        assert first["errors"]["count"] == 0 and first["errors"]["set_aside"] > 0  # a full disk rejects nothing

        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        second = run(spec, server)
        assert second["exit_code"] == 0, second["failure"]
        check_exactly_once(tmp_path, [row["email"] for row in rows], server)
        assert not [p.name for p in small_disk.iterdir() if p.name.startswith(".")], "no part file left"


@pytest.mark.parametrize("state", [False, True])
def test_a_disk_that_fills_up_leaves_earlier_files_as_they_were(tmp_path: Path, small_disk: Path, state: bool) -> None:
    rows = people(60)
    write_leads(tmp_path, rows[:20])
    spec = without_state_unless(
        write_job(tmp_path, state=state, enrich="concurrency: 1", contacts="batch_size: 10"), state
    )
    write_as_it_goes(spec, batch_size=10)
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=10))) as server:
        assert run(spec, server)["exit_code"] == 0
        before = {path.name: path.read_bytes() for path in small_disk.iterdir()}
        filler = small_disk / "filler"
        fill(filler)
        write_leads(tmp_path, rows)
        failed = run(spec, server)
        assert failed["exit_code"] == 1 and "No space left on device" in failed["failure"]
        after = {p.name: p.read_bytes() for p in small_disk.iterdir() if p != filler and not p.name.startswith(".")}
        assert after == before
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        assert run(spec, server)["exit_code"] == 0
        check_exactly_once(tmp_path, [row["email"] for row in rows], server)


SQLITE_JOB = """
version: 1
job: disk-sqlite
sources:
  leads: {type: jsonl, path: leads.jsonl, key: id}
sinks:
  db: {type: sqlite, inputs: [leads], path: out/crm.sqlite, table: people, batch_size: 50}
"""


@pytest.mark.parametrize("state", [False, True])
def test_a_full_disk_under_a_sqlite_sink(tmp_path: Path, state: bool) -> None:
    with mounted_tmpfs(tmp_path / "out", "128k" if state else "64k") as small_disk:
        full_disk_under_a_sqlite_sink(tmp_path, small_disk, state)


def full_disk_under_a_sqlite_sink(tmp_path: Path, small_disk: Path, state: bool) -> None:
    from connector_core.cli import main
    from connector_core.testing import write_spec

    # Without state the run is one transaction, refused at its commit; with state each batch commits to the
    # sink's stage (which needs room beside the table until the run applies it: a bigger disk).
    spec = write_spec(tmp_path, SQLITE_JOB + ("state: {path: state.db}\n" if state else "state: false\n"))
    rows = [{"id": f"p{n}", "note": "x" * 200} for n in range(600)]
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:20]))
    assert main(["-q", "run", str(spec)]) == 0
    fill(small_disk / "filler")
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = tmp_path / "report.json"
    assert main(["-q", "run", str(spec), "--report", str(report)]) == 1
    failure = json.loads(report.read_text())["failure"]
    assert failure.startswith("db failed") and "OSError: [Errno " in failure, failure
    # A full disk, or (with state, where the run is applied and the WAL's files removed at the end) no room
    # to reopen the database in WAL mode: SQLite reports an I/O error then.
    assert ("[Errno 28]" in failure and "full" in failure) or (state and "[Errno 5]" in failure), failure
    (small_disk / "filler").unlink()
    if not state:
        with contextlib.closing(sqlite3.connect(small_disk / "crm.sqlite")) as db:
            assert db.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 20
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert main(["-q", "run", str(spec)]) == 0
    with contextlib.closing(sqlite3.connect(small_disk / "crm.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 600


def test_a_full_disk_holding_the_state_too(tmp_path: Path) -> None:
    """Everything in one folder on a full disk: outputs, state database, part files."""
    with mounted_tmpfs(tmp_path / "job", "512k") as folder:
        rows = people(200)
        write_leads(folder, rows)
        spec = write_job(folder, state=True, enrich="concurrency: 1", contacts="batch_size: 10")
        write_as_it_goes(spec, batch_size=10)
        with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=20))) as server:
            first = run(spec, server, tmp_path / "report.json")  # the report cannot go on the full disk
            print(f"first run: {first['failure']}; {server.sandbox.state()['calls']}")
            assert first["exit_code"] == 1 and ("No space left" in first["failure"] or "is full" in first["failure"])
            assert server.sandbox.state()["calls"]["/api/v1/people/bulk_match"] < 20
            subprocess.run(["mount", "-o", "remount,size=16m", str(folder)], check=True)
            assert run(spec, server, tmp_path / "report.json")["exit_code"] == 0
            check_exactly_once(folder, [row["email"] for row in rows], server)


TWO_DISKS_JOB = """
version: 1
job: two-disks
sources:
  leads: {type: jsonl, path: leads.jsonl, key: id}
sinks:
  roomy: {type: jsonl, inputs: [leads], path: roomy/all.jsonl}
  table: {type: sqlite, inputs: [leads], path: roomy/crm.sqlite, table: people}
  small: {type: jsonl, inputs: [leads], path: out/copy.jsonl}
"""


@pytest.mark.parametrize("state", [False, True])
def test_a_sink_its_disk_refuses_at_the_end_leaves_the_other_sinks_outputs_as_they_were(
    tmp_path: Path, small_disk: Path, state: bool
) -> None:
    """The small sink's records fit its write buffer, so its disk refuses them only when the run finishes
    (the flush before the rename): the sinks beside it, on a roomy disk, must not have published theirs."""
    from connector_core.cli import main
    from connector_core.testing import write_spec

    spec = write_spec(tmp_path, TWO_DISKS_JOB + ("state: {path: state.db}\n" if state else "state: false\n"))
    # ~230 bytes a row, 48 KiB left: without state 300 rows overflow it; with state 150 rows fit as the run's
    # part file, but not the copy merging it with the earlier output (written when the run ends).
    rows = [{"id": f"p{n}", "note": "x" * 200} for n in range(150 if state else 300)]
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:20]))
    assert main(["-q", "run", str(spec)]) == 0

    def outputs() -> dict[str, object]:
        with contextlib.closing(sqlite3.connect(tmp_path / "roomy" / "crm.sqlite")) as db:
            table = db.execute("SELECT _key FROM people ORDER BY _key").fetchall()
        files = {path: (tmp_path / path).read_bytes() for path in ("roomy/all.jsonl", "out/copy.jsonl")}
        return {"table": table, **files}

    before = outputs()
    fill(small_disk / "filler", leave=48 * 1024)
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = tmp_path / "report.json"
    assert main(["-q", "run", str(spec), "--report", str(report)]) == 1
    failure = json.loads(report.read_text())["failure"]
    assert failure.startswith("small failed to close: OSError: [Errno 28]"), failure
    assert outputs() == before
    assert not list((tmp_path / "roomy").glob(".*.merge")), "no half-merged copy is left beside a target"
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert main(["-q", "run", str(spec)]) == 0
    for path in ("roomy/all.jsonl", "out/copy.jsonl"):
        written = [json.loads(line) for line in (tmp_path / path).read_text().splitlines()]
        assert sorted(written, key=lambda row: row["id"]) == sorted(rows, key=lambda row: row["id"]), path
    with contextlib.closing(sqlite3.connect(tmp_path / "roomy" / "crm.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM people").fetchone()[0] == len(rows)


TABLE_ON_THE_SMALL_DISK = """
version: 1
job: small-table
sources:
  leads: {{type: jsonl, path: leads.jsonl, key: id}}
sinks:
{sinks}state: false
"""
SINKS = {
    "table": "{type: sqlite, inputs: [leads], path: out/crm.sqlite, table: people}",
    "roomy": "{type: jsonl, inputs: [leads], path: roomy/all.jsonl}",
    "sheet": "{type: csv, inputs: [leads], path: roomy/all.csv}",
}


@pytest.mark.parametrize("order", [["table", "roomy", "sheet"], ["roomy", "sheet", "table"]])
def test_a_sqlite_commit_its_disk_refuses_leaves_the_files_beside_it_as_they_were(
    tmp_path: Path, small_disk: Path, order: list[str]
) -> None:
    """The run's rows fit SQLite's page cache, so its disk refuses them only at the COMMIT, after every sink
    prepared: the file sinks, on a roomy disk, must not have published theirs, whatever the spec's order."""
    from connector_core.cli import main
    from connector_core.testing import write_spec

    spec = write_spec(tmp_path, TABLE_ON_THE_SMALL_DISK.format(sinks="".join(f"  {n}: {SINKS[n]}\n" for n in order)))
    rows = [{"id": f"p{n}", "note": "x" * 200} for n in range(300)]
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:20]))
    assert main(["-q", "run", str(spec)]) == 0

    def outputs() -> dict[str, object]:
        with contextlib.closing(sqlite3.connect(small_disk / "crm.sqlite")) as db:
            table = db.execute("SELECT _key FROM people ORDER BY _key").fetchall()
        return {"table": table, **{path: (tmp_path / "roomy" / path).read_bytes() for path in ("all.jsonl", "all.csv")}}

    before = outputs()
    fill(small_disk / "filler", leave=40 * 1024)  # room for the WAL's index, not for 300 rows of ~230 bytes
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = tmp_path / "report.json"
    assert main(["-q", "run", str(spec), "--report", str(report)]) == 1
    failure = json.loads(report.read_text())["failure"]
    assert failure.startswith("table failed to close: "), failure
    assert outputs() == before
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert main(["-q", "run", str(spec)]) == 0
    assert len(outputs()["table"]) == len(rows)  # type: ignore[arg-type]

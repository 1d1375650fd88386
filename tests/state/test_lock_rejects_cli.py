"""The run lock, rejects retried and discarded, and the state / errors commands."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.state.sqlite import SqliteStateStore
from connector_core.testing import read_jsonl, write_spec

JOB = """
version: 1
job: rejects
state: {path: state.db, max_attempts: 2}
sources:
  leads: {type: jsonl, path: leads.jsonl, key: id}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      id: {}
      email: {required: true}
sinks:
  out: {type: jsonl, inputs: [people], path: out/people.jsonl}
  rejected: {type: jsonl, inputs: [errors], path: out/errors.jsonl}
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    rows = [{"id": str(i), "email": f"p{i}@example.com" if i % 4 else ""} for i in range(12)]
    (tmp_path / "leads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_spec(tmp_path, JOB)


def run(spec: Path, *extra: str) -> int:
    return main(["-q", "run", str(spec), *extra])


def test_rejects_are_retried_then_discarded_after_max_attempts(job: Path, capsys) -> None:
    assert run(job) == 0
    store = SqliteStateStore(job.parent / "state.db")
    pending = store.rejects("rejects", "pending")
    assert sorted(r["key"] for r in pending) == ["0", "4", "8"]
    assert all(r["attempts"] == 1 and "required" in r["reason"] for r in pending)
    assert run(job) == 0  # the three are tried again: second and last attempt
    assert {r["key"]: r["status"] for r in store.rejects("rejects")} == dict.fromkeys(["0", "4", "8"], "discarded")
    assert run(job, "--report", str(job.parent / "r.json")) == 0
    report = json.loads((job.parent / "r.json").read_text())
    assert report["input_records"] == 12 and report["state"]["skipped_unchanged"] == 12  # nothing retried any more
    assert len(read_jsonl(job.parent / "out" / "people.jsonl")) == 9
    capsys.readouterr()

    assert main(["errors", "list", str(job), "--all"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("discarded") == 3 and "rejects-" not in listing
    assert main(["errors", "retry", str(job), "4"]) == 0
    assert run(job, "--report", str(job.parent / "r.json")) == 0
    assert json.loads((job.parent / "r.json").read_text())["errors"]["count"] == 1  # only "4" was retried
    assert main(["errors", "discard", str(job)]) == 0
    assert {r["status"] for r in store.rejects("rejects")} == {"discarded"}
    store.close()


def test_a_reject_is_kept_as_read_beside_its_reason_source_and_position(job: Path, capsys) -> None:
    """The error file's `_error` is not stored again inside the record: `errors list --json` has the same facts
    as fields of each reject."""
    assert run(job) == 0
    capsys.readouterr()
    assert main(["errors", "list", str(job), "--json"]) == 0
    listed = {reject["key"]: reject for reject in json.loads(capsys.readouterr().out)}
    errors = {line["id"]: line["_error"] for line in read_jsonl(job.parent / "out" / "errors.jsonl")}
    assert sorted(listed) == sorted(errors) == ["0", "4", "8"]
    for key, reject in listed.items():
        assert reject["data"] == {"id": key, "email": ""}
        assert {name: reject[name] for name in ("component", "reason", "source", "position")} == errors[key]


def test_a_fixed_record_leaves_the_reject_list(job: Path) -> None:
    assert run(job) == 0
    rows = [json.loads(line) for line in (job.parent / "leads.jsonl").read_text().splitlines()]
    rows[4]["email"] = "fixed@example.com"
    (job.parent / "leads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run(job) == 0
    store = SqliteStateStore(job.parent / "state.db")
    assert "4" not in {r["key"] for r in store.rejects("rejects")}
    store.close()
    emails = [r["email"] for r in read_jsonl(job.parent / "out" / "people.jsonl")]
    assert emails.count("fixed@example.com") == 1 and len(emails) == 10


def test_a_second_concurrent_run_exits_1(job: Path, capsys) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store = SqliteStateStore(job.parent / "state.db")
        owner = {"token": "holder", "pid": holder.pid, "host": socket.gethostname()}
        store.acquire_lock("rejects", owner, 60)
        assert run(job) == 1
        err = capsys.readouterr().err
        assert f"already running (pid {holder.pid}" in err
        assert "`crmsync state unlock --force SPEC`" in err  # the command needs the spec: the hint says so
        assert not (job.parent / "out" / "people.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone (as after SIGKILL): its stale lock is taken over.
    assert run(job) == 0
    assert "took over the lock" in capsys.readouterr().err
    assert store.summary("rejects")["lock"] is None
    store.close()


def test_two_real_runs_at_once(tmp_path: Path) -> None:
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

    from ..apollo.conftest import env, people, write_job, write_leads

    write_leads(tmp_path, people(40))
    spec = write_job(tmp_path, state=True, enrich="concurrency: 1")
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=100))) as server:
        environ = {**__import__("os").environ, **env(server)}
        command = [sys.executable, "-m", "connector_core", "run", str(spec)]
        first = subprocess.Popen(command, env=environ, stderr=subprocess.PIPE, text=True)
        try:
            store = SqliteStateStore(tmp_path / "state.db")
            for _ in range(100):  # wait until the first run holds the lock
                if store.summary("apollo-test")["lock"]:
                    break
                __import__("time").sleep(0.05)
            second = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)
            assert second.returncode == 1 and "already running" in second.stderr
        finally:
            assert first.wait(60) == 0
        store.close()


def test_state_show_reset_export_import(job: Path, tmp_path: Path, capsys) -> None:
    assert run(job) == 0
    capsys.readouterr()
    assert main(["state", "show", str(job)]) == 0
    shown = capsys.readouterr().out
    assert "completed records: 9" in shown and "rejects: 3 pending" in shown and "#1" in shown
    assert 'last checkpoint of source:leads: {"position": 12, "records": 12}' in shown
    assert main(["state", "show", str(job), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deliveries"] == {
        "out": 9
    }  # the errors file lists runs, settles nothing

    exported = tmp_path / "export.json"
    assert main(["state", "export", str(job), str(exported)]) == 0
    other = tmp_path / "elsewhere.db"
    assert main(["state", "import", str(job), str(exported), "--state", str(other)]) == 0
    assert main(["-q", "run", str(job), "--state", str(other), "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["state"]["skipped_unchanged"] == 9  # the imported state knows what was delivered

    assert main(["state", "reset", str(job), "--delivered"]) == 0
    assert run(job, "--report", str(tmp_path / "r2.json")) == 0
    assert json.loads((tmp_path / "r2.json").read_text())["state"]["skipped_unchanged"] == 0
    assert main(["state", "import", str(job), str(job)]) == 2  # not an export: a clear error


@pytest.mark.parametrize(
    "arguments",
    [
        ["errors", "discard", "{spec}", "--state", "{state}", "0", "8"],
        ["errors", "discard", "--state", "{state}", "{spec}", "0", "8"],
        ["errors", "discard", "{spec}", "0", "--state", "{state}", "8"],
    ],
)
def test_keys_may_come_before_or_after_options(job: Path, arguments: list[str]) -> None:
    state = job.parent / "elsewhere.db"
    assert run(job, "--state", str(state)) == 0
    assert main([a.format(spec=job, state=state) for a in arguments]) == 0
    store = SqliteStateStore(state)
    assert {r["key"]: r["status"] for r in store.rejects("rejects")} == {
        "0": "discarded",
        "4": "pending",
        "8": "discarded",
    }
    store.close()


def test_keys_starting_with_a_dash_come_after_a_double_dash(job: Path, capsys) -> None:
    assert run(job) == 0
    capsys.readouterr()
    state = str(job.parent / "state.db")
    assert main(["errors", "discard", str(job), "--state", state, "--", "-x", "--state|4", "4"]) == 1
    captured = capsys.readouterr()
    assert "1 record(s) discarded" in captured.out  # "4"; the dashed ones are keys no reject has, named
    assert f"no rejected record has the keys '-x', '--state|4' (`crmsync errors list {job} --state {state} --all`" in (
        captured.err
    )


def test_an_unknown_option_after_the_keys_is_still_refused(job: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["errors", "retry", str(job), "0", "--nope"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


def test_an_unknown_key_is_named_and_changes_nothing(job: Path, capsys) -> None:
    assert run(job) == 0
    capsys.readouterr()
    assert main(["errors", "discard", str(job), "nope", "4", "nope"]) == 1  # "4" is discarded, "nope" named once
    captured = capsys.readouterr()
    assert "1 record(s) discarded" in captured.out
    assert (
        captured.err.count("\n") == 1 and "no rejected record has the key 'nope' (`crmsync errors list" in captured.err
    )
    assert main(["errors", "retry", str(job), "nope"]) == 1  # only unknown keys: nothing changes (not "all")
    store = SqliteStateStore(job.parent / "state.db")
    assert {r["key"]: r["status"] for r in store.rejects("rejects")} == {
        "0": "pending",
        "4": "discarded",
        "8": "pending",
    }
    store.close()

"""State is on by default and can be turned off; ``--json``; unlock and reset refuse a live lease; database
URLs never show their password."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.state.lease import new_owner
from connector_core.state.open import open_store
from connector_core.testing import write_spec

ROOT = Path(__file__).resolve().parents[2]
JOB = """
version: 1
job: plain
{state}
sources:
  rows: {{type: jsonl, path: rows.jsonl, key: id}}
sinks:
  out: {{type: jsonl, inputs: [rows], path: out/rows.jsonl}}
"""


def job(folder: Path, state: str = "") -> Path:
    (folder / "rows.jsonl").write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in range(7)))
    return write_spec(folder, JOB.format(state=state))


def run_json(spec: Path, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["-q", "run", str(spec), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_state_is_kept_by_default_beside_the_spec(tmp_path: Path, capsys) -> None:
    spec = job(tmp_path)
    first = run_json(spec, capsys)
    assert first["status"] == "success" and first["delivered"] == {"out": 7} and first["state"]["run_id"] == 1
    assert (tmp_path / ".crmsync" / "state.db").is_file()
    second = run_json(spec, capsys)
    assert second["state"]["skipped_unchanged"] == 7 and second["input_records"] == 7
    assert len((tmp_path / "out" / "rows.jsonl").read_text().splitlines()) == 7


@pytest.mark.parametrize(("state", "flag"), [("state: false", ()), ("", ("--no-state",))])
def test_state_can_be_turned_off_for_pure_conversions(tmp_path: Path, capsys, state: str, flag: tuple) -> None:
    spec = job(tmp_path, state)
    for _ in range(2):
        report = run_json(spec, capsys, *flag)
        assert "state" not in report and report["delivered"] == {"out": 7}
    assert not (tmp_path / ".crmsync").exists()


def test_reading_commands_do_not_create_a_state(tmp_path: Path, capsys) -> None:
    """`state show` and `errors list` before the first run say there is no state yet, and create none."""
    spec = job(tmp_path)
    assert main(["state", "show", str(spec)]) == 0
    assert "no state at" in capsys.readouterr().out
    assert main(["state", "show", str(spec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exists"] is False
    assert main(["errors", "list", str(spec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["errors", "list", str(spec), "--all"]) == 0
    assert not (tmp_path / ".crmsync").exists()
    run_json(spec, capsys)
    assert main(["state", "show", str(spec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["completed_records"] == 7


def test_state_settings_are_checked(tmp_path: Path, capsys) -> None:
    spec = job(tmp_path, "state: {lock_ttl_s: 0}")
    assert main(["-q", "run", str(spec)]) == 2
    assert "lock_ttl_s" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["unlock", "reset"])
def test_unlock_and_reset_refuse_a_live_lease_unless_forced(tmp_path: Path, capsys, command: str) -> None:
    spec = job(tmp_path)
    assert main(["-q", "run", str(spec)]) == 0
    store = open_store(str(tmp_path / ".crmsync" / "state.db"))
    store.acquire_lock("plain", {**new_owner(), "host": "runner-9"}, 60)
    capsys.readouterr()
    assert main(["state", command, str(spec)]) == 1
    err = capsys.readouterr().err
    assert "runner-9" in err and "--force" in err
    assert store.lock("plain") is not None and store.summary("plain")["completed_records"] == 7
    assert main(["state", command, str(spec), "--force"]) == 0
    if command == "unlock":
        assert store.lock("plain") is None
    else:
        assert store.summary("plain")["completed_records"] == 0
    store.close()


def test_unlock_needs_no_force_once_the_lease_expired(tmp_path: Path) -> None:
    spec = job(tmp_path)
    store = open_store(str(tmp_path / ".crmsync" / "state.db"))
    store.acquire_lock("plain", {**new_owner(), "host": "runner-9"}, 0.1)
    time.sleep(0.2)
    assert main(["state", "unlock", str(spec)]) == 0
    assert store.lock("plain") is None
    store.close()


def test_the_demo_runs_again_and_again(tmp_path: Path, capsys) -> None:
    # Each demo talks to a new, empty in-process sandbox: it keeps no state, so every run does the whole job.
    assert main(["demo", "--copy-to", str(tmp_path)]) == 0
    spec = tmp_path / "config.example.yaml"
    for _ in range(3):
        assert main(["-q", "demo", "--spec", str(spec), "--out", str(tmp_path / "out")]) == 0
        assert len((tmp_path / "out" / "created.jsonl").read_text().splitlines()) == 19
    assert not (tmp_path / ".crmsync").exists()


def test_a_database_url_never_shows_its_password(postgres_url: str, tmp_path: Path, capsys) -> None:
    from tests.postgres_server import PASSWORD

    spec = job(tmp_path, "state:\n  url: ${STATE_URL}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STATE_URL", postgres_url)
        assert main(["-v", "run", str(spec)]) == 0
        assert main(["state", "show", str(spec)]) == 0
        wrong = postgres_url.replace(PASSWORD, PASSWORD + "-wrong")
        assert main(["state", "show", str(spec), "--state", wrong]) == 2
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert "postgresql://crmsync:***@127.0.0.1" in out.out and "cannot connect" in out.err
    assert "lock: free" in out.out


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:s3cret@[broken/db",
        "postgresql://bob:s3cret@host:port/db",
        "postgresql://bob:s3cret@h:99999/db",
    ],
)
def test_a_malformed_database_url_is_one_line_without_its_password(tmp_path: Path, capsys, url: str) -> None:
    pytest.importorskip("psycopg")
    spec = job(tmp_path)
    for argv in (["run", str(spec), "--state", url], ["state", "show", str(spec), "--state", url]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "not a valid PostgreSQL URL" in err and "s3cret" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--report", "{tmp}/out"],  # a directory
        ["--report", "/proc/no-such/report.json"],  # a folder that cannot be made
        ["--max-error-rate", "2"],
        ["--max-error-rate", "nan"],
        ["--stop-grace-s", "-1"],
    ],
)
def test_unusable_run_options_are_refused_before_the_run(tmp_path: Path, capsys, argv: list[str]) -> None:
    spec = job(tmp_path, "state: false")
    (tmp_path / "out").mkdir()
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    with pytest.raises(SystemExit) if argv[0] != "--report" else contextlib.nullcontext():
        assert main(["run", str(spec), *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" in err
    assert not (tmp_path / "out" / "rows.jsonl").exists()  # nothing ran


def test_schema_to_an_unwritable_place_is_one_line(capsys) -> None:
    assert main(["schema", "-o", "/proc/no-such/schema.json"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

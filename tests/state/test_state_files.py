"""State files that cannot hurt: a corrupt, truncated, foreign, newer or directory state stops every command
with exit 2 and one line naming the file, before any API call, and the file is never modified."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.state import sqlite as sqlite_store
from connector_core.state.sqlite import SqliteStateStore
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxServer

from ..apollo.conftest import env, people
from .ci_kit import job_folder


def real_state(path: Path) -> None:
    store = SqliteStateStore(path)
    run_id = store.start_run("apollo-test")
    for batch in range(40):  # enough pages that cutting the file loses some
        store.commit_batch("apollo-test", run_id, "out", [(f"k{batch}-{i}", "f" * 40) for i in range(50)])
    store.close()


def garbage(path: Path) -> None:
    path.write_text("this is not a database\n" * 50)


def truncated(path: Path) -> None:
    real_state(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_page(path: Path) -> None:
    real_state(path)
    data = bytearray(path.read_bytes())
    page = sqlite_store.PAGE_SIZE
    data[page * 3 : page * 3 + 600] = os.urandom(600)
    path.write_bytes(bytes(data))


def corrupt_tree(path: Path) -> None:
    """A page overwritten with 0xff: quick_check reports it on several lines, the error must stay one."""
    real_state(path)
    data = bytearray(path.read_bytes())
    end_of_page_2 = 2 * sqlite_store.PAGE_SIZE  # its cells and the next page's header
    data[end_of_page_2 - 3192 : end_of_page_2 + 808] = b"\xff" * 4000
    path.write_bytes(bytes(data))


def foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.execute("INSERT INTO invoices (total) VALUES (12.5)")
    db.commit()
    db.close()


def newer(path: Path) -> None:
    real_state(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE crmsync_meta SET value = '99' WHERE name = 'schema_version'")
    db.commit()
    db.close()


def directory(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("x")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage": (garbage, "not a SQLite database"),
    "truncated": (truncated, "corrupt or truncated"),
    "corrupt-page": (corrupt_page, "corrupt"),
    "corrupt-tree": (corrupt_tree, "the state database is corrupt"),
    "foreign": (foreign, "not a crmsync state database (another application's tables: invoices)"),
    "newer": (newer, "written by a newer crmsync (state schema 99"),
    "directory": (directory, "is a directory"),
}


def fingerprint(path: Path) -> str:
    if path.is_dir():
        return ",".join(sorted(p.name for p in path.iterdir()))
    names = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return ",".join(hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-" for p in names)


@pytest.mark.parametrize("kind", list(CASES))
def test_a_bad_state_file_stops_the_run_before_any_call(tmp_path: Path, kind: str) -> None:
    make, message = CASES[kind]
    spec = job_folder(tmp_path, people(5), "{}")
    state = tmp_path / ".crmsync" / "state.db"  # the default location
    state.parent.mkdir()
    make(state)
    before = fingerprint(state)
    with SandboxServer(ApolloSandbox()) as server:
        for argv in (["run", str(spec)], ["plan", str(spec)], ["state", "show", str(spec)]):
            done = subprocess.run(
                [sys.executable, "-m", "connector_core", *argv],
                env={**os.environ, **env(server)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and str(state) in lines[0] and message in lines[0], done.stderr
            assert "Traceback" not in done.stderr
        assert server.sandbox.state()["calls"] == {}
    assert fingerprint(state) == before, "a state file that cannot be used must be left exactly as it was"
    assert not (tmp_path / "out").exists()


def test_a_new_state_file_has_large_pages_and_an_older_file_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New files get PAGE_SIZE pages (a run moves its journal page by page); a file made with other pages (by an
    older crmsync) is used as it is."""

    def page_size(path: Path) -> int:
        store = SqliteStateStore(path)
        try:
            return int(store.db.execute("PRAGMA page_size").fetchone()[0])
        finally:
            store.close()

    real_state(tmp_path / "new.db")
    assert page_size(tmp_path / "new.db") == sqlite_store.PAGE_SIZE == 8_192
    monkeypatch.setattr(sqlite_store, "PAGE_SIZE", 4096)
    real_state(tmp_path / "old.db")
    monkeypatch.undo()
    store = SqliteStateStore(tmp_path / "old.db")
    run_id = store.start_run("apollo-test")
    store.commit_batch("apollo-test", run_id, "out", [("new-key", "f")])
    store.complete_run("apollo-test", run_id)
    assert store.delivered("apollo-test", "out", ["k0-0", "new-key"]) == {"k0-0": "f" * 40, "new-key": "f"}
    store.close()
    assert page_size(tmp_path / "old.db") == 4096


def test_pages_a_run_frees_are_not_written_again(tmp_path: Path) -> None:
    """A SQLite built with SECURE_DELETE (Debian's, Ubuntu's) zeroes every page a delete frees: settling a run
    would write its journals out once more. The store asks for FAST, for its file and its temporary tables."""
    store = SqliteStateStore(tmp_path / "state.db")
    try:
        modes = [store.db.execute(f"PRAGMA {schema}.secure_delete").fetchone()[0] for schema in ("main", "temp")]
    finally:
        store.close()
    assert modes == [2, 2]  # FAST


def test_a_schema_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
            finished_at TEXT, status TEXT NOT NULL DEFAULT 'running', report TEXT);
        CREATE TABLE locks (job TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, acquired_at TEXT NOT NULL);
        CREATE TABLE deliveries (job TEXT, sink TEXT, key TEXT, fingerprint TEXT, run_id INTEGER,
            PRIMARY KEY (job, sink, key));
        CREATE TABLE completed (job TEXT, key TEXT, fingerprint TEXT, run_id INTEGER, PRIMARY KEY (job, key));
        CREATE TABLE checkpoints (job TEXT, sink TEXT, checkpoint TEXT, run_id INTEGER, PRIMARY KEY (job, sink));
        CREATE TABLE rejects (job TEXT, key TEXT, fingerprint TEXT, component TEXT, reason TEXT, attempts INTEGER,
            status TEXT, data TEXT, source TEXT, position INTEGER, run_id INTEGER, updated_at TEXT,
            PRIMARY KEY (job, key));
        CREATE TABLE intents (intent_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT, component TEXT, keys TEXT,
            started_at REAL);
        CREATE TABLE objects (job TEXT, component TEXT, key TEXT, outcome TEXT, PRIMARY KEY (job, component, key));
        CREATE TABLE cache (namespace TEXT, identity TEXT, value TEXT, stored_at REAL,
            PRIMARY KEY (namespace, identity));
        INSERT INTO completed VALUES ('job', 'k', 'f', 1);
        INSERT INTO locks VALUES ('job', 1, 'old-host', '2024-01-01');
        """
    )
    db.close()
    store = SqliteStateStore(path)
    assert store.completed("job", ["k"]) == {"k": "f"} and store.lock("job") is None
    store.close()


def test_export_is_atomic_and_import_validates(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("APOLLO_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("APOLLO_API_KEY", "unused")
    spec = job_folder(tmp_path, people(3), "{}")
    real_state(tmp_path / ".crmsync" / "state.db")
    exported = tmp_path / "export.json"
    exported.write_text("previous export\n")
    assert main(["state", "export", str(spec), str(exported)]) == 0
    assert json.loads(exported.read_text())["format"] == "crmsync-state/1"
    assert not list(tmp_path.glob("*.partial"))
    data = json.loads(exported.read_text())
    data["completed"] = [{"key": 1, "fingerprint": "f", "run_id": 1}]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["state", "import", str(spec), str(bad)]) == 2
    assert "completed[0].key: expected str, got int" in capsys.readouterr().err


def test_an_unwritable_state_location_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("APOLLO_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("APOLLO_API_KEY", "unused")
    spec = job_folder(tmp_path, people(3), "{}")
    (tmp_path / "file").write_text("x")
    assert main(["-q", "run", str(spec), "--state", str(tmp_path / "file" / "state.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open the state database" in err[0]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("CREATE TABLE crmsync_meta (name TEXT PRIMARY KEY, value TEXT); "
         "INSERT INTO crmsync_meta VALUES ('schema_version', '99')", "newer crmsync (state schema 99"),
        ("CREATE TABLE runs (id INT)", "a `runs` table that is not crmsync's"),
    ],
)  # fmt: skip
def test_a_newer_or_foreign_postgres_database_is_refused(postgres_url: str, setup: str, message: str) -> None:
    import psycopg

    from connector_core.state.postgres import PostgresStateStore
    from connector_core.state.store import StateError

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(setup)
    with pytest.raises(StateError, match=re.escape(message)) as raised:
        PostgresStateStore(postgres_url)
    assert "***" in str(raised.value) and ":pg-canary" not in str(raised.value)

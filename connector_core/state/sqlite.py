"""The SQLite state store: one database file (WAL mode), one transaction per committed batch.

The journal's packed pairs are read with SQLite's JSON functions, built in since SQLite 3.38 and compiled into
the SQLite of every mainstream Python build before that.

Before anything writes to the file it is checked read-only: a directory, a file that is not SQLite, a truncated
or corrupt database, another application's database or a newer crmsync's schema stops the command with one line
naming the file, and the file is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from connector_core.errors import RunFailed
from connector_core.sqlite_errors import disk_errno
from connector_core.state.sql import SCHEMA_VERSION, SqlStateStore
from connector_core.state.store import StateError

SCHEMA = """
CREATE TABLE IF NOT EXISTS crmsync_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL DEFAULT 'running', report TEXT);
CREATE TABLE IF NOT EXISTS locks (
    job TEXT PRIMARY KEY, token TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    acquired_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS journal (run_id INTEGER NOT NULL, sink TEXT NOT NULL, pairs TEXT NOT NULL);
CREATE VIEW IF NOT EXISTS journal_pairs AS
    SELECT j.run_id AS run_id, j.sink AS sink, p.key AS key, p.value AS fingerprint
    FROM journal j, json_each(j.pairs) p;
CREATE TABLE IF NOT EXISTS deliveries (
    job TEXT NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (job, sink, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completed (
    job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id INTEGER NOT NULL, sinks TEXT,
    PRIMARY KEY (job, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    job TEXT NOT NULL, sink TEXT NOT NULL, checkpoint TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (job, sink));
CREATE TABLE IF NOT EXISTS rejects (
    job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, component TEXT NOT NULL, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL, source TEXT, position INTEGER,
    run_id INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (job, key));
CREATE TABLE IF NOT EXISTS intents (
    intent_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, component TEXT NOT NULL, keys TEXT NOT NULL,
    started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS value_packs (
    pack_id INTEGER PRIMARY KEY AUTOINCREMENT, refs INTEGER NOT NULL, stored_at REAL NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS object_entries (
    job TEXT NOT NULL, component TEXT NOT NULL, key TEXT NOT NULL, pack_id INTEGER NOT NULL, slot INTEGER NOT NULL,
    PRIMARY KEY (job, component, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_namespaces (
    namespace_id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS cache_entries (
    namespace_id INTEGER NOT NULL, identity TEXT NOT NULL, pack_id INTEGER NOT NULL, slot INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, identity)) WITHOUT ROWID;
"""

#: Tables whose layout changed in schema 3 (clustered by key, without rowid): copied into the new layout.
_RELAID = {"deliveries": "job, sink, key, fingerprint, run_id", "completed": "job, key, fingerprint, run_id"}
#: The tables of a schema-1 database (crmsync before the lease): recognised and upgraded in place.
_V1_TABLES = {"runs", "locks", "deliveries", "completed", "checkpoints", "rejects", "intents", "objects", "cache"}
#: The page size of a new state file (see SqliteStateStore).
PAGE_SIZE = 8_192
_FIX = "move it away (or point --state / state.path elsewhere) and rerun; the file was not modified"


def inspect_file(path: Path) -> int | None:
    """Check an existing state file without writing to it; its schema version, or None for a new database.

    Only SQLite itself opens the file: opening and closing it by other means would drop the POSIX locks the
    process's other connections hold on it.

    :raises StateError: one line naming the file and what is wrong with it.
    """
    if path.is_dir():
        raise StateError(f"{path}: is a directory, not a state database; point --state / state.path at a file")
    if not path.exists() or path.stat().st_size == 0:
        return None
    # Without a WAL beside it nothing is writing the file: `immutable` then reads it without creating the
    # -wal/-shm files a WAL-mode database otherwise gets on open. With a WAL, a run may be live: read it properly.
    wal = path.with_name(path.name + "-wal").exists()
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro{'' if wal else '&immutable=1'}", uri=True)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                # quick_check reports its findings on several lines ("*** in database main ***\n..."): the
                # message stays one line, as every state error does.
                found = "; ".join(line.strip(" *") for line in str(result).splitlines() if line.strip(" *"))
                raise StateError(f"{path}: the state database is corrupt ({found}); {_FIX}")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "crmsync_meta" in tables:
                row = db.execute("SELECT value FROM crmsync_meta WHERE name = 'schema_version'").fetchone()
                version = int(row[0]) if row and str(row[0]).isdigit() else 0
            else:
                version = 1 if tables >= _V1_TABLES else 0
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StateError(f"{path}: not a SQLite database (corrupt, or another kind of file); {_FIX}") from None
        raise StateError(f"{path}: the state database is corrupt or truncated ({exc}); {_FIX}") from None
    if tables and not version:
        names = ", ".join(sorted(tables)[:5])
        raise StateError(f"{path}: not a crmsync state database (another application's tables: {names}); {_FIX}")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path}: written by a newer crmsync (state schema {version}, this one knows up to {SCHEMA_VERSION}); "
            f"upgrade crmsync"
        )
    return version or None


class SqliteStateStore(SqlStateStore):
    """State in one SQLite file. Safe for one writer process per job (the run lease sees to that)."""

    def __init__(self, path: Path, inspect: bool = True) -> None:
        self.path = path
        version = inspect_file(path) if inspect else SCHEMA_VERSION
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Not bound to one thread: a run uses it from the state store's thread (connector_core.state.writer),
            # and the lease heartbeat closes its own connection from its thread.
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            # For a new file only (an existing one keeps its size): SQLite reads and writes a page per system
            # call, and a run moves its journal through the WAL, the database and back. 8 KiB pages took a fifth
            # of the system time and 2-9% of a first stateful run's CPU (16 KiB: as much, with more page faults
            # and slower look-ups). The page cache keeps its size in bytes.
            self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (not a power loss of the last commits): the trade-off
            # every WAL user makes for not fsyncing each small transaction.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._create_temporary_tables()
            # Debian's and Ubuntu's SQLite zero every page a delete frees (SECURE_DELETE): a run's journals were
            # written out once more when it settled and deleted them (a third of a first run's state I/O). FAST
            # still zeroes deleted content in the pages a statement writes anyway, not in pages it frees. Set
            # after the temporary tables exist, it applies to their database too.
            self.db.execute("PRAGMA secure_delete=FAST")
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{path}: cannot open the state database: {exc}") from None
        if version != SCHEMA_VERSION:
            with self._transaction():
                if version == 1:  # schema 1 had a pid lock without expiry: locks are transient, start afresh
                    self.db.execute("DROP TABLE locks")
                if version in (1, 2):  # their ledger tables are re-laid out below (their rows kept as they are)
                    for table in _RELAID:
                        self.db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
                if version in (3, 4):  # another journal layout: repacked below
                    self.db.execute("DROP VIEW IF EXISTS journal_pairs")  # else it would follow the renamed table
                    self.db.execute("ALTER TABLE journal RENAME TO old_journal")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                if version in (1, 2):
                    for table, columns in _RELAID.items():
                        self.db.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM old_{table}")
                        self.db.execute(f"DROP TABLE old_{table}")
                self._migrate_unpacked_values()
                self._repack_journal(version or 0)
                self.db.execute(
                    "INSERT OR REPLACE INTO crmsync_meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )

    @property
    def location(self) -> str:
        return str(self.path)

    def storage_size(self) -> tuple[int, str]:
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        return sum(file.stat().st_size for file in files if file.exists()), "the database file and its -wal"

    def reopen(self) -> SqliteStateStore:
        return SqliteStateStore(self.path, inspect=False)

    def _clear_journal(self, table: str, run_id: int) -> None:
        # Inside the write transaction nobody else can add rows: when the journal holds this run only, a DELETE
        # without WHERE frees its pages wholesale instead of row by row. The temporary reject journal is this
        # connection's: it holds no other run's rows once no other run's are waiting to be folded. The shared
        # journal holds this run only when it has as many rows as this run appended (counted from the B-tree's
        # pages without reading a row; the count reads every page, which the temporary table spares).
        if table == "reject_journal":
            alone = not self._reject_limits
        else:
            alone = self._exec(f"SELECT count(*) FROM {table}").fetchone()[0] == self._journal_rows.pop(run_id, 0)
        if alone:
            self._exec(f"DELETE FROM {table}")
        else:
            super()._clear_journal(table, run_id)

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    @contextlib.contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """A full disk or an I/O error under the database ends the run with one line naming the file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if disk_errno(exc) is None:
                raise
            raise RunFailed(f"state database {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._disk_errors():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back already (a full disk)
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

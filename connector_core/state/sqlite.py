"""The SQLite state store: one database file (WAL mode), one transaction per committed batch."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector_core.state.store import JobLocked, StateStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL DEFAULT 'running', report TEXT);
CREATE TABLE IF NOT EXISTS locks (
    job TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, acquired_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    job TEXT NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (job, sink, key));
CREATE INDEX IF NOT EXISTS deliveries_by_run ON deliveries (job, run_id);
CREATE TABLE IF NOT EXISTS completed (
    job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (job, key));
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
CREATE TABLE IF NOT EXISTS objects (
    job TEXT NOT NULL, component TEXT NOT NULL, key TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY (job, component, key));
CREATE TABLE IF NOT EXISTS cache (
    namespace TEXT NOT NULL, identity TEXT NOT NULL, value TEXT NOT NULL, stored_at REAL NOT NULL,
    PRIMARY KEY (namespace, identity));
"""

#: SQLite limits the number of host parameters in one statement; look-ups are chunked below it.
_CHUNK = 500
_JOB_TABLES = ("deliveries", "completed", "checkpoints", "rejects", "intents", "objects")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqliteStateStore(StateStore):
    """State in one SQLite file. Safe for one writer process per job (the run lock sees to that)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # A run hands the connection to the state store's thread (connector_core.state.writer), which then is
        # the only one to use it until the run ends.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (not a power loss of the last commits): the trade-off
        # every WAL user makes for not fsyncing each small transaction.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _lookup(self, sql: str, params: tuple[Any, ...], keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(sql.format(marks=marks), (*params, *chunk)).fetchall())
        return found

    # -- runs and the lock -------------------------------------------------------------------------------
    def acquire_lock(self, job: str, owner: dict[str, Any]) -> str | None:
        host, pid = owner.get("host", socket.gethostname()), owner.get("pid", os.getpid())
        with self._transaction() as db:
            row = db.execute("SELECT pid, host, acquired_at FROM locks WHERE job = ?", (job,)).fetchone()
            note = None
            if row is not None:
                held_pid, held_host, since = row
                if held_host != host:
                    raise JobLocked(
                        f"job {job!r} is locked by pid {held_pid} on {held_host} since {since}; if that run is "
                        f"gone, remove the lock with `crmsync state unlock`"
                    )
                if _pid_alive(held_pid) and held_pid != pid:
                    raise JobLocked(f"job {job!r} is already running (pid {held_pid} since {since})")
                note = f"took over the lock of job {job!r} left by pid {held_pid} (since {since}), which is gone"
            db.execute(
                "INSERT OR REPLACE INTO locks (job, pid, host, acquired_at) VALUES (?, ?, ?, ?)",
                (job, pid, host, _now()),
            )
            return note

    def release_lock(self, job: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM locks WHERE job = ?", (job,))

    def start_run(self, job: str) -> int:
        with self._transaction() as db:
            # A run still marked running belongs to a process that died: say so in its history.
            db.execute("UPDATE runs SET status = 'crashed' WHERE job = ? AND status = 'running'", (job,))
            cursor = db.execute("INSERT INTO runs (job, started_at) VALUES (?, ?)", (job, _now()))
            return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, report: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, report = ? WHERE run_id = ?",
                (status, _now(), json.dumps(report, default=str), run_id),
            )

    def runs(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT run_id, started_at, finished_at, status, report FROM runs WHERE job = ? "
            "ORDER BY run_id DESC LIMIT ?",
            (job, limit),
        ).fetchall()
        return [
            {
                "run_id": r[0],
                "started_at": r[1],
                "finished_at": r[2],
                "status": r[3],
                "report": json.loads(r[4] or "null"),
            }
            for r in rows
        ]

    # -- delivery ledger ---------------------------------------------------------------------------------
    def completed(self, job: str, keys: list[str]) -> dict[str, str]:
        return self._lookup("SELECT key, fingerprint FROM completed WHERE job = ? AND key IN ({marks})", (job,), keys)

    def delivered(self, job: str, sink: str, keys: list[str]) -> dict[str, str]:
        sql = "SELECT key, fingerprint FROM deliveries WHERE job = ? AND sink = ? AND key IN ({marks})"
        return self._lookup(sql, (job, sink), keys)

    def commit_batch(
        self, job: str, run_id: int, sink: str, records: Iterable[tuple[str, str]], checkpoint: Any = None
    ) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO deliveries (job, sink, key, fingerprint, run_id) VALUES (?, ?, ?, ?, ?)",
                ((job, sink, key, fingerprint, run_id) for key, fingerprint in records),
            )
            if checkpoint is not None:
                db.execute(
                    "INSERT OR REPLACE INTO checkpoints (job, sink, checkpoint, run_id) VALUES (?, ?, ?, ?)",
                    (job, sink, json.dumps(checkpoint), run_id),
                )

    def sink_checkpoint(self, job: str, sink: str) -> Any:
        row = self.db.execute("SELECT checkpoint FROM checkpoints WHERE job = ? AND sink = ?", (job, sink)).fetchone()
        return json.loads(row[0]) if row else None

    def complete_run(self, job: str, run_id: int) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR REPLACE INTO completed (job, key, fingerprint, run_id) "
                "SELECT DISTINCT d.job, d.key, d.fingerprint, d.run_id FROM deliveries d "
                "WHERE d.job = ? AND d.run_id = ? AND NOT EXISTS (SELECT 1 FROM rejects r "
                "WHERE r.job = d.job AND r.key = d.key AND r.run_id = d.run_id AND r.status = 'pending')",
                (job, run_id),
            )
            db.execute(
                "DELETE FROM rejects WHERE job = ? AND key IN (SELECT key FROM completed WHERE job = ? AND run_id = ?) "
                "AND status = 'pending'",
                (job, job, run_id),
            )
            return cursor.rowcount

    # -- rejects -----------------------------------------------------------------------------------------
    def record_rejects(self, job: str, run_id: int, rejects: list[dict[str, Any]], max_attempts: int) -> None:
        with self._transaction() as db:
            for reject in rejects:
                row = db.execute(
                    "SELECT fingerprint, attempts, run_id FROM rejects WHERE job = ? AND key = ?", (job, reject["key"])
                ).fetchone()
                if row is None or row[0] != reject["fingerprint"]:
                    attempts = 1
                else:  # rejected again in the same run (fan-out) counts once
                    attempts = row[1] + (0 if row[2] == run_id else 1)
                status = "discarded" if attempts >= max_attempts else "pending"
                db.execute(
                    "INSERT OR REPLACE INTO rejects (job, key, fingerprint, component, reason, attempts, status, data, "
                    "source, position, run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job,
                        reject["key"],
                        reject["fingerprint"],
                        reject["component"],
                        reject["reason"],
                        attempts,
                        status,
                        json.dumps(reject["data"], default=str),
                        reject.get("source"),
                        reject.get("position"),
                        run_id,
                        _now(),
                    ),
                )
                if status == "discarded":
                    db.execute(
                        "INSERT OR REPLACE INTO completed (job, key, fingerprint, run_id) VALUES (?, ?, ?, ?)",
                        (job, reject["key"], reject["fingerprint"], run_id),
                    )

    def rejects(self, job: str, status: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT key, fingerprint, component, reason, attempts, status, data, source, position, updated_at "
            "FROM rejects WHERE job = ?" + (" AND status = ?" if status else "") + " ORDER BY updated_at, key"
        )
        columns = ("key", "fingerprint", "component", "reason", "attempts", "status", "data", "source", "position")
        rows = self.db.execute(sql, (job, status) if status else (job,)).fetchall()
        return [
            {**dict(zip(columns, row, strict=False)), "data": json.loads(row[6]), "updated_at": row[9]} for row in rows
        ]

    def set_rejects(self, job: str, status: str, keys: list[str] | None = None) -> int:
        where, params = (
            ("job = ?", [job])
            if keys is None
            else (
                f"job = ? AND key IN ({','.join('?' * len(keys))})",
                [job, *keys],
            )
        )
        with self._transaction() as db:
            if status == "pending":
                # Retrying means forgetting that a discarded record was settled.
                db.execute(
                    f"DELETE FROM completed WHERE job = ? AND key IN (SELECT key FROM rejects WHERE {where})",
                    [job, *params],
                )
                cursor = db.execute(f"UPDATE rejects SET status = 'pending', attempts = 0 WHERE {where}", params)
            else:
                cursor = db.execute(f"UPDATE rejects SET status = 'discarded' WHERE {where}", params)
                db.execute(
                    "INSERT OR REPLACE INTO completed (job, key, fingerprint, run_id) "
                    f"SELECT job, key, fingerprint, run_id FROM rejects WHERE {where}",
                    params,
                )
            return cursor.rowcount

    # -- intents and objects -----------------------------------------------------------------------------
    def open_intent(self, job: str, component: str, keys: list[str], started_at: float) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO intents (job, component, keys, started_at) VALUES (?, ?, ?, ?)",
                (job, component, json.dumps(keys), started_at),
            )
            return int(cursor.lastrowid or 0)

    def close_intent(self, intent_id: int, job: str, component: str, objects: dict[str, dict[str, Any]]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO objects (job, component, key, outcome) VALUES (?, ?, ?, ?)",
                ((job, component, key, json.dumps(outcome, default=str)) for key, outcome in objects.items()),
            )
            db.execute("DELETE FROM intents WHERE intent_id = ?", (intent_id,))
            # Intents of a run that died are settled once every one of their records has an outcome.
            for older_id, keys in db.execute(
                "SELECT intent_id, keys FROM intents WHERE job = ? AND component = ?", (job, component)
            ).fetchall():
                keys = json.loads(keys)
                known = self._lookup(
                    "SELECT key, 1 FROM objects WHERE job = ? AND component = ? AND key IN ({marks})",
                    (job, component),
                    keys,
                )
                if len(known) == len(set(keys)):
                    db.execute("DELETE FROM intents WHERE intent_id = ?", (older_id,))

    def open_intents(self, job: str, component: str) -> dict[str, float]:
        pending: dict[str, float] = {}
        rows = self.db.execute(
            "SELECT keys, started_at FROM intents WHERE job = ? AND component = ? ORDER BY intent_id",
            (job, component),
        )
        for keys, started_at in rows:
            for key in json.loads(keys):
                pending.setdefault(key, started_at)
        return pending

    def objects(self, job: str, component: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        sql = "SELECT key, outcome FROM objects WHERE job = ? AND component = ? AND key IN ({marks})"
        return {key: json.loads(value) for key, value in self._lookup(sql, (job, component), keys).items()}

    # -- cache -------------------------------------------------------------------------------------------
    def cache_get(self, namespace: str, identities: list[str], max_age_s: float) -> dict[str, Any]:
        sql = "SELECT identity, value FROM cache WHERE namespace = ? AND stored_at >= ? AND identity IN ({marks})"
        found = self._lookup(sql, (namespace, time.time() - max_age_s), identities)
        return {identity: json.loads(value) for identity, value in found.items()}

    def cache_put(self, namespace: str, values: dict[str, Any]) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO cache (namespace, identity, value, stored_at) VALUES (?, ?, ?, ?)",
                ((namespace, identity, json.dumps(value, default=str), now) for identity, value in values.items()),
            )

    # -- administration ----------------------------------------------------------------------------------
    def summary(self, job: str) -> dict[str, Any]:
        def count(sql: str, *params: Any) -> int:
            return int(self.db.execute(sql, params).fetchone()[0])

        lock = self.db.execute("SELECT pid, host, acquired_at FROM locks WHERE job = ?", (job,)).fetchone()
        return {
            "job": job,
            "database": str(self.path),
            "runs": self.runs(job, limit=10),
            "completed_records": count("SELECT COUNT(*) FROM completed WHERE job = ?", job),
            "deliveries": dict(
                self.db.execute("SELECT sink, COUNT(*) FROM deliveries WHERE job = ? GROUP BY sink", (job,)).fetchall()
            ),
            "checkpoints": {
                sink: json.loads(value)
                for sink, value in self.db.execute("SELECT sink, checkpoint FROM checkpoints WHERE job = ?", (job,))
            },
            "rejects": dict(
                self.db.execute("SELECT status, COUNT(*) FROM rejects WHERE job = ? GROUP BY status", (job,)).fetchall()
            ),
            "open_intents": count("SELECT COUNT(*) FROM intents WHERE job = ?", job),
            "objects": count("SELECT COUNT(*) FROM objects WHERE job = ?", job),
            "cache_entries": count("SELECT COUNT(*) FROM cache"),
            "lock": dict(zip(("pid", "host", "since"), lock, strict=True)) if lock else None,
        }

    def reset(self, job: str, parts: set[str]) -> None:
        tables = {
            "delivered": ("deliveries", "completed", "checkpoints", "objects", "intents"),
            "errors": ("rejects",),
        }
        with self._transaction() as db:
            for part in parts:
                if part == "cache":
                    db.execute("DELETE FROM cache")
                for table in tables.get(part, ()):
                    db.execute(f"DELETE FROM {table} WHERE job = ?", (job,))

    def export(self, job: str) -> dict[str, Any]:
        data: dict[str, Any] = {"format": "crmsync-state/1", "job": job}
        for table in (*_JOB_TABLES, "runs"):
            cursor = self.db.execute(f"SELECT * FROM {table} WHERE job = ?", (job,))
            columns = [c[0] for c in cursor.description]
            data[table] = [dict(zip(columns, row, strict=True)) for row in cursor]
        cursor = self.db.execute("SELECT * FROM cache")
        columns = [c[0] for c in cursor.description]
        data["cache"] = [dict(zip(columns, row, strict=True)) for row in cursor]
        return data

    def import_(self, job: str, data: dict[str, Any]) -> None:
        if data.get("format") != "crmsync-state/1":
            raise ValueError("not a crmsync state export (format crmsync-state/1)")
        with self._transaction() as db:
            for table in (*_JOB_TABLES, "runs"):
                db.execute(f"DELETE FROM {table} WHERE job = ?", (job,))
                for row in data.get(table, []):
                    row = {**row, "job": job}
                    columns = ",".join(row)
                    db.execute(
                        f"INSERT INTO {table} ({columns}) VALUES ({','.join('?' * len(row))})", list(row.values())
                    )
            for row in data.get("cache", []):
                db.execute(
                    "INSERT OR REPLACE INTO cache (namespace, identity, value, stored_at) VALUES (?, ?, ?, ?)",
                    (row["namespace"], row["identity"], row["value"], row["stored_at"]),
                )

    def close(self) -> None:
        self.db.close()

"""The state store in SQL, shared by the SQLite and PostgreSQL stores: one transaction per call.

Statements are written once, with ``?`` placeholders and ``INSERT ... ON CONFLICT`` upserts that both SQLite
(3.35+) and PostgreSQL understand; a subclass only connects, runs statements and creates the schema.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from connector_core.state.export import EXPORT_FORMAT, JOB_TABLES, validate_export
from connector_core.state.lease import takeover_note
from connector_core.state.packs import PackCache, pack, released
from connector_core.state.store import UNCHANGED, JobLocked, StateStore

#: The schema this crmsync writes; a database with a higher version was written by a newer crmsync.
SCHEMA_VERSION = 3
#: Look-ups are chunked below SQLite's limit of host parameters in one statement.
_CHUNK = 500
#: Values imported or migrated (not written by a call) are packed this many at a time.
_PACK_SIZE = 100
_REJECT_COLUMNS = (
    "fingerprint",
    "component",
    "reason",
    "attempts",
    "status",
    "data",
    "source",
    "position",
    "run_id",
    "updated_at",
)
_ON_COMPLETED = " ON CONFLICT (job, key) DO UPDATE SET fingerprint = excluded.fingerprint, run_id = excluded.run_id"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _upsert(table: str, keys: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``: insert a row or replace its non-key columns."""
    columns = (*keys, *values)
    updates = ", ".join(f"{column} = excluded.{column}" for column in values)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


class Cursor(Protocol):
    """What the store uses of a DB-API cursor; sqlite3's and psycopg's both fit."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlStateStore(StateStore):
    """The whole store logic over a DB-API connection; subclasses supply the dialect."""

    #: Appended to the lease read inside :meth:`acquire_lock` (PostgreSQL: `` FOR UPDATE``).
    for_update = ""
    #: The aggregate joining a key's distinct fingerprints with commas (PostgreSQL: ``string_agg(DISTINCT {},
    #: ',')``); :meth:`complete_run` turns the commas into the spaces :meth:`commit_batch` separates them with.
    FINGERPRINT_SET = "group_concat(DISTINCT {})"

    @abc.abstractmethod
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement (``?`` placeholders) and return its cursor."""

    @abc.abstractmethod
    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows."""

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: committed at the end, rolled back on an exception."""

    def _create_temporary_tables(self) -> None:
        """Per connection: records a run met again unchanged matter only when it settles (see complete_run),
        so they are kept off the disk (and out of a shared database)."""
        self._exec(
            "CREATE TEMP TABLE IF NOT EXISTS unchanged (job TEXT NOT NULL, run_id BIGINT NOT NULL, "
            "key TEXT NOT NULL, fingerprint TEXT NOT NULL, PRIMARY KEY (job, run_id, key, fingerprint))"
        )

    def _lookup(self, sql: str, params: tuple[Any, ...], keys: Sequence[Any]) -> dict[Any, Any]:
        """``{first column: second column}`` of ``sql`` run for ``keys`` (its ``IN ({marks})``), in chunks."""
        return dict(self._select_in(sql, params, keys))

    def _select_in(self, sql: str, params: tuple[Any, ...], keys: Sequence[Any]) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows.extend(self._exec(sql.format(marks=marks), (*params, *chunk)).fetchall())
        return rows

    def _has_table(self, name: str) -> bool:
        """Whether the database has the (permanent) table ``name``."""
        return bool(self._exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone())

    # -- runs and the lease --------------------------------------------------------------------------------
    def acquire_lock(self, job: str, owner: dict[str, Any], ttl_s: float) -> str | None:
        now = time.time()
        row = (job, owner["token"], owner["pid"], owner["host"], now, now + ttl_s)
        with self._transaction():
            taken = self._exec(
                "INSERT INTO locks (job, token, pid, host, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job) DO NOTHING",
                row,
            )
            if taken.rowcount == 1:
                return None
            held = self._lock_row(job, for_update=True)
            note = takeover_note(job, held, owner, now)
            # Compare-and-swap on the old token: of two runners taking over at once, one wins.
            swapped = self._exec(
                "UPDATE locks SET token = ?, pid = ?, host = ?, acquired_at = ?, expires_at = ? "
                "WHERE job = ? AND token = ?",
                (*row[1:], job, held["token"] if held else ""),
            )
            if swapped.rowcount != 1:
                raise JobLocked(f"job {job!r}: another run took the lease at the same moment")
            return note

    def renew_lock(self, job: str, token: str, ttl_s: float) -> bool:
        with self._transaction():
            cursor = self._exec(
                "UPDATE locks SET expires_at = ? WHERE job = ? AND token = ?", (time.time() + ttl_s, job, token)
            )
            return cursor.rowcount == 1

    def release_lock(self, job: str, token: str | None = None) -> None:
        with self._transaction():
            if token is None:
                self._exec("DELETE FROM locks WHERE job = ?", (job,))
            else:
                self._exec("DELETE FROM locks WHERE job = ? AND token = ?", (job, token))

    def lock(self, job: str) -> dict[str, Any] | None:
        return self._lock_row(job)

    def _lock_row(self, job: str, for_update: bool = False) -> dict[str, Any] | None:
        sql = "SELECT token, pid, host, acquired_at, expires_at FROM locks WHERE job = ?"
        row = self._exec(sql + (self.for_update if for_update else ""), (job,)).fetchone()
        return dict(zip(("token", "pid", "host", "acquired_at", "expires_at"), row, strict=True)) if row else None

    def start_run(self, job: str) -> int:
        with self._transaction():
            # A run still marked running belongs to a process that died: say so in its history.
            self._exec("UPDATE runs SET status = 'crashed' WHERE job = ? AND status = 'running'", (job,))
            cursor = self._exec("INSERT INTO runs (job, started_at) VALUES (?, ?) RETURNING run_id", (job, _now()))
            return int(cursor.fetchone()[0])

    def finish_run(self, run_id: int, status: str, report: dict[str, Any]) -> None:
        with self._transaction():
            self._exec(
                "UPDATE runs SET status = ?, finished_at = ?, report = ? WHERE run_id = ?",
                (status, _now(), json.dumps(report, default=str), run_id),
            )

    def runs(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._exec(
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
        if sink == UNCHANGED:
            with self._transaction():
                self._many(
                    "INSERT INTO unchanged (job, run_id, key, fingerprint) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    ((job, run_id, key, fingerprint) for key, fingerprint in records),
                )
            return
        with self._transaction():
            # A key met again in the same run with other content is a second version: both are kept, so a
            # re-run of the same input skips both instead of alternating between them. (Fingerprints are hex,
            # so LIKE has no wildcard to trip over.)
            self._many(
                "INSERT INTO deliveries (job, sink, key, fingerprint, run_id) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (job, sink, key) DO UPDATE SET fingerprint = CASE "
                "WHEN deliveries.run_id <> excluded.run_id THEN excluded.fingerprint "
                "WHEN (' ' || deliveries.fingerprint || ' ') LIKE ('% ' || excluded.fingerprint || ' %') "
                "THEN deliveries.fingerprint "
                "ELSE deliveries.fingerprint || ' ' || excluded.fingerprint END, run_id = excluded.run_id",
                ((job, sink, key, fingerprint, run_id) for key, fingerprint in records),
            )
            if checkpoint is not None:
                self._exec(
                    _upsert("checkpoints", ("job", "sink"), ("checkpoint", "run_id")),
                    (job, sink, json.dumps(checkpoint), run_id),
                )

    def sink_checkpoint(self, job: str, sink: str) -> Any:
        row = self._exec("SELECT checkpoint FROM checkpoints WHERE job = ? AND sink = ?", (job, sink)).fetchone()
        return json.loads(row[0]) if row else None

    def complete_run(self, job: str, run_id: int) -> int:
        with self._transaction():
            # A key delivered now keeps the versions of it this run met unchanged (and skipped) completed too.
            cursor = self._exec(
                "INSERT INTO completed (job, key, fingerprint, run_id) "
                f"SELECT ?, v.key, replace({self.FINGERPRINT_SET.format('v.fingerprint')}, ',', ' '), ? FROM ("
                " SELECT key, fingerprint FROM deliveries WHERE job = ? AND run_id = ?"
                " UNION ALL SELECT key, fingerprint FROM unchanged WHERE job = ? AND run_id = ?"
                " AND key IN (SELECT key FROM deliveries WHERE job = ? AND run_id = ?)) v "
                "WHERE NOT EXISTS (SELECT 1 FROM rejects r "
                "WHERE r.job = ? AND r.key = v.key AND r.run_id = ? AND r.status = 'pending') "
                "GROUP BY v.key" + _ON_COMPLETED,
                (job, run_id, job, run_id, job, run_id, job, run_id, job, run_id),
            )
            self._exec("DELETE FROM unchanged WHERE job = ? AND run_id = ?", (job, run_id))
            self._exec(
                "DELETE FROM rejects WHERE job = ? AND key IN (SELECT key FROM completed WHERE job = ? AND run_id = ?) "
                "AND status = 'pending'",
                (job, job, run_id),
            )
            return cursor.rowcount

    # -- rejects -----------------------------------------------------------------------------------------
    def record_rejects(
        self, job: str, run_id: int, rejects: list[dict[str, Any]], max_attempts: int, transient: bool = False
    ) -> None:
        with self._transaction():
            for reject in rejects:
                row = self._exec(
                    "SELECT fingerprint, attempts, run_id FROM rejects WHERE job = ? AND key = ?", (job, reject["key"])
                ).fetchone()
                same = row is not None and row[0] == reject["fingerprint"]
                if transient:  # set aside, not failed: the attempts stay as they were
                    attempts = row[1] if same else 0
                elif not same:
                    attempts = 1
                else:  # rejected again in the same run (fan-out) counts once
                    attempts = row[1] + (0 if row[2] == run_id else 1)
                status = "discarded" if attempts >= max_attempts and not transient else "pending"
                self._exec(
                    _upsert(
                        "rejects",
                        ("job", "key"),
                        _REJECT_COLUMNS,
                    ),
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
                    self._exec(
                        _upsert("completed", ("job", "key"), ("fingerprint", "run_id")),
                        (job, reject["key"], reject["fingerprint"], run_id),
                    )

    def rejects(self, job: str, status: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT key, fingerprint, component, reason, attempts, status, data, source, position, updated_at "
            "FROM rejects WHERE job = ?" + (" AND status = ?" if status else "") + " ORDER BY updated_at, key"
        )
        columns = ("key", "fingerprint", "component", "reason", "attempts", "status", "data", "source", "position")
        rows = self._exec(sql, (job, status) if status else (job,)).fetchall()
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
        with self._transaction():
            if status == "pending":
                # Retrying means forgetting that a discarded record was settled.
                self._exec(
                    f"DELETE FROM completed WHERE job = ? AND key IN (SELECT key FROM rejects WHERE {where})",
                    [job, *params],
                )
                cursor = self._exec(f"UPDATE rejects SET status = 'pending', attempts = 0 WHERE {where}", params)
            else:
                cursor = self._exec(f"UPDATE rejects SET status = 'discarded' WHERE {where}", params)
                self._exec(
                    "INSERT INTO completed (job, key, fingerprint, run_id) "
                    f"SELECT job, key, fingerprint, run_id FROM rejects WHERE {where}" + _ON_COMPLETED,
                    params,
                )
            return cursor.rowcount

    # -- intents and objects -----------------------------------------------------------------------------
    def open_intent(self, job: str, component: str, keys: list[str], started_at: float) -> int:
        with self._transaction():
            cursor = self._exec(
                "INSERT INTO intents (job, component, keys, started_at) VALUES (?, ?, ?, ?) RETURNING intent_id",
                (job, component, json.dumps(keys), started_at),
            )
            return int(cursor.fetchone()[0])

    def close_intent(self, intent_id: int, job: str, component: str, objects: dict[str, dict[str, Any]]) -> None:
        with self._transaction():
            self._put_objects(job, component, objects)
            self._exec("DELETE FROM intents WHERE intent_id = ?", (intent_id,))
            # Intents of a run that died are settled once every one of their records has an outcome.
            for older_id, keys in self._exec(
                "SELECT intent_id, keys FROM intents WHERE job = ? AND component = ?", (job, component)
            ).fetchall():
                keys = json.loads(keys)
                known = self._lookup(
                    "SELECT key, 1 FROM object_entries WHERE job = ? AND component = ? AND key IN ({marks})",
                    (job, component),
                    keys,
                )
                if len(known) == len(set(keys)):
                    self._exec("DELETE FROM intents WHERE intent_id = ?", (older_id,))

    def open_intents(self, job: str, component: str) -> dict[str, float]:
        pending: dict[str, float] = {}
        rows = self._exec(
            "SELECT keys, started_at FROM intents WHERE job = ? AND component = ? ORDER BY intent_id",
            (job, component),
        )
        for keys, started_at in rows:
            for key in json.loads(keys):
                pending.setdefault(key, started_at)
        return pending

    def objects(self, job: str, component: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        sql = "SELECT key, pack_id, slot FROM object_entries WHERE job = ? AND component = ? AND key IN ({marks})"
        return self._unpacked(self._select_in(sql, (job, component), keys))

    def put_objects(self, job: str, component: str, objects: dict[str, dict[str, Any]]) -> None:
        with self._transaction():
            self._put_objects(job, component, objects)

    def all_objects(self, job: str, component: str) -> dict[str, dict[str, Any]]:
        rows = self._exec(
            "SELECT key, pack_id, slot FROM object_entries WHERE job = ? AND component = ?", (job, component)
        ).fetchall()
        return self._unpacked(rows)

    def _put_objects(self, job: str, component: str, objects: dict[str, Any]) -> None:
        """Inside a transaction: ``objects`` as one pack (see :mod:`connector_core.state.packs`)."""
        if not objects:
            return
        keys = list(objects)
        sql = "SELECT key, pack_id FROM object_entries WHERE job = ? AND component = ? AND key IN ({marks})"
        replaced = self._lookup(sql, (job, component), keys)
        pack_id = self._new_pack(list(objects.values()), time.time())
        self._many(
            _upsert("object_entries", ("job", "component", "key"), ("pack_id", "slot")),
            ((job, component, key, pack_id, slot) for slot, key in enumerate(keys)),
        )
        self._release(replaced.values())

    # -- cache -------------------------------------------------------------------------------------------
    def cache_get(self, namespace: str, identities: list[str], max_age_s: float) -> dict[str, Any]:
        namespace_id = self._namespace_id(namespace, create=False)
        if namespace_id is None:
            return {}
        sql = "SELECT identity, pack_id, slot FROM cache_entries WHERE namespace_id = ? AND identity IN ({marks})"
        return self._unpacked(self._select_in(sql, (namespace_id,), identities), time.time() - max_age_s)

    def cache_put(self, namespace: str, values: dict[str, Any]) -> None:
        with self._transaction():
            self._put_cache(namespace, values, time.time())

    def _put_cache(self, namespace: str, values: dict[str, Any], stored_at: float) -> None:
        if not values:
            return
        namespace_id = self._namespace_id(namespace, create=True)
        assert namespace_id is not None
        identities = list(values)
        sql = "SELECT identity, pack_id FROM cache_entries WHERE namespace_id = ? AND identity IN ({marks})"
        replaced = self._lookup(sql, (namespace_id,), identities)
        pack_id = self._new_pack(list(values.values()), stored_at)
        self._many(
            _upsert("cache_entries", ("namespace_id", "identity"), ("pack_id", "slot")),
            ((namespace_id, identity, pack_id, slot) for slot, identity in enumerate(identities)),
        )
        self._release(replaced.values())

    @functools.cached_property
    def _namespace_ids(self) -> dict[str, int]:
        """Cache namespaces' numbers this store has looked up (namespaces are never deleted: they stay valid)."""
        return {}

    def _namespace_id(self, namespace: str, create: bool) -> int | None:
        """The number standing for a cache namespace in its entries."""
        known = self._namespace_ids
        if namespace not in known:
            select = "SELECT namespace_id FROM cache_namespaces WHERE namespace = ?"
            row = self._exec(select, (namespace,)).fetchone()
            if row is None and create:
                self._exec(
                    "INSERT INTO cache_namespaces (namespace) VALUES (?) ON CONFLICT (namespace) DO NOTHING",
                    (namespace,),
                )
                row = self._exec(select, (namespace,)).fetchone()
            if row is None:
                return None
            known[namespace] = int(row[0])
        return known[namespace]

    # -- packs (see connector_core.state.packs) ------------------------------------------------------------
    def _new_pack(self, values: list[Any], stored_at: float) -> int:
        cursor = self._exec(
            "INSERT INTO value_packs (refs, stored_at, data) VALUES (?, ?, ?) RETURNING pack_id",
            (len(values), stored_at, pack(values)),
        )
        return int(cursor.fetchone()[0])

    def _release(self, pack_ids: Iterable[int]) -> None:
        """Entries that pointed at these packs (one id per entry) point elsewhere now: drop packs left unused."""
        counts = released(pack_ids)
        if counts:
            self._many("UPDATE value_packs SET refs = refs - ? WHERE pack_id = ?", counts)
            self._many("DELETE FROM value_packs WHERE pack_id = ? AND refs <= 0", [(pack_id,) for _, pack_id in counts])

    def _unpacked(self, entries: list[Any], stored_since: float | None = None) -> dict[Any, Any]:
        """``{key: value}`` for ``(key, pack_id, slot)`` entries (only packs stored since ``stored_since``)."""
        if not entries:
            return {}
        sql = "SELECT pack_id, data FROM value_packs WHERE "
        params: tuple[Any, ...] = ()
        if stored_since is not None:
            sql, params = sql + "stored_at >= ? AND ", (stored_since,)
        packs = self._lookup(sql + "pack_id IN ({marks})", params, sorted({entry[1] for entry in entries}))
        read = PackCache()
        return {key: read.value(pack_id, packs[pack_id], slot) for key, pack_id, slot in entries if pack_id in packs}

    def _migrate_unpacked_values(self) -> None:
        """Inside the schema upgrade: schema 2 kept the cache and objects one JSON text per row; pack them."""
        if self._has_table("cache"):
            rows = self._rows("SELECT namespace, identity, value, stored_at FROM cache", ())
            self._import_cache(rows)
            self._exec("DROP TABLE cache")
        if self._has_table("objects"):
            self._import_objects(self._rows("SELECT job, component, key, outcome FROM objects", ()))
            self._exec("DROP TABLE objects")

    def _import_cache(self, rows: list[dict[str, Any]]) -> None:
        groups: dict[tuple[str, float], dict[str, Any]] = {}
        for row in rows:
            groups.setdefault((row["namespace"], row["stored_at"]), {})[row["identity"]] = json.loads(row["value"])
        for (namespace, stored_at), values in groups.items():
            for chunk in _chunks(values):
                self._put_cache(namespace, chunk, stored_at)

    def _import_objects(self, rows: list[dict[str, Any]]) -> None:
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            groups.setdefault((row["job"], row["component"]), {})[row["key"]] = json.loads(row["outcome"])
        for (job, component), values in groups.items():
            for chunk in _chunks(values):
                self._put_objects(job, component, chunk)

    def _export_cache(self) -> list[dict[str, Any]]:
        rows = self._exec(
            "SELECT n.namespace, e.identity, e.pack_id, e.slot, p.stored_at, p.data FROM cache_entries e "
            "JOIN cache_namespaces n ON n.namespace_id = e.namespace_id JOIN value_packs p ON p.pack_id = e.pack_id "
            "ORDER BY n.namespace, e.identity"
        ).fetchall()
        read = PackCache()
        return [
            {
                "namespace": namespace,
                "identity": identity,
                "value": json.dumps(read.value(pack_id, data, slot)),
                "stored_at": stored_at,
            }
            for namespace, identity, pack_id, slot, stored_at, data in rows
        ]

    def _export_objects(self, job: str) -> list[dict[str, Any]]:
        rows = self._exec(
            "SELECT component, key, pack_id, slot FROM object_entries WHERE job = ? ORDER BY component, key", (job,)
        ).fetchall()
        values = self._unpacked([((component, key), pack_id, slot) for component, key, pack_id, slot in rows])
        return [
            {"job": job, "component": component, "key": key, "outcome": json.dumps(values[component, key])}
            for component, key, _, _ in rows
        ]

    def _delete_objects(self, job: str) -> None:
        self._exec(
            "DELETE FROM value_packs WHERE pack_id IN (SELECT pack_id FROM object_entries WHERE job = ?)", (job,)
        )
        self._exec("DELETE FROM object_entries WHERE job = ?", (job,))

    def _delete_cache(self) -> None:
        self._exec("DELETE FROM value_packs WHERE pack_id IN (SELECT pack_id FROM cache_entries)")
        self._exec("DELETE FROM cache_entries")

    # -- administration ----------------------------------------------------------------------------------
    def summary(self, job: str) -> dict[str, Any]:
        def count(sql: str, *params: Any) -> int:
            return int(self._exec(sql, params).fetchone()[0])

        lock = self.lock(job)
        completed = count("SELECT COUNT(*) FROM completed WHERE job = ?", job)
        cached = count("SELECT COUNT(*) FROM cache_entries")
        size, measured = self.storage_size()
        return {
            "job": job,
            "database": self.location,
            "runs": self.runs(job, limit=10),
            "completed_records": completed,
            "deliveries": dict(
                self._exec("SELECT sink, COUNT(*) FROM deliveries WHERE job = ? GROUP BY sink", (job,)).fetchall()
            ),
            "checkpoints": {
                sink: json.loads(value)
                for sink, value in self._exec("SELECT sink, checkpoint FROM checkpoints WHERE job = ?", (job,))
            },
            "rejects": dict(
                self._exec("SELECT status, COUNT(*) FROM rejects WHERE job = ? GROUP BY status", (job,)).fetchall()
            ),
            "open_intents": count("SELECT COUNT(*) FROM intents WHERE job = ?", job),
            "objects": count("SELECT COUNT(*) FROM object_entries WHERE job = ?", job),
            "cache_entries": cached,
            "size": {
                "bytes": size,
                "measured": measured,
                "bytes_per_completed_record": round(size / completed) if completed else None,
                "bytes_per_cached_person": round(size / cached) if cached else None,
            },
            "lock": None
            if lock is None
            else {
                "pid": lock["pid"],
                "host": lock["host"],
                "since": _iso(lock["acquired_at"]),
                "until": _iso(lock["expires_at"]),
                "expired": lock["expires_at"] <= time.time(),
            },
        }

    @abc.abstractmethod
    def storage_size(self) -> tuple[int, str]:
        """The bytes the state takes, and what was measured (shown by ``crmsync state show``)."""

    def reset(self, job: str, parts: set[str]) -> None:
        tables = {
            "delivered": ("deliveries", "completed", "checkpoints", "intents"),
            "errors": ("rejects",),
        }
        with self._transaction():
            for part in parts:
                if part == "cache":
                    self._delete_cache()
                if part == "delivered":
                    self._delete_objects(job)
                for table in tables.get(part, ()):
                    self._exec(f"DELETE FROM {table} WHERE job = ?", (job,))

    def export(self, job: str) -> dict[str, Any]:
        data: dict[str, Any] = {"format": EXPORT_FORMAT, "job": job}
        for table in (*JOB_TABLES, "runs"):
            if table == "objects":
                data[table] = self._export_objects(job)
            else:
                data[table] = self._rows(f"SELECT * FROM {table} WHERE job = ?", (job,))
        data["cache"] = self._export_cache()
        return data

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        cursor = self._exec(sql, params)
        columns = [c[0] for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def import_(self, job: str, data: dict[str, Any]) -> None:
        tables = validate_export(data)
        with self._transaction():
            for table in (*JOB_TABLES, "runs"):
                if table == "objects":
                    self._delete_objects(job)
                    self._import_objects([{**row, "job": job} for row in tables[table]])
                    continue
                self._exec(f"DELETE FROM {table} WHERE job = ?", (job,))
                for row in tables[table]:
                    row = {**row, "job": job}
                    marks = ",".join("?" * len(row))
                    self._exec(f"INSERT INTO {table} ({','.join(row)}) VALUES ({marks})", tuple(row.values()))
            self._import_cache(tables["cache"])
            self._after_import()

    def _after_import(self) -> None:
        """Dialect hook: e.g. move id sequences past imported ids."""


def _chunks(values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    items = list(values.items())
    for start in range(0, len(items), _PACK_SIZE):
        yield dict(items[start : start + _PACK_SIZE])

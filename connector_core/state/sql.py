"""The state store in SQL, shared by the SQLite and PostgreSQL stores: one transaction per call.

Statements are written once, with ``?`` placeholders and ``INSERT ... ON CONFLICT`` upserts that both SQLite
(3.35+) and PostgreSQL understand; a subclass only connects, runs statements and creates the schema.
"""

from __future__ import annotations

import abc
import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, Protocol

from connector_core.state.export import EXPORT_FORMAT, JOB_TABLES, validate_export
from connector_core.state.lease import takeover_note
from connector_core.state.store import UNCHANGED, JobLocked, StateStore

#: The schema this crmsync writes; a database with a higher version was written by a newer crmsync. Schema 3
#: journals a run's deliveries (``journal``) and folds them into ``deliveries`` and ``completed`` when it ends.
SCHEMA_VERSION = 3
#: Look-ups are chunked below SQLite's limit of host parameters in one statement.
_CHUNK = 500
#: ``json.dumps(data, default=str)`` without building an encoder per call (half of a reject's cost).
_reject_data = json.JSONEncoder(default=str).encode
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
EMPTY = "''"
#: A discarded reject is completed through no sink.
_ON_COMPLETED = (
    " ON CONFLICT (job, key) DO UPDATE SET fingerprint = excluded.fingerprint, run_id = excluded.run_id, sinks = NULL"
)


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

    #: Whether one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` may update a row it inserted itself (SQLite
    #: may; PostgreSQL refuses): folds then merge the versions of a key as they meet them, in key order, instead
    #: of grouping them first (a sort per distinct key set, several times slower).
    MERGES_IN_ONE_STATEMENT = True
    #: Whether text ``{0}`` contains text ``{1}`` (PostgreSQL: ``strpos``).
    CONTAINS = "instr({}, {}) > 0"

    def _create_temporary_tables(self) -> None:
        """Per connection: records a run met again unchanged matter only when it settles (see complete_run),
        so they are kept off the disk (and out of a shared database); appended like ``journal``."""
        self._exec(
            "CREATE TEMP TABLE IF NOT EXISTS unchanged (run_id BIGINT NOT NULL, key TEXT NOT NULL, "
            "fingerprint TEXT NOT NULL)"
        )

    def _contains(self, items: str, item: str) -> str:
        """SQL: whether the space-separated set ``items`` holds ``item`` (two column expressions)."""
        return self.CONTAINS.format(f"' ' || {items} || ' '", f"' ' || {item} || ' '")

    def _upsert_versions(self, table: str, keys: str, sets: tuple[str, ...], select: str) -> str:
        """``INSERT INTO table (job, {keys}, {sets}, run_id)`` of the rows of ``select`` (columns ``{keys}`` and
        ``{sets}``; job and run id as the first and last ``?``). Each of ``sets`` is a space-separated set (the
        versions of a key, the sinks that have it): what this run brings replaces an earlier run's, and is
        gathered within one run (empty values add nothing)."""
        columns = f"job, {keys}, {', '.join(sets)}, run_id"
        if not self.MERGES_IN_ONE_STATEMENT:
            gathered = ", ".join(
                f"replace({self.FINGERPRINT_SET.format(f'NULLIF(v.{name}, {EMPTY})')}, ',', ' ')" for name in sets
            )
            replaced = ", ".join(f"{name} = excluded.{name}" for name in sets)
            return (
                f"INSERT INTO {table} ({columns}) SELECT ?, {keys}, {gathered}, ? FROM ({select}) v "
                f"GROUP BY {keys} ORDER BY {keys} ON CONFLICT (job, {keys}) DO UPDATE "
                f"SET {replaced}, run_id = excluded.run_id"
            )
        merged = ", ".join(
            f"{name} = CASE WHEN {table}.run_id <> excluded.run_id THEN excluded.{name} "
            f"WHEN coalesce(excluded.{name}, '') = '' OR {self._contains(f'{table}.{name}', f'excluded.{name}')} "
            f"THEN {table}.{name} "
            f"WHEN coalesce({table}.{name}, '') = '' THEN excluded.{name} "
            f"ELSE {table}.{name} || ' ' || excluded.{name} END"
            for name in sets
        )
        return (
            f"INSERT INTO {table} ({columns}) SELECT ?, {keys}, {', '.join(f'v.{name}' for name in sets)}, ? "
            f"FROM ({select}) v ORDER BY {keys} ON CONFLICT (job, {keys}) DO UPDATE SET {merged}, "
            "run_id = excluded.run_id"
        )

    def _lookup(self, sql: str, params: tuple[Any, ...], keys: list[str]) -> dict[str, Any]:
        return dict(self._lookup_rows(sql, params, keys))

    def _lookup_rows(self, sql: str, params: tuple[Any, ...], keys: list[str]) -> list[Any]:
        found: list[Any] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found += self._exec(sql.format(marks=marks), (*params, *chunk)).fetchall()
        return found

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
            run_id = int(cursor.fetchone()[0])
            self._fold_dead_runs(job, run_id)
            return run_id

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
    # A run appends each committed batch to `journal` as one row (its pairs as a JSON array): an append at the
    # end of a small table, whatever the size of the ledger. The run's journal is folded into `deliveries` and
    # `completed` when it settles, sorted by key, so each page of those B-trees is written once per run; the
    # journal of a run that died is folded into `deliveries` by the next run's start (the lease guarantees
    # it is dead). Look-ups during a run therefore see what earlier runs delivered, never the run's own.
    def completed(self, job: str, keys: list[str]) -> dict[str, str]:
        return self._lookup("SELECT key, fingerprint FROM completed WHERE job = ? AND key IN ({marks})", (job,), keys)

    def delivered(self, job: str, sink: str, keys: list[str]) -> dict[str, str]:
        # What a settled run delivered is in `completed`, with the sinks that got each key; `deliveries` holds
        # the rest (runs that died or failed, keys also rejected). The later run's word counts.
        found = {
            key: (fingerprint, run_id)
            for key, fingerprint, run_id in self._lookup_rows(
                "SELECT key, fingerprint, run_id FROM deliveries WHERE job = ? AND sink = ? AND key IN ({marks})",
                (job, sink),
                keys,
            )
        }
        completed = self._lookup_rows(
            "SELECT key, fingerprint, run_id, sinks FROM completed WHERE job = ? AND key IN ({marks})", (job,), keys
        )
        for key, fingerprint, run_id, sinks in completed:
            if sinks and sink in sinks.split(" ") and (key not in found or run_id > found[key][1]):
                found[key] = (fingerprint, run_id)
        return {key: fingerprint for key, (fingerprint, _) in found.items()}

    def ledger_start(self, job: str) -> tuple[bool, set[str]]:
        row = self._exec("SELECT 1 FROM completed WHERE job = ? LIMIT 1", (job,)).fetchone()
        # One index seek per sink (a DISTINCT would read every delivery of the job).
        sinks: set[str] = set()
        after = ""
        while found := self._exec(
            "SELECT sink FROM deliveries WHERE job = ? AND sink > ? ORDER BY sink LIMIT 1", (job, after)
        ).fetchone():
            after = found[0]
            sinks.add(after)
        return row is not None, sinks

    def commit_batch(
        self, job: str, run_id: int, sink: str, records: Iterable[tuple[str, str]], checkpoint: Any = None
    ) -> None:
        pairs = records if isinstance(records, list) else list(records)
        # The rows are built in C: the run (and sink) repeated beside each pair's key and fingerprint.
        columns = zip(*pairs, strict=True)
        if sink == UNCHANGED:
            if pairs:
                with self._transaction():
                    rows = zip(repeat(run_id), *columns, strict=False)
                    self._many("INSERT INTO unchanged (run_id, key, fingerprint) VALUES (?, ?, ?)", rows)
            return
        with self._transaction():
            if pairs:
                rows = zip(repeat(run_id), repeat(sink), *columns, strict=False)
                self._many("INSERT INTO journal (run_id, sink, key, fingerprint) VALUES (?, ?, ?, ?)", rows)
            if checkpoint is not None:
                self._exec(
                    _upsert("checkpoints", ("job", "sink"), ("checkpoint", "run_id")),
                    (job, sink, json.dumps(checkpoint), run_id),
                )

    def sink_checkpoint(self, job: str, sink: str) -> Any:
        row = self._exec("SELECT checkpoint FROM checkpoints WHERE job = ? AND sink = ?", (job, sink)).fetchone()
        return json.loads(row[0]) if row else None

    def _fold(self, job: str, run_id: int, rejected_only: bool = False) -> None:
        """Fold a run's journal into ``deliveries`` (``rejected_only``: the keys it also rejected, which its
        settling does not complete): per sink and key, the versions this run delivered replace what an earlier
        run delivered (two versions of a key in one run are both kept, space-separated)."""
        select = "SELECT sink, key, fingerprint FROM journal WHERE run_id = ?"
        params: tuple[Any, ...] = (job, run_id, run_id)
        if rejected_only:
            rejected = "SELECT key FROM rejects WHERE job = ? AND run_id = ? AND status = 'pending'"
            if not self._exec(rejected + " LIMIT 1", (job, run_id)).fetchone():
                self._clear_journal(run_id)
                return
            select += f" AND key IN ({rejected})"
            params = (*params, job, run_id)
        self._exec(self._upsert_versions("deliveries", "sink, key", ("fingerprint",), select), params)
        self._clear_journal(run_id)

    def _clear_journal(self, run_id: int) -> None:
        """Delete a folded run's journal rows."""
        self._exec("DELETE FROM journal WHERE run_id = ?", (run_id,))

    def _fold_dead_runs(self, job: str, live_run: int) -> None:
        """Fold the journals of the job's earlier runs (they died, or failed before settling): what their
        sinks committed counts as delivered there."""
        dead = self._exec(
            "SELECT DISTINCT run_id FROM journal WHERE run_id <> ? "
            "AND run_id IN (SELECT run_id FROM runs WHERE job = ?) ORDER BY run_id",
            (live_run, job),
        ).fetchall()
        for (run_id,) in dead:
            self._fold(job, run_id)

    def complete_run(self, job: str, run_id: int) -> None:
        with self._transaction():
            select = "SELECT key, fingerprint, sink AS sinks FROM journal WHERE run_id = ?"
            params: list[Any] = [job, run_id, run_id]
            if self._exec("SELECT 1 FROM unchanged WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                # A key delivered now keeps the versions of it this run met unchanged (and skipped) completed too.
                select += (
                    " UNION ALL SELECT key, fingerprint, '' FROM unchanged WHERE run_id = ? "
                    "AND key IN (SELECT key FROM journal WHERE run_id = ?)"
                )
                params += [run_id, run_id]
            # Keys this run delivered and also rejected are not completed (their deliveries are kept in
            # `deliveries`): one pass over the journal says whether there are any, usually not even when the run
            # rejected many records, and then neither the fold nor the folding of rejected keys filters by them.
            rejected = "SELECT r.key FROM rejects r WHERE r.job = ? AND r.run_id = ? AND r.status = 'pending'"
            both = self._exec(
                f"SELECT 1 FROM journal WHERE run_id = ? AND key IN ({rejected}) LIMIT 1", (run_id, job, run_id)
            ).fetchone()
            if both:
                select = f"SELECT * FROM ({select}) d WHERE d.key NOT IN ({rejected})"
                params += [job, run_id]
            sql = self._upsert_versions("completed", "key", ("fingerprint", "sinks"), select)
            self._exec(sql, params)
            self._exec("DELETE FROM unchanged WHERE run_id = ?", (run_id,))
            # Records rejected by earlier runs and delivered by this one are settled.
            self._exec(
                "DELETE FROM rejects WHERE job = ? AND status = 'pending' AND EXISTS (SELECT 1 FROM completed c "
                "WHERE c.job = rejects.job AND c.key = rejects.key AND c.run_id = ?)",
                (job, run_id),
            )
            # Deliveries of runs that died, now completed through the same sink: `completed` says it all.
            through = self._contains("c.sinks", "deliveries.sink")
            self._exec(
                "DELETE FROM deliveries WHERE job = ? AND EXISTS (SELECT 1 FROM completed c WHERE c.job = ? "
                f"AND c.key = deliveries.key AND c.run_id = ? AND {through})",
                (job, job, run_id),
            )
            if both:
                self._fold(job, run_id, rejected_only=True)
            else:
                self._clear_journal(run_id)

    # -- rejects -----------------------------------------------------------------------------------------
    def record_rejects(
        self, job: str, run_id: int, rejects: list[dict[str, Any]], max_attempts: int, transient: bool = False
    ) -> None:
        if not rejects:
            return
        with self._transaction():
            known = {
                key: (fingerprint, attempts, seen_by)
                for key, fingerprint, attempts, seen_by in self._lookup_rows(
                    "SELECT key, fingerprint, attempts, run_id FROM rejects WHERE job = ? AND key IN ({marks})",
                    (job,),
                    list({reject["key"] for reject in rejects}),
                )
            }
            now = _now()
            rows, discarded = [], []
            for reject in rejects:
                key = reject["key"]
                row = known.get(key)
                same = row is not None and row[0] == reject["fingerprint"]
                if transient:  # set aside, not failed: the attempts stay as they were
                    attempts = row[1] if same else 0  # type: ignore[index]
                elif not same:
                    attempts = 1
                else:  # rejected again in the same run (fan-out) counts once
                    attempts = row[1] + (0 if row[2] == run_id else 1)  # type: ignore[index]
                status = "discarded" if attempts >= max_attempts and not transient else "pending"
                known[key] = (reject["fingerprint"], attempts, run_id)
                rows.append(
                    (
                        job,
                        key,
                        reject["fingerprint"],
                        reject["component"],
                        reject["reason"],
                        attempts,
                        status,
                        _reject_data(reject["data"]),
                        reject.get("source"),
                        reject.get("position"),
                        run_id,
                        now,
                    )
                )
                if status == "discarded":  # completed through no sink
                    discarded.append((job, key, reject["fingerprint"], run_id, None))
            self._many(_upsert("rejects", ("job", "key"), _REJECT_COLUMNS), rows)
            if discarded:
                self._many(_upsert("completed", ("job", "key"), ("fingerprint", "run_id", "sinks")), discarded)

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
            self._many(
                _upsert("objects", ("job", "component", "key"), ("outcome",)),
                ((job, component, key, json.dumps(outcome, default=str)) for key, outcome in objects.items()),
            )
            self._exec("DELETE FROM intents WHERE intent_id = ?", (intent_id,))
            # Intents of a run that died are settled once every one of their records has an outcome.
            for older_id, keys in self._exec(
                "SELECT intent_id, keys FROM intents WHERE job = ? AND component = ?", (job, component)
            ).fetchall():
                keys = json.loads(keys)
                known = self._lookup(
                    "SELECT key, 1 FROM objects WHERE job = ? AND component = ? AND key IN ({marks})",
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
        sql = "SELECT key, outcome FROM objects WHERE job = ? AND component = ? AND key IN ({marks})"
        return {key: json.loads(value) for key, value in self._lookup(sql, (job, component), keys).items()}

    def put_objects(self, job: str, component: str, objects: dict[str, dict[str, Any]]) -> None:
        with self._transaction():
            self._many(
                _upsert("objects", ("job", "component", "key"), ("outcome",)),
                ((job, component, key, json.dumps(outcome, default=str)) for key, outcome in objects.items()),
            )

    def all_objects(self, job: str, component: str) -> dict[str, dict[str, Any]]:
        rows = self._exec("SELECT key, outcome FROM objects WHERE job = ? AND component = ?", (job, component))
        return {key: json.loads(value) for key, value in rows.fetchall()}

    # -- cache -------------------------------------------------------------------------------------------
    def cache_get(self, namespace: str, identities: list[str], max_age_s: float) -> dict[str, Any]:
        sql = "SELECT identity, value FROM cache WHERE namespace = ? AND stored_at >= ? AND identity IN ({marks})"
        found = self._lookup(sql, (namespace, time.time() - max_age_s), identities)
        return {identity: json.loads(value) for identity, value in found.items()}

    def cache_put(self, namespace: str, values: dict[str, Any]) -> None:
        now = time.time()
        with self._transaction():
            self._many(
                _upsert("cache", ("namespace", "identity"), ("value", "stored_at")),
                ((namespace, identity, json.dumps(value, default=str), now) for identity, value in values.items()),
            )

    # -- administration ----------------------------------------------------------------------------------
    def summary(self, job: str) -> dict[str, Any]:
        def count(sql: str, *params: Any) -> int:
            return int(self._exec(sql, params).fetchone()[0])

        lock = self.lock(job)
        return {
            "job": job,
            "database": self.location,
            "runs": self.runs(job, limit=10),
            "completed_records": count("SELECT COUNT(*) FROM completed WHERE job = ?", job),
            "deliveries": self._delivery_counts(job),
            "checkpoints": {
                sink: json.loads(value)
                for sink, value in self._exec("SELECT sink, checkpoint FROM checkpoints WHERE job = ?", (job,))
            },
            "rejects": dict(
                self._exec("SELECT status, COUNT(*) FROM rejects WHERE job = ? GROUP BY status", (job,)).fetchall()
            ),
            "open_intents": count("SELECT COUNT(*) FROM intents WHERE job = ?", job),
            "objects": count("SELECT COUNT(*) FROM objects WHERE job = ?", job),
            "cache_entries": count("SELECT COUNT(*) FROM cache"),
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

    def _delivery_counts(self, job: str) -> dict[str, int]:
        """Records per sink: completed through it, in deliveries not completed, and journaled by runs not folded
        yet (a live or dead run)."""
        counts: dict[str, int] = dict(
            self._exec("SELECT sink, COUNT(*) FROM deliveries WHERE job = ? GROUP BY sink", (job,)).fetchall()
        )
        for sinks, count in self._exec("SELECT sinks, COUNT(*) FROM completed WHERE job = ? GROUP BY sinks", (job,)):
            for sink in (sinks or "").split():
                counts[sink] = counts.get(sink, 0) + int(count)
        journaled = self._exec(
            "SELECT sink, COUNT(*) FROM journal WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?) GROUP BY sink",
            (job,),
        )
        for sink, count in journaled:
            counts[sink] = counts.get(sink, 0) + int(count)
        return counts

    def _journaled_deliveries(self, job: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` of ``deliveries`` with the journals not folded yet applied, as folding them would."""
        by_key = {(row["sink"], row["key"]): row for row in rows}
        journal = self._exec(
            "SELECT run_id, sink, key, fingerprint FROM journal "
            "WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?) ORDER BY run_id",
            (job,),
        )
        for run_id, sink, key, fingerprint in journal:
            row = by_key.get((sink, key))
            if row is not None and row["run_id"] == run_id:
                if fingerprint not in row["fingerprint"].split(" "):
                    row["fingerprint"] += " " + fingerprint
            else:
                by_key[sink, key] = {"job": job, "sink": sink, "key": key, "fingerprint": fingerprint}
                by_key[sink, key]["run_id"] = run_id
        return list(by_key.values())

    def reset(self, job: str, parts: set[str]) -> None:
        tables = {
            "delivered": ("deliveries", "completed", "checkpoints", "objects", "intents"),
            "errors": ("rejects",),
        }
        with self._transaction():
            for part in parts:
                if part == "cache":
                    self._exec("DELETE FROM cache")
                if part == "delivered":
                    self._exec("DELETE FROM journal WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?)", (job,))
                for table in tables.get(part, ()):
                    self._exec(f"DELETE FROM {table} WHERE job = ?", (job,))

    def export(self, job: str) -> dict[str, Any]:
        data: dict[str, Any] = {"format": EXPORT_FORMAT, "job": job}
        for table in (*JOB_TABLES, "runs"):
            data[table] = self._rows(f"SELECT * FROM {table} WHERE job = ?", (job,))
        data["deliveries"] = self._journaled_deliveries(job, data["deliveries"])
        data["cache"] = self._rows("SELECT * FROM cache", ())
        return data

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        cursor = self._exec(sql, params)
        columns = [c[0] for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def import_(self, job: str, data: dict[str, Any]) -> None:
        tables = validate_export(data)
        with self._transaction():
            self._exec("DELETE FROM journal WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?)", (job,))
            for table in (*JOB_TABLES, "runs"):
                self._exec(f"DELETE FROM {table} WHERE job = ?", (job,))
                for row in tables[table]:
                    row = {**row, "job": job}
                    marks = ",".join("?" * len(row))
                    self._exec(f"INSERT INTO {table} ({','.join(row)}) VALUES ({marks})", tuple(row.values()))
            self._many(
                _upsert("cache", ("namespace", "identity"), ("value", "stored_at")),
                ((r["namespace"], r["identity"], r["value"], r["stored_at"]) for r in tables["cache"]),
            )
            self._after_import()

    def _after_import(self) -> None:
        """Dialect hook: e.g. move id sequences past imported ids."""

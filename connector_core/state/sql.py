"""The state store in SQL, shared by the SQLite and PostgreSQL stores: one transaction per call.

Statements are written once, with ``?`` placeholders and ``INSERT ... ON CONFLICT`` upserts that both SQLite
(3.35+) and PostgreSQL understand; a subclass only connects, runs statements and creates the schema.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import repeat
from operator import itemgetter
from typing import Any, Protocol

from connector_core.json_encoding import encode_json
from connector_core.state.export import EXPORT_FORMAT, JOB_TABLES, validate_export
from connector_core.state.lease import takeover_note
from connector_core.state.packs import PackCache, pack, released
from connector_core.state.store import UNCHANGED, JobLocked, Reject, StateStore

#: The schema this crmsync writes; a database with a higher version was written by a newer crmsync. Schema 3
#: journals a run's deliveries (``journal``) and folds them into ``deliveries`` and ``completed`` when it ends,
#: and keeps cached answers and created objects in compressed packs (``value_packs``); schema 4 journals each
#: commit as one row, its pairs packed in JSON (read through the ``journal_pairs`` view): an array of pairs in
#: schema 4, an object of ``key: fingerprint`` members in schema 5 (read without extracting each pair's parts).
SCHEMA_VERSION = 5
#: Look-ups are chunked below SQLite's limit of host parameters in one statement.
_CHUNK = 500
#: The most pairs one journal row holds (~100 KB of JSON: below glibc's threshold for a fresh mapping).
JOURNAL_ROW_PAIRS = 2_000
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
EMPTY = "''"
#: A key journaled this many times by one run (counted within its commits) makes its folds gather each key's
#: versions first (see SqlStateStore._upsert_versions); so does tracking more repeated keys than this.
MANY_VERSIONS = 32
_MAX_REPEATED = 10_000
#: A commit of more pairs than this is looked at through a random sample of its keys, one in ``_SAMPLED``, before
#: they are counted (see SqlStateStore._count_versions).
_COUNTED_WHOLE = 1_000
_SAMPLED = 16
#: The key of a ``(key, fingerprint)`` pair, picked in C.
_KEY_OF_PAIR = itemgetter(0)
#: The keys a run rejected that are still pending (job and run id as parameters).
_PENDING_REJECTS_OF_RUN = "SELECT key FROM rejects WHERE job = ? AND run_id = ? AND status = 'pending'"
#: A discarded reject is completed through no sink.
_ON_COMPLETED = (
    " ON CONFLICT (job, key) DO UPDATE SET fingerprint = excluded.fingerprint, run_id = excluded.run_id, sinks = NULL"
)


#: What JSON escapes in a text, the quote aside (counted instead), as UTF-8 bytes: see :func:`journal_text`.
_ESCAPED = bytes(range(32)) + b"\\"


def journal_text(pairs: list[tuple[str, str]]) -> str:
    """``(key, fingerprint)`` pairs as the JSON object a journal row holds: a member per pair, in order (a key
    journaled twice by one commit is two members, which SQLite's and PostgreSQL's ``json_each`` both read).

    Keys JSON needs no escape for (nearly all) are joined in C: the object then holds exactly four quotes per
    pair and no backslash or control character, else a text held one and is encoded properly (the bytes are
    searched by ``translate``: a regular expression took as long as the C encoder)."""
    if not pairs:
        return "{}"
    text = '{"' + '","'.join(map('":"'.join, pairs)) + '"}'
    if text.count('"') == 4 * len(pairs):
        utf8 = text.encode()
        if len(utf8.translate(None, _ESCAPED)) == len(utf8):
            return text
    # One key in a chunk with a tab or a quote (a messy key column) must not make the whole chunk a Python loop:
    # the keys and fingerprints are each encoded by one call of the C encoder, a JSON array whose strings are
    # then cut apart where one ends and the next begins (inside an encoded string every quote is escaped).
    keys, prints = (_escaped(column) for column in zip(*pairs, strict=True))
    if len(keys) == len(prints) == len(pairs):
        return '{"' + '","'.join(map('":"'.join, zip(keys, prints, strict=True))) + '"}'
    return "{" + ",".join(f"{encode_json(key)}:{encode_json(fingerprint)}" for key, fingerprint in pairs) + "}"


def _escaped(texts: tuple[str, ...]) -> list[str]:
    """Each of ``texts`` as the inside of a JSON string (without its quotes), encoded at once."""
    return encode_json(list(texts))[2:-2].split('", "')


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
    #: The aggregate packing a group of ``(key, fingerprint)`` rows into the JSON object a journal row holds.
    PACKED_PAIRS = "json_group_object(key, fingerprint)"
    #: The pairs of a schema-4 journal (``{table}``: a JSON array of ``[key, fingerprint]`` per row).
    ARRAY_PAIRS = (
        "SELECT j.run_id AS run_id, j.sink AS sink, json_extract(p.value, '$[0]') AS key, "
        "json_extract(p.value, '$[1]') AS fingerprint FROM {table} j, json_each(j.pairs) p"
    )

    def _create_temporary_tables(self) -> None:
        """Per connection: records a run met again unchanged matter only when it settles (see complete_run),
        so they are kept off the disk (and out of a shared database); appended like ``journal``."""
        self._exec(
            "CREATE TEMP TABLE IF NOT EXISTS unchanged (run_id BIGINT NOT NULL, key TEXT NOT NULL, "
            "fingerprint TEXT NOT NULL)"
        )
        # Keys a settling run journaled many times (see _fold_completed).
        self._exec("CREATE TEMP TABLE IF NOT EXISTS many_versions (key TEXT NOT NULL)")
        # What `completed` held for the keys a settling run rejected, put back for those it also delivered.
        self._exec(
            "CREATE TEMP TABLE IF NOT EXISTS prior_completed (job TEXT NOT NULL, key TEXT NOT NULL, "
            "fingerprint TEXT NOT NULL, run_id BIGINT NOT NULL, sinks TEXT)"
        )
        # A run's rejects until it ends (see record_rejects): numbered in the order they came (``seq``).
        self._exec(
            "CREATE TEMP TABLE IF NOT EXISTS reject_journal (seq BIGINT NOT NULL, run_id BIGINT NOT NULL, "
            "transient INTEGER NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, component TEXT NOT NULL, "
            "reason TEXT NOT NULL, data TEXT NOT NULL, source TEXT, position BIGINT)"
        )

    def _contains(self, items: str, item: str) -> str:
        """SQL: whether the space-separated set ``items`` holds ``item`` (two column expressions)."""
        return self.CONTAINS.format(f"' ' || {items} || ' '", f"' ' || {item} || ' '")

    def _upsert_versions(self, table: str, keys: str, sets: tuple[str, ...], select: str, grouped: bool = False) -> str:
        """``INSERT INTO table (job, {keys}, {sets}, run_id)`` of the rows of ``select`` (columns ``{keys}`` and
        ``{sets}``; job and run id as the first and last ``?``). Each of ``sets`` is a space-separated set (the
        versions of a key, the sinks that have it): what this run brings replaces an earlier run's, and is
        gathered within one run (empty values add nothing).

        SQLite merges a key's rows one by one as the sorted rows meet them: the cheapest way while keys have few
        versions, but each merge copies the versions gathered so far, so a key with thousands of them (a
        placeholder such as ``N/A`` in the key column) costs the square of that. ``grouped`` gathers each key's
        rows first (a fifth more for ordinary keys; PostgreSQL always does)."""
        columns = f"job, {keys}, {', '.join(sets)}, run_id"
        merged = ", ".join(
            f"{name} = CASE WHEN {table}.run_id <> excluded.run_id THEN excluded.{name} "
            f"WHEN coalesce(excluded.{name}, '') = '' OR {self._contains(f'{table}.{name}', f'excluded.{name}')} "
            f"THEN {table}.{name} "
            f"WHEN coalesce({table}.{name}, '') = '' THEN excluded.{name} "
            f"ELSE {table}.{name} || ' ' || excluded.{name} END"
            for name in sets
        )
        if grouped or not self.MERGES_IN_ONE_STATEMENT:
            gathered = ", ".join(
                f"replace({self.FINGERPRINT_SET.format(f'NULLIF(v.{name}, {EMPTY})')}, ',', ' ')" for name in sets
            )
            # A row this run wrote before the fold (a reject it discarded) is merged with where SQLite can.
            replaced = (
                merged if self.MERGES_IN_ONE_STATEMENT else ", ".join(f"{name} = excluded.{name}" for name in sets)
            )
            return (
                f"INSERT INTO {table} ({columns}) SELECT ?, {keys}, {gathered}, ? FROM ({select}) v "
                f"GROUP BY {keys} ORDER BY {keys} ON CONFLICT (job, {keys}) DO UPDATE "
                f"SET {replaced}, run_id = excluded.run_id"
            )
        return (
            f"INSERT INTO {table} ({columns}) SELECT ?, {keys}, {', '.join(f'v.{name}' for name in sets)}, ? "
            f"FROM ({select}) v ORDER BY {keys} ON CONFLICT (job, {keys}) DO UPDATE SET {merged}, "
            "run_id = excluded.run_id"
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
            run_id = int(cursor.fetchone()[0])
            pending = "SELECT 1 FROM rejects WHERE job = ? AND status = 'pending' LIMIT 1"
            self._rejects_before[job] = self._exec(pending, (job,)).fetchone() is not None
            self._fold_dead_runs(job, run_id)
            # Rejects journaled by a run of the job that never ended (on this connection) are dropped.
            for dead in [run for run, (of_job, _) in self._reject_limits.items() if of_job == job]:
                del self._reject_limits[dead]
                self._clear_journal("reject_journal", dead)
            return run_id

    def finish_run(self, run_id: int, status: str, report: dict[str, Any]) -> None:
        with self._transaction():
            if self._fold_rejects(run_id):  # a run that did not settle still keeps its rejects
                self._clear_journal("reject_journal", run_id)
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
    # A run appends each committed batch to `journal` as one row (its pairs as a JSON object): an append at the
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
            for key, fingerprint, run_id in self._select_in(
                "SELECT key, fingerprint, run_id FROM deliveries WHERE job = ? AND sink = ? AND key IN ({marks})",
                (job, sink),
                keys,
            )
        }
        completed = self._select_in(
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
        self._count_versions(run_id, pairs)
        if sink == UNCHANGED:
            if pairs:
                with self._transaction():
                    # The rows are built in C: the run repeated beside each pair's key and fingerprint.
                    rows = zip(repeat(run_id), *zip(*pairs, strict=True), strict=False)
                    self._many("INSERT INTO unchanged (run_id, key, fingerprint) VALUES (?, ?, ?)", rows)
            return
        with self._transaction():
            if pairs:
                # A row per JOURNAL_ROW_PAIRS: a commit group's pairs in one text were a fresh mapping for malloc
                # to page in (and SQLite to copy) per commit.
                journaled = [
                    (run_id, sink, journal_text(pairs[start : start + JOURNAL_ROW_PAIRS]))
                    for start in range(0, len(pairs), JOURNAL_ROW_PAIRS)
                ]
                self._many("INSERT INTO journal (run_id, sink, pairs) VALUES (?, ?, ?)", journaled)
                self._journal_rows[run_id] = self._journal_rows.get(run_id, 0) + len(journaled)
            if checkpoint is not None:
                self._exec(
                    _upsert("checkpoints", ("job", "sink"), ("checkpoint", "run_id")),
                    (job, sink, json.dumps(checkpoint), run_id),
                )

    def _fold_completed(self, select: str, params: list[Any], many: set[str] | None) -> None:
        """Fold the rows of ``select`` into ``completed``: merged one by one, but the keys in ``many`` (keys with
        many versions; None: any key may have many) gathered first (see _upsert_versions)."""
        sets = ("fingerprint", "sinks")
        if many is None or not self.MERGES_IN_ONE_STATEMENT:
            self._exec(self._upsert_versions("completed", "key", sets, select, grouped=True), params)
            return
        if not many:
            self._exec(self._upsert_versions("completed", "key", sets, select), params)
            return
        self._many("INSERT INTO many_versions (key) VALUES (?)", [(key,) for key in many])
        for filtered, grouped in (("NOT IN", False), ("IN", True)):
            subset = f"SELECT * FROM ({select}) d WHERE d.key {filtered} (SELECT key FROM many_versions)"
            self._exec(self._upsert_versions("completed", "key", sets, subset, grouped), params)
        self._exec("DELETE FROM many_versions")

    def _count_versions(self, run_id: int, pairs: list[tuple[str, str]]) -> None:
        """Note the keys a run's commits journal many times (see MANY_VERSIONS): only keys repeated within a
        commit are counted, and a set of the commit's keys (a C loop) finds whether there are any. Past
        ``_MAX_REPEATED`` repeated keys the run is noted as a whole (every key's versions gathered).

        A large commit (a file sink's group of 10,000) is first looked at through a random sixteenth of its
        keys, and counted whole only when that sample repeats a key: hashing every key of every commit, long out
        of the CPU's cache by then, cost 5% of a first run's state. A key whose merging would cost the square of
        its versions (hundreds or thousands in a commit) repeats in any sample of it; one that samples miss has
        so few versions that merging them one by one costs nothing to speak of. The sample is drawn at random,
        not every sixteenth pair, so that a placeholder on every 16th row cannot slip between the draws."""
        if self._many_versions.get(run_id, set()) is None:
            return
        if len(pairs) > _COUNTED_WHOLE:
            drawn = random.sample(pairs, len(pairs) // _SAMPLED)
            if len(set(map(_KEY_OF_PAIR, drawn))) == len(drawn):
                return
        keys = list(map(_KEY_OF_PAIR, pairs))
        if len(set(keys)) == len(keys):
            return
        repeated = self._repeated.setdefault(run_id, Counter())
        repeated.update({key: count for key, count in Counter(keys).items() if count > 1})
        if len(repeated) > _MAX_REPEATED:
            self._many_versions[run_id] = None
            del self._repeated[run_id]
            return
        many = [key for key, count in repeated.items() if count >= MANY_VERSIONS]
        if many:
            self._many_versions[run_id] = set(many)

    def add_fingerprints(self, job: str, pairs: list[tuple[str, str]]) -> None:
        added = self._contains("fingerprint", "?")
        with self._transaction():
            self._many(
                f"UPDATE completed SET fingerprint = fingerprint || ' ' || ? WHERE job = ? AND key = ? AND NOT {added}",
                [(fingerprint, job, key, fingerprint) for key, fingerprint in pairs],
            )

    def sink_checkpoint(self, job: str, sink: str) -> Any:
        row = self._exec("SELECT checkpoint FROM checkpoints WHERE job = ? AND sink = ?", (job, sink)).fetchone()
        return json.loads(row[0]) if row else None

    def _fold(self, job: str, run_id: int, rejected_only: bool = False, grouped: bool = True) -> None:
        """Fold a run's journal into ``deliveries`` (``rejected_only``: the keys it also rejected, which its
        settling does not complete): per sink and key, the versions this run delivered replace what an earlier
        run delivered (two versions of a key in one run are both kept, space-separated)."""
        select = "SELECT sink, key, fingerprint FROM journal_pairs WHERE run_id = ?"
        params: tuple[Any, ...] = (job, run_id, run_id)
        if rejected_only:
            if not self._exec(_PENDING_REJECTS_OF_RUN + " LIMIT 1", (job, run_id)).fetchone():
                self._clear_journal("journal", run_id)
                return
            select += f" AND key IN ({_PENDING_REJECTS_OF_RUN})"
            params = (*params, job, run_id)
        self._exec(self._upsert_versions("deliveries", "sink, key", ("fingerprint",), select, grouped), params)
        self._clear_journal("journal", run_id)

    def _clear_journal(self, table: str, run_id: int) -> None:
        """Delete a folded run's rows of a journal (``journal``, ``reject_journal``)."""
        self._exec(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

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
            # Read before the rejects' fold, which may complete discarded ones: none of those is pending.
            had_completed = self._exec("SELECT 1 FROM completed WHERE job = ? LIMIT 1", (job,)).fetchone()
            rejected = self._fold_rejects(run_id)
            select = "SELECT key, fingerprint, sink AS sinks FROM journal_pairs WHERE run_id = ?"
            params: list[Any] = [job, run_id, run_id]
            if self._exec("SELECT 1 FROM unchanged WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                # A key delivered now keeps the versions of it this run met unchanged (and skipped) completed too.
                select += (
                    " UNION ALL SELECT key, fingerprint, '' FROM unchanged WHERE run_id = ? "
                    "AND key IN (SELECT key FROM journal_pairs WHERE run_id = ?)"
                )
                params += [run_id, run_id]
            # Keys this run delivered and also rejected (still pending) are not completed by it: they stay as
            # earlier runs left them, their deliveries kept in `deliveries`. Usually there are none, even in a
            # messy file; when there are (a key twice in the input, one version bad), only those keys are put
            # back after the fold, from the rows they had before it, instead of folding everything again. A run
            # that rejected nothing has none to look for, nor does one of a job nothing was completed for.
            pending = f"key IN ({_PENDING_REJECTS_OF_RUN})"
            kept_prior = rejected and had_completed
            if kept_prior:
                self._exec(
                    f"INSERT INTO prior_completed SELECT job, key, fingerprint, run_id, sinks FROM completed "
                    f"WHERE job = ? AND {pending}",
                    (job, job, run_id),
                )
            many = self._many_versions.pop(run_id, set())
            self._repeated.pop(run_id, None)
            self._fold_completed(select, params, many)
            mine = f"FROM completed WHERE job = ? AND run_id = ? AND {pending}"
            both = rejected and self._exec(f"SELECT 1 {mine} LIMIT 1", (job, run_id, job, run_id)).fetchone()
            if both:
                self._exec(f"DELETE {mine}", (job, run_id, job, run_id))
                self._exec(
                    "INSERT INTO completed (job, key, fingerprint, run_id, sinks) "
                    "SELECT p.job, p.key, p.fingerprint, p.run_id, p.sinks FROM prior_completed p "
                    "WHERE NOT EXISTS (SELECT 1 FROM completed c WHERE c.job = p.job AND c.key = p.key)"
                )
            if kept_prior:
                self._exec("DELETE FROM prior_completed")
            self._exec("DELETE FROM unchanged WHERE run_id = ?", (run_id,))
            self._clear_journal("reject_journal", run_id)
            # Records rejected by earlier runs and delivered by this one are settled (a key this run rejected
            # is not completed by it: see `both`). Looked for only when there are any: a first run of a messy
            # file has many rejects, all its own.
            if self._rejects_before.pop(job, True):
                earlier = "FROM rejects WHERE job = ? AND status = 'pending' AND run_id < ?"
                self._exec(
                    f"DELETE {earlier} AND EXISTS (SELECT 1 FROM completed c "
                    "WHERE c.job = rejects.job AND c.key = rejects.key AND c.run_id = ?)",
                    (job, run_id, run_id),
                )
            # Deliveries of runs that died, now completed through the same sink: `completed` says it all.
            through = self._contains("c.sinks", "deliveries.sink")
            self._exec(
                "DELETE FROM deliveries WHERE job = ? AND EXISTS (SELECT 1 FROM completed c WHERE c.job = ? "
                f"AND c.key = deliveries.key AND c.run_id = ? AND {through})",
                (job, job, run_id),
            )
            if both:
                self._fold(job, run_id, rejected_only=True, grouped=many is None or bool(many))
            else:
                self._clear_journal("journal", run_id)

    # -- rejects -----------------------------------------------------------------------------------------
    # A run appends its rejects to `reject_journal`, a temporary table of its connection, and folds them into
    # `rejects` when it ends, in key order. Upserting each batch where its keys fell rewrote a page of the wide
    # `rejects` table per reject (and the WAL, and the checkpoint), and cost more than the stateless run spent on
    # the reject. What a run that dies had not folded dies with its connection: the next run reads the same
    # input and rejects the same records again (a run's attempt counts when the run ends).
    def record_rejects(
        self, job: str, run_id: int, rejects: list[Reject], max_attempts: int, transient: bool = False
    ) -> None:
        if not rejects:
            return
        self._reject_limits[run_id] = (job, max_attempts)
        keys, fingerprints, components, reasons, datas, sources, positions = zip(*rejects, strict=True)
        # The rows are built in C: the run and the flag repeated, numbered.
        rows = zip(
            repeat(run_id),
            repeat(int(transient)),
            keys,
            fingerprints,
            components,
            reasons,
            datas,
            sources,
            positions,
            self._reject_seq,
        )
        with self._transaction():
            self._many(
                "INSERT INTO reject_journal (run_id, transient, key, fingerprint, component, reason, data, source, "
                "position, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _fold_rejects(self, run_id: int) -> bool:
        """Fold the rejects this store journaled for a run into ``rejects``, in key order (see record_rejects);
        False when it journaled none (or folded them already).

        A key met again gets its new data; its attempts restart at 1 when the data changed, count once per
        run otherwise, and stay as they were for a record set aside (``transient``); a record that used its
        attempts up is discarded: completed through no sink."""
        if run_id not in self._reject_limits:
            return False
        job, max_attempts = self._reject_limits.pop(run_id)
        attempts = (
            "CASE WHEN rejects.fingerprint <> excluded.fingerprint THEN excluded.attempts "
            "WHEN excluded.attempts = 0 OR rejects.run_id = excluded.run_id THEN rejects.attempts "
            "ELSE rejects.attempts + 1 END"
        )
        replaced = ", ".join(
            f"{column} = excluded.{column}" for column in _REJECT_COLUMNS if column not in ("attempts", "status")
        )
        fold = (
            f"INSERT INTO rejects (job, key, {', '.join(_REJECT_COLUMNS)}) "
            "SELECT ?, key, fingerprint, component, reason, 1 - transient, "
            "CASE WHEN transient = 0 AND ? <= 1 THEN 'discarded' ELSE 'pending' END, data, source, position, run_id, ? "
            "FROM reject_journal WHERE run_id = ?{} "
            f"ON CONFLICT (job, key) DO UPDATE SET attempts = {attempts}, "
            f"status = CASE WHEN excluded.attempts = 0 OR {attempts} < ? THEN 'pending' ELSE 'discarded' END, "
            f"{replaced}"
        )
        head = (job, max_attempts, _now(), run_id)
        if self.MERGES_IN_ONE_STATEMENT:  # a key rejected twice is upserted twice, in the order it was rejected
            self._exec(fold.format(" ORDER BY key, seq"), (*head, max_attempts))
        else:  # one statement per time a key was rejected in the run: its first rejects, then its second ones...
            nth = (
                " AND seq IN (SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY key ORDER BY seq) AS n "
                "FROM reject_journal WHERE run_id = ?) numbered WHERE n = ?)"
            )
            n = 1
            while self._exec(fold.format(nth), (*head, run_id, n, max_attempts)).rowcount > 0:
                n += 1
        # Attempts are used up only by a record rejected before with the same data: a job that had no pending
        # reject when the run started discards nothing, unless one attempt is all a record gets.
        if max_attempts <= 1 or self._rejects_before.get(job, True):
            self._exec(
                "INSERT INTO completed (job, key, fingerprint, run_id) SELECT job, key, fingerprint, run_id "
                "FROM rejects WHERE job = ? AND run_id = ? AND status = 'discarded' "
                "AND key IN (SELECT key FROM reject_journal WHERE run_id = ?)" + _ON_COMPLETED,
                (job, run_id, run_id),
            )
        return True

    def rejects(self, job: str, status: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT key, fingerprint, component, reason, attempts, status, data, source, position, updated_at "
            "FROM rejects WHERE job = ?" + (" AND status = ?" if status else "") + " ORDER BY updated_at, "
            # In input order (keys are often content hashes): NULLs first, as SQLite sorts them and PostgreSQL not.
            "coalesce(source, ''), coalesce(position, -1), key"
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
    def _rejects_before(self) -> dict[str, bool]:
        """Per job: whether it had pending rejects when this store started its run (then settling the run looks
        for those it delivered)."""
        return {}

    @functools.cached_property
    def _journal_rows(self) -> dict[int, int]:
        """Rows this store appended to ``journal``, per run (the run's own rows are never deleted by anyone else)."""
        return {}

    @functools.cached_property
    def _many_versions(self) -> dict[int, set[str] | None]:
        """Per run: the keys whose versions its folds gather first, or None for every key (_count_versions)."""
        return {}

    @functools.cached_property
    def _repeated(self) -> dict[int, Counter[str]]:
        """Per run: how often it journaled each key repeated within one of its commits."""
        return {}

    @functools.cached_property
    def _reject_seq(self) -> Iterator[int]:
        """Numbers the rejects this store journals, in the order they come."""
        return itertools.count()

    @functools.cached_property
    def _reject_limits(self) -> dict[int, tuple[str, int]]:
        """Per run whose rejects this store journaled and has not folded yet: its job and ``max_attempts``."""
        return {}

    @functools.cached_property
    def _namespace_ids(self) -> dict[str, int]:
        """Cache namespaces' numbers this store has looked up (namespaces are never deleted: they stay valid)."""
        return {}

    def _namespace_id(self, namespace: str, create: bool) -> int | None:
        """The number standing for a cache namespace in its entries (``create``: inside a write transaction)."""
        known = self._namespace_ids.get(namespace)
        if known is not None:
            return known
        select = "SELECT namespace_id FROM cache_namespaces WHERE namespace = ?"
        row = self._exec(select, (namespace,)).fetchone()
        if row is not None:
            self._namespace_ids[namespace] = int(row[0])
            return int(row[0])
        if not create:
            return None
        # Not remembered yet: the transaction creating it may still roll back. The next look-up finds it.
        self._exec(
            "INSERT INTO cache_namespaces (namespace) VALUES (?) ON CONFLICT (namespace) DO NOTHING", (namespace,)
        )
        return int(self._exec(select, (namespace,)).fetchone()[0])

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

    def _repack_journal(self, version: int) -> None:
        """Inside the schema upgrade from ``version``: the journal of runs that died before settling is
        ``old_journal`` now (schema 3: a row per pair; schema 4: a row per commit, its pairs in an array); pack
        it as this schema does, a row per run and sink."""
        if self._has_table("old_journal"):
            pairs = "old_journal" if version == 3 else f"({self.ARRAY_PAIRS.format(table='old_journal')})"
            self._exec(
                f"INSERT INTO journal (run_id, sink, pairs) SELECT run_id, sink, {self.PACKED_PAIRS} "
                f"FROM {pairs} o GROUP BY run_id, sink"
            )
            self._exec("DROP TABLE old_journal")

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
            "deliveries": self._delivery_counts(job),
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
            "SELECT sink, COUNT(*) FROM journal_pairs WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?) "
            "GROUP BY sink",
            (job,),
        )
        for sink, count in journaled:
            counts[sink] = counts.get(sink, 0) + int(count)
        return counts

    def _journaled_deliveries(self, job: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` of ``deliveries`` with the journals not folded yet applied, as folding them would."""
        by_key = {(row["sink"], row["key"]): row for row in rows}
        journal = self._exec(
            "SELECT run_id, sink, key, fingerprint FROM journal_pairs "
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
            "delivered": ("deliveries", "completed", "checkpoints", "intents"),
            "errors": ("rejects",),
        }
        with self._transaction():
            for part in parts:
                if part == "cache":
                    self._delete_cache()
                if part == "delivered":
                    self._delete_objects(job)
                    self._exec("DELETE FROM journal WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?)", (job,))
                for table in tables.get(part, ()):
                    self._exec(f"DELETE FROM {table} WHERE job = ?", (job,))

    def export(self, job: str) -> dict[str, Any]:
        data: dict[str, Any] = {"format": EXPORT_FORMAT, "job": job}
        for table in (*JOB_TABLES, "runs"):
            if table == "objects":
                data[table] = self._export_objects(job)
            else:
                data[table] = self._rows(f"SELECT * FROM {table} WHERE job = ?", (job,))
        data["deliveries"] = self._journaled_deliveries(job, data["deliveries"])
        data["cache"] = self._export_cache()
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

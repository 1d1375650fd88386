"""The ``sqlite`` sink: upserts records into a table by record key; a run's upserts reach the table at once."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from connector_core.components import Emitter, LocalFile, Sink
from connector_core.errors import RunFailed
from connector_core.json_encoding import encode_json
from connector_core.records import Record
from connector_core.sqlite_errors import disk_errno

if TYPE_CHECKING:
    from connector_core.context import RunContext

KEY_COLUMN = "_key"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{attribute.name} must be a plain identifier (letters, digits, _), got {value!r}")


@attrs.frozen
class SqliteSinkOptions:
    """Options of the ``sqlite`` sink."""

    path: Path
    """The database file; created (with its folders) when missing."""
    table: str = attrs.field(validator=_identifier)
    """The table to upsert into; created when missing, with ``_key TEXT PRIMARY KEY`` and one column per field."""


def quote(name: str) -> str:
    """An SQL identifier for any field name (record fields are not restricted to identifiers)."""
    return '"' + name.replace('"', '""') + '"'


#: The integers SQLite stores as integers (64-bit); a larger one is stored as its digits, exactly.
_SMALLEST, _LARGEST = -(2**63), 2**63 - 1
#: What a record's own values can make SQLite refuse (a text or blob over SQLite's size limit, a value no
#: adapter binds): its record is rejected, the batch's others written.
_VALUE_ERRORS = (OverflowError, ValueError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


def _undo(db: sqlite3.Connection) -> None:
    """Roll back to, and end, the savepoint :meth:`SqliteSink._write_rows` set."""
    db.execute("ROLLBACK TO crmsync_rows")
    db.execute("RELEASE crmsync_rows")


def sql_value(value: Any) -> Any:
    """A value SQLite can store: nested data as JSON text, an integer beyond 64 bits as its digits (text), other
    unknown types as their string form."""
    if value is None or isinstance(value, str | float | bytes):
        return value
    if isinstance(value, int):
        return value if _SMALLEST <= value <= _LARGEST else str(value)
    if isinstance(value, dict | list | tuple):
        return encode_json(value)
    return str(value)


class _Table:
    """A table's columns as the sink knows them (SQLite column names are case-insensitive)."""

    def __init__(self, db: sqlite3.Connection, name: str) -> None:
        self.db = db
        self.name = name
        self._read()

    def _read(self) -> None:
        info = self.db.execute(f"PRAGMA table_info({quote(self.name)})").fetchall()
        #: Existing columns by lowercase name.
        self.columns: dict[str, str] = {row[1].lower(): row[1] for row in info}
        #: Whether ``_key`` is the primary key (only asked of a target table).
        self.keyed = any(row[1] == KEY_COLUMN and row[5] == 1 for row in info)

    @property
    def exists(self) -> bool:
        return bool(self.columns)

    def create(self, columns: str) -> None:
        self.db.execute(f"CREATE TABLE {quote(self.name)} ({columns})")
        self._read()

    def add_columns(self, fields: tuple[str, ...]) -> list[str]:
        """Add the columns ``fields`` lack (no declared types: SQLite stores each value as given); returns the
        quoted column names of ``fields``."""
        for field in fields:
            if field.lower() not in self.columns:
                self.db.execute(f"ALTER TABLE {quote(self.name)} ADD COLUMN {quote(field)}")
                self.columns[field.lower()] = field
        return [quote(self.columns[field.lower()]) for field in fields]

    def count(self) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {quote(self.name)}").fetchone()[0]) if self.exists else 0


class SqliteSink(Sink[SqliteSinkOptions]):
    """Upserts each record into ``table`` under its record key: a record seen again updates its row.

    The table gains a column for every new field (``ALTER TABLE ... ADD COLUMN``); fields a record lacks keep
    their stored values. A run's upserts reach the table in one transaction, when the run succeeds: a crash or
    a failed run leaves the database exactly as the previous run left it, like the file sinks. Without state
    the whole run is that transaction. With state each batch must be durable before its delivery is recorded,
    so batches are committed to a *stage* beside the database (the hidden ``.<file>.<table>.stage``, an append
    log in write order); a successful run applies the stage to the table in one transaction and deletes it, a
    failed or killed run keeps it for the next run, which adds its own batches and applies them all (applying
    a stage twice changes nothing). A stage left by a state that was since reset (no checkpoint) is deleted:
    its records will be delivered again.

    A record with a blank key is rejected: it would overwrite every other record without one. The run report
    says how many rows were inserted and how many updated (a key seen before, in this run or an earlier one),
    so its count of delivered records can be checked against the table: all 0 when the run failed, and the
    staged batches of a killed run included when a run applies them.
    """

    Options: ClassVar[type] = SqliteSinkOptions
    # Its COMMIT (the WAL's last frames) can meet a full disk after prepare() applied the run's rows.
    commit_may_fail: ClassVar[bool] = True

    @classmethod
    def output_file(cls, options: SqliteSinkOptions) -> LocalFile:
        # The whole database, not its table: a sink holds the database's write lock for its run (or its stage's
        # apply), so a second sink on it, whatever its table, could not write.
        return LocalFile("path", options.path.resolve())

    def __init__(self, name: str, options: SqliteSinkOptions, context: RunContext | None) -> None:
        # A None context is fine for a stateless sink (tests drive it without an engine); checkpoints use it.
        super().__init__(name, options, context)  # type: ignore[arg-type]
        self.options: SqliteSinkOptions = options
        self._db: sqlite3.Connection | None = None
        #: The first disk error of the run, see :meth:`_disk_errors`.
        self._broken: OSError | None = None
        self._target: _Table | None = None
        #: Where batches go first when the job keeps state (None: straight into the target).
        self._stage: _Table | None = None
        self._stage_path = options.path.with_name(f".{options.path.name}.{options.table}.stage")
        #: The upsert (or, into the stage, insert) statement for each set of fields seen so far.
        self._statements: dict[tuple[str, ...], str] = {}
        #: Records written this run, and the table's row count at open.
        self.written = 0
        self._rows_at_open = 0
        #: What the run's transaction upserts and how many of those rows are new; reported once it commits.
        self._upserted = self._inserted = 0
        self._committed = False
        #: Whether :meth:`prepare` applied the run's rows, leaving close(True) only the COMMIT.
        self._prepared = False

    def open(self) -> None:
        path = self.options.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None hands transaction control to us: the module would otherwise commit on DDL.
        self._db = db = sqlite3.connect(path, isolation_level=None)
        with self._disk_errors():  # a WAL needs room for its files before anything is written
            db.execute("PRAGMA journal_mode=WAL")
            # IMMEDIATE takes the write lock now, so a concurrent writer fails at open rather than mid-run.
            db.execute("BEGIN IMMEDIATE")
        self._target = target = _Table(db, self.options.table)
        if target.exists and not target.keyed:
            raise RunFailed(
                f"{self.name}: table {self.options.table} in {path} exists without a {KEY_COLUMN} primary key"
            )
        self._rows_at_open = target.count()
        state = self.context.state if self.context is not None else None
        if state is not None:
            if state.sink_checkpoint(self.name) is None:
                self._delete_stage()
            stage_db = sqlite3.connect(self._stage_path, isolation_level=None)
            self._stage = _Table(stage_db, "stage")
            with self._disk_errors():
                # Only this sink uses the stage. A rollback journal (not WAL) keeps its footprint at the batch
                # it commits: a full disk is where a stage matters most.
                stage_db.execute("PRAGMA locking_mode=EXCLUSIVE")
                stage_db.execute("BEGIN IMMEDIATE")
        if self.context is not None:
            self.context.add_report_section(f"sink {self.name}", self._report)

    def process(self, batch: list[Record], out: Emitter) -> None:
        with self._disk_errors():
            self.write(batch, out)

    @contextlib.contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """A full disk or an I/O error becomes the OSError it is (the run then stops new API work and sets the
        batch aside); after one the database refuses every later batch: SQLite may have rolled back."""
        if self._broken is not None:
            raise OSError(self._broken.errno, f"{self.options.path} failed earlier in this run: {self._broken}")
        try:
            yield
        except sqlite3.OperationalError as exc:
            number = disk_errno(exc)
            if number is None:
                raise
            self._broken = OSError(number, f"{self.options.path}: {exc}")
            raise self._broken from exc

    def write(self, batch: list[Record], out: Emitter) -> None:
        db = self._db
        assert db is not None, "open() runs before write()"
        # Records with the same fields share one statement, so a uniform batch is one executemany call.
        groups: dict[str, tuple[list[Record], list[tuple[Any, ...]]]] = {}
        for record in batch:
            if not record.key or record.key.isspace():
                out.fail(record, f"blank key: {self.name} upserts by record key and would overwrite another row")
                continue
            fields = tuple(record.data)
            statement = self._statements.get(fields)
            if statement is None:
                statement, problem = self._statement_for(fields)
                if statement is None:
                    out.fail(record, problem)
                    continue
            values = (record.key, *map(sql_value, record.data.values()))
            if self._stage is not None:
                values = (encode_json(fields), *values)
            group = groups.setdefault(statement, ([], []))
            group[0].append(record)
            group[1].append(values)
        into = db if self._stage is None else self._stage.db
        for statement, (records, rows) in groups.items():
            self.written += self._write_rows(into, statement, records, rows, out)

    def _write_rows(
        self, into: sqlite3.Connection, statement: str, records: list[Record], rows: list[Any], out: Emitter
    ) -> int:
        """Write the rows of one statement, in one call; when a record's own value makes SQLite refuse it, the
        call is undone and the rows are written one by one, that record rejected with the reason. How many rows
        were written."""
        into.execute("SAVEPOINT crmsync_rows")
        try:
            into.executemany(statement, rows)
        except _VALUE_ERRORS:
            # executemany keeps the rows before the refused one: undone, or they would be written and rejected.
            _undo(into)
        except BaseException:
            # The batch fails whole (a full disk): none of its rows may stay behind for the run's commit. SQLite
            # may have rolled the transaction back already; the error that did it is the one to report.
            with contextlib.suppress(sqlite3.Error):
                _undo(into)
            raise
        else:
            into.execute("RELEASE crmsync_rows")
            return len(rows)
        written = 0
        for record, row in zip(records, rows, strict=True):
            try:
                into.execute(statement, row)  # one statement: all of the row, or nothing of it
            except _VALUE_ERRORS as exc:
                out.fail(record, f"{self.name}: SQLite cannot store this record: {type(exc).__name__}: {exc}")
            else:
                written += 1
        return written

    def _report(self) -> dict[str, int]:
        # What the table got: nothing when the run's transaction did not commit.
        upserted, inserted = (self._upserted, self._inserted) if self._committed else (0, 0)
        return {"upserted": upserted, "inserted": inserted, "updated": upserted - inserted}

    def _statement_for(self, fields: tuple[str, ...]) -> tuple[str | None, str]:
        """The statement for records with ``fields`` (kept for the next ones), or None and why SQLite cannot
        store them."""
        problem = self._clash(fields)
        if problem is not None:
            return None, problem
        try:
            statement = self._statements[fields] = self._prepare(fields)
        except sqlite3.Error as exc:  # more columns than SQLite allows in a table
            if disk_errno(exc) is not None:
                raise
            return None, f"{self.name}: SQLite cannot add this record's fields as columns: {exc}"
        return statement, ""

    @staticmethod
    def _clash(fields: tuple[str, ...]) -> str | None:
        if any("\x00" in field for field in fields):
            return "a field name holds a NUL character, which no SQLite column name can hold"
        lowered = [field.lower() for field in fields]
        if KEY_COLUMN in lowered or len(set(lowered)) < len(lowered):
            names = ", ".join(map(repr, fields))
            return f"fields {names} clash with {KEY_COLUMN!r} or with each other (SQLite column names ignore case)"
        return None

    def _prepare(self, fields: tuple[str, ...]) -> str:
        """The statement writing records with ``fields``: an upsert into the target, or an insert into the stage
        (which also keeps the field names, so applying it updates only the fields each record had)."""
        if self._stage is None:
            return self._upsert(fields)
        if not self._stage.exists:
            self._stage.create(f"_seq INTEGER PRIMARY KEY, _fields TEXT NOT NULL, {KEY_COLUMN} TEXT NOT NULL")
        names = ["_fields", KEY_COLUMN, *self._stage.add_columns(fields)]
        return f"INSERT INTO {quote(self._stage.name)} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"

    def _upsert(self, fields: tuple[str, ...]) -> str:
        target = self._target
        assert target is not None
        if not target.exists:
            target.create(f"{KEY_COLUMN} TEXT PRIMARY KEY")
        names = target.add_columns(fields)
        insert = f"INSERT INTO {quote(target.name)} ({', '.join([KEY_COLUMN, *names])}) "
        insert += f"VALUES ({', '.join('?' * (len(names) + 1))}) ON CONFLICT({KEY_COLUMN}) "
        if not names:
            return insert + "DO NOTHING"
        return insert + "DO UPDATE SET " + ", ".join(f"{name} = excluded.{name}" for name in names)

    def _apply_stage(self) -> int:
        """Upsert the stage's records into the target in write order (in the caller's transaction); how many."""
        db, stage = self._db, self._stage
        assert db is not None and stage is not None
        if not stage.exists:
            return 0
        applied = 0
        upserts: dict[str, str] = {}
        rows = stage.db.execute(f"SELECT * FROM {quote(stage.name)} ORDER BY _seq")
        position = {description[0].lower(): index for index, description in enumerate(rows.description)}
        while chunk := rows.fetchmany(5000):
            # Consecutive records with the same fields share one statement (order matters for a repeated key).
            statement, values = "", list[tuple[Any, ...]]()
            for row in chunk:
                fields = json.loads(row[1])
                upsert = upserts.get(row[1]) or upserts.setdefault(row[1], self._upsert(tuple(fields)))
                if upsert != statement and values:
                    db.executemany(statement, values)
                    values = []
                statement = upsert
                values.append((row[2], *(row[position[field.lower()]] for field in fields)))
            db.executemany(statement, values)
            applied += len(chunk)
        return applied

    def _delete_stage(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            self._stage_path.with_name(self._stage_path.name + suffix).unlink(missing_ok=True)

    def checkpoint(self) -> Any:
        # Only called when the job keeps state: the batch must be durable before its delivery is recorded,
        # so the run-long transaction becomes one per batch (into the stage: the table waits for the run).
        if self._stage is None:
            return None
        with self._disk_errors():
            self._stage.db.execute("COMMIT")
            self._stage.db.execute("BEGIN IMMEDIATE")
        return {"table": self.options.table}

    def prepare(self) -> None:
        # Everything but the COMMIT, which is then all close(True) has left to do (and can still refuse).
        if self._prepared:
            return
        assert self._target is not None, "open() runs before prepare()"
        with self._disk_errors():
            # A stage can hold the batches of a run killed before it applied them, beside this run's.
            self._upserted = self.written if self._stage is None else self._apply_stage()
            self._inserted = self._target.count() - self._rows_at_open
        self._prepared = True

    def close(self, success: bool) -> None:
        if self._db is None:
            return
        stage = self._stage
        try:
            if success:
                self.prepare()
            with self._disk_errors():
                if self._db.in_transaction:
                    # A failed run leaves the table as the previous run left it (with state: the stage keeps
                    # the batches whose delivery was recorded, for the next run).
                    self._db.execute("COMMIT" if success else "ROLLBACK")
                self._committed = success
        finally:
            self._db.close()
            self._db = None
            if stage is not None:
                # Whatever was not checkpointed was never recorded as delivered: the next run redoes it.
                stage.db.rollback()
                stage.db.close()
                if self._committed:
                    self._delete_stage()

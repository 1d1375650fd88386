"""The ``sqlite`` sink: upserts records into a table by record key, in one transaction per run."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from connector_core.components import Emitter, Sink
from connector_core.errors import RunFailed
from connector_core.records import Record
from connector_core.state.sqlite import disk_errno

from .encoding import encode_json

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


def sql_value(value: Any) -> Any:
    """A value SQLite can store: nested data as JSON text, other unknown types as their string form."""
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    if isinstance(value, dict | list | tuple):
        return encode_json(value)
    return str(value)


class SqliteSink(Sink[SqliteSinkOptions]):
    """Upserts each record into ``table`` under its record key: a record seen again updates its row.

    The table gains a column for every new field (``ALTER TABLE ... ADD COLUMN``); fields a record lacks keep
    their stored values. The whole run is one transaction, begun at open and committed at close, so a crash
    leaves the database exactly as the previous run left it, and so does a failed run, like the file sinks.
    When the job keeps state, each batch is committed on its own, together with its delivery record.

    A record with a blank key is rejected: it would overwrite every other record without one. The run report
    says how many rows were inserted and how many updated (a key seen before, in this run or an earlier one),
    so its count of delivered records can be checked against the table.
    """

    Options: ClassVar[type] = SqliteSinkOptions

    def __init__(self, name: str, options: SqliteSinkOptions, context: RunContext | None) -> None:
        # A None context is fine for a stateless sink (tests drive it without an engine); checkpoints use it.
        super().__init__(name, options, context)  # type: ignore[arg-type]
        self.options: SqliteSinkOptions = options
        self._db: sqlite3.Connection | None = None
        #: The first disk error of the run, see :meth:`_disk_errors`.
        self._broken: OSError | None = None
        #: Existing columns by lowercase name: SQLite column names are case-insensitive.
        self._columns: dict[str, str] = {}
        #: The upsert statement for each set of fields seen so far.
        self._statements: dict[tuple[str, ...], str] = {}
        #: Records upserted this run, and the table's row count at open.
        self.written = 0
        self._rows_at_open = self._inserted = 0

    def open(self) -> None:
        path = self.options.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None hands transaction control to us: the module would otherwise commit on DDL.
        self._db = db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # IMMEDIATE takes the write lock now, so a concurrent writer fails at open rather than mid-run.
        db.execute("BEGIN IMMEDIATE")
        info = db.execute(f"PRAGMA table_info({quote(self.options.table)})").fetchall()
        self._columns = {row[1].lower(): row[1] for row in info}
        if info and not any(row[1] == KEY_COLUMN and row[5] == 1 for row in info):
            raise RunFailed(
                f"{self.name}: table {self.options.table} in {path} exists without a {KEY_COLUMN} primary key"
            )
        self._rows_at_open = self._count() if info else 0
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
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for record in batch:
            if not record.key or record.key.isspace():
                out.fail(record, f"blank key: {self.name} upserts by record key and would overwrite another row")
                continue
            fields = tuple(record.data)
            statement = self._statements.get(fields)
            if statement is None:
                clash = self._clash(fields)
                if clash:
                    out.fail(record, clash)
                    continue
                statement = self._statements[fields] = self._prepare(fields)
            groups.setdefault(statement, []).append((record.key, *map(sql_value, record.data.values())))
        for statement, rows in groups.items():
            db.executemany(statement, rows)
            self.written += len(rows)

    def _count(self) -> int:
        assert self._db is not None
        return int(self._db.execute(f"SELECT COUNT(*) FROM {quote(self.options.table)}").fetchone()[0])

    def _report(self) -> dict[str, int]:
        return {"upserted": self.written, "inserted": self._inserted, "updated": self.written - self._inserted}

    @staticmethod
    def _clash(fields: tuple[str, ...]) -> str | None:
        lowered = [field.lower() for field in fields]
        if KEY_COLUMN in lowered or len(set(lowered)) < len(lowered):
            names = ", ".join(map(repr, fields))
            return f"fields {names} clash with {KEY_COLUMN!r} or with each other (SQLite column names ignore case)"
        return None

    def _prepare(self, fields: tuple[str, ...]) -> str:
        self._add_columns(fields)
        names = [quote(self._columns[field.lower()]) for field in fields]
        insert = f"INSERT INTO {quote(self.options.table)} ({', '.join([KEY_COLUMN, *names])}) "
        insert += f"VALUES ({', '.join('?' * (len(names) + 1))}) ON CONFLICT({KEY_COLUMN}) "
        if not names:
            return insert + "DO NOTHING"
        return insert + "DO UPDATE SET " + ", ".join(f"{name} = excluded.{name}" for name in names)

    def _add_columns(self, fields: tuple[str, ...]) -> None:
        db = self._db
        assert db is not None
        table = quote(self.options.table)
        new = [field for field in fields if field.lower() not in self._columns]
        if not self._columns:
            # No declared types: SQLite then stores each value as given (integers stay integers).
            columns = ", ".join([f"{KEY_COLUMN} TEXT PRIMARY KEY", *map(quote, new)])
            db.execute(f"CREATE TABLE {table} ({columns})")
            self._columns[KEY_COLUMN] = KEY_COLUMN
        else:
            for field in new:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {quote(field)}")
        self._columns.update((field.lower(), field) for field in new)

    def checkpoint(self) -> Any:
        # Only called when the job keeps state: the batch must be durable before its delivery is recorded,
        # so the run-long transaction becomes one per batch (upserts make a replayed batch harmless).
        if self._db is None or self.context is None or self.context.state is None:
            return None
        with self._disk_errors():
            self._db.execute("COMMIT")
            self._db.execute("BEGIN IMMEDIATE")
        return {"table": self.options.table}

    def close(self, success: bool) -> None:
        if self._db is None:
            return
        try:
            self._inserted = (self._count() if self._columns else 0) - self._rows_at_open
            if self._db.in_transaction:
                # A failed run leaves the table as the previous run left it (with state: as its last batch).
                with self._disk_errors():
                    self._db.execute("COMMIT" if success else "ROLLBACK")
        finally:
            self._db.close()
            self._db = None

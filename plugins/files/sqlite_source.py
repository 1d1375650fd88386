"""The ``sqlite`` source: the rows of a query against an existing SQLite database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from connector_core.components import Source
from connector_core.errors import RunFailed
from connector_core.keys import missing_key_columns
from connector_core.records import Record

from .base import require_file

if TYPE_CHECKING:
    from connector_core.context import RunContext


def _check_params(_: Any, __: attrs.Attribute[Any], value: Any) -> None:
    # Typed Any because the spec converter has no hook for `dict | list`; checked here instead.
    if value is not None and not isinstance(value, dict | list):
        raise TypeError(f"params must be a mapping (for :name placeholders) or a list (for ?), got {value!r}")


@attrs.frozen
class SqliteSourceOptions:
    """Options of the ``sqlite`` source."""

    path: Path
    """The database file. It must exist: the source opens it read-only and never creates one."""
    query: str
    """The SQL query; each result row becomes a record keyed by column name."""
    params: Any = attrs.field(default=None, validator=_check_params)
    """Query parameters: a mapping for ``:name`` placeholders or a list for ``?`` placeholders."""


class SqliteSource(Source[SqliteSourceOptions]):
    """Runs one query and yields its rows as records; position is the 1-based row number."""

    Options: ClassVar[type] = SqliteSourceOptions

    @classmethod
    def key_problem(cls, options: SqliteSourceOptions, key: tuple[str, ...]) -> str | None:
        if not options.path.is_file():
            return None  # the run says the file is missing
        try:
            db = sqlite3.connect(f"{options.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                # LIMIT 0 names the result columns without running the query to its first row.
                query = f"SELECT * FROM ({options.query.strip().rstrip(';')}) LIMIT 0"
                columns = [column[0] for column in db.execute(query, options.params or ()).description or ()]
            finally:
                db.close()
        except sqlite3.Error:
            return None  # not a plain SELECT, or a bad query: the run reports the query's own error
        return missing_key_columns(key, columns, f"the columns of the query on {options.path.name}")

    def __init__(self, name: str, options: SqliteSourceOptions, context: RunContext, key: tuple[str, ...] = ()) -> None:
        super().__init__(name, options, context, key)
        self._db: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None

    def open(self) -> None:
        options: SqliteSourceOptions = self.options
        require_file(options.path, self.name)
        # mode=ro: a typo in the path must not leave an empty database behind, nor may the query write.
        uri = f"{options.path.resolve().as_uri()}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True)
        try:
            # Executed here, not in read(), so a bad query fails the run before any sink has started writing.
            self._cursor = self._db.execute(options.query, options.params or ())
        except sqlite3.Error as exc:
            raise RunFailed(f"{self.name}: query failed on {options.path}: {exc}") from None

    def read(self) -> Iterator[Record]:
        cursor, row = self._cursor, self.row
        assert cursor is not None, "open() runs before read()"
        columns = [column[0] for column in cursor.description or ()]
        for number, values in enumerate(cursor, 1):
            yield row(dict(zip(columns, values, strict=True)), number)

    def close(self, success: bool) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

"""The ``csv`` sink: a CSV file with a header row, written atomically per run."""

from __future__ import annotations

import csv
from typing import Any, ClassVar, Literal

import attrs

from connector_core.components import Emitter
from connector_core.json_encoding import encode_json
from connector_core.records import Record

from .base import METADATA_FIELDS, FileSink, FileSinkOptions, log, with_metadata


def _one_char(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if len(value) != 1:
        raise ValueError(f"{attribute.name} must be a single character, got {value!r}")


@attrs.frozen
class CsvSinkOptions(FileSinkOptions):
    """Options of the ``csv`` sink."""

    columns: list[str] | None = None
    """Columns in order; unset means the header of the file earlier runs wrote, else the fields of the first
    record, in its order (fields other records have beyond them are left out, with a warning)."""
    extra: Literal["ignore", "error"] = "ignore"
    """What to do with fields not among the columns: leave them out, or send the record to the error stream."""
    delimiter: str = attrs.field(default=",", validator=_one_char)
    """Field separator."""
    encoding: str = "utf-8"
    """Text encoding; ``utf-8-sig`` adds the byte-order mark Excel needs to recognise UTF-8."""


def cell(value: Any) -> Any:
    """A CSV cell for ``value``: nested data as JSON, null as an empty cell, booleans as true/false."""
    if value.__class__ is str:  # the common case, checked first
        return value
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return encode_json(value)
    return value


class CsvSink(FileSink[CsvSinkOptions]):
    """Writes records as CSV rows under a header row.

    Without ``columns`` the header is taken from the first record (a run adding to a file earlier runs wrote keeps
    that file's header); a field other records have beyond it is left out, with a warning. A run without records
    then writes an empty file. With ``metadata: true`` the columns ``_key``, ``_source`` and ``_position`` are
    appended.
    """

    Options: ClassVar[type] = CsvSinkOptions

    def output_encoding(self) -> str:
        return self.options.encoding

    def open(self) -> None:
        super().open()
        options: CsvSinkOptions = self.options
        self._writer = csv.writer(self.handle, delimiter=options.delimiter)
        self._columns: list[str] | None = None
        self._allowed: frozenset[str] = frozenset()
        #: Where columns not given by the spec came from (for the warning about fields left out), and the fields
        #: left out so far.
        self._columns_from = ""
        self._left_out: set[str] = set()
        if options.columns is not None:
            self._start(list(options.columns))
        elif self.appending:
            # The rows this run adds go under the header an earlier run wrote, whatever this run's records hold.
            self._columns_from = f"the header of {options.path}"
            header = self._header()
            self._start([name for name in header if not (options.metadata and name in METADATA_FIELDS)])

    def _header(self) -> list[str]:
        """The header row of the file earlier runs wrote."""
        with self.options.path.open(newline="", encoding=self.output_encoding()) as file:
            return next(csv.reader(file, delimiter=self.options.delimiter), [])

    def _start(self, columns: list[str]) -> None:
        self._allowed = frozenset(columns)
        if self.options.metadata:
            columns += [name for name in METADATA_FIELDS if name not in self._allowed]
        self._columns = columns
        if not self.appending:
            self._writer.writerow(columns)

    def write(self, batch: list[Record], out: Emitter) -> None:
        if self._columns is None:
            self._columns_from = f"{batch[0].provenance}, the first record"
            self._start(list(batch[0].data))
        columns = self._columns
        assert columns is not None
        check_extra = self.options.extra == "error"
        # Columns the spec did not list: a field they lack is said once (with explicit ones, leaving it out is
        # what `extra: ignore` asks for).
        check_left_out = not check_extra and bool(self._columns_from)
        metadata = self.options.metadata
        allowed = self._allowed
        rows = []
        for record in batch:
            data = record.data
            if (check_extra or check_left_out) and not allowed.issuperset(data):
                if check_extra:
                    unknown = ", ".join(repr(field) for field in data if field not in allowed)
                    out.fail(record, f"fields not among the csv columns: {unknown}")
                    continue
                self._leave_out(data)
            if metadata:
                data = with_metadata(record)
            rows.append([cell(data.get(column)) for column in columns])
        self._writer.writerows(rows)
        self.written += len(rows)

    def _leave_out(self, data: dict[str, Any]) -> None:
        new = [field for field in data if field not in self._allowed and field not in self._left_out]
        if new:
            self._left_out.update(new)
            log.warning(
                "%s: field(s) %s are not among the columns (taken from %s) and are left out; list every column "
                "under `columns` (a new column needs a new file)",
                *(self.name, ", ".join(map(repr, new)), self._columns_from),
            )

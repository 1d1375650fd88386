"""The ``csv`` sink: a CSV file with a header row, written atomically per run."""

from __future__ import annotations

import csv
from typing import Any, ClassVar, Literal

import attrs

from connector_core.components import Emitter
from connector_core.json_encoding import encode_json
from connector_core.records import Record

from .base import METADATA_FIELDS, FileSink, FileSinkOptions, with_metadata


def _one_char(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if len(value) != 1:
        raise ValueError(f"{attribute.name} must be a single character, got {value!r}")


@attrs.frozen
class CsvSinkOptions(FileSinkOptions):
    """Options of the ``csv`` sink."""

    columns: list[str] | None = None
    """Columns in order; unset means the fields of the first record, in its order."""
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

    Without ``columns`` the header is taken from the first record; a run without records then writes an empty
    file. With ``metadata: true`` the columns ``_key``, ``_source`` and ``_position`` are appended.
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
        if options.columns is not None:
            self._start(list(options.columns))

    def _start(self, columns: list[str]) -> None:
        self._allowed = frozenset(columns)
        if self.options.metadata:
            columns += [name for name in METADATA_FIELDS if name not in self._allowed]
        self._columns = columns
        if not self.appending:
            self._writer.writerow(columns)

    def write(self, batch: list[Record], out: Emitter) -> None:
        if self._columns is None:
            self._start(list(batch[0].data))
        columns = self._columns
        assert columns is not None
        check_extra = self.options.extra == "error"
        metadata = self.options.metadata
        allowed = self._allowed
        rows = []
        for record in batch:
            data = record.data
            if check_extra and not allowed.issuperset(data):
                unknown = ", ".join(repr(field) for field in data if field not in allowed)
                out.fail(record, f"fields not among the csv columns: {unknown}")
                continue
            if metadata:
                data = with_metadata(record)
            rows.append([cell(data.get(column)) for column in columns])
        self._writer.writerows(rows)
        self.written += len(rows)

"""The ``csv`` source: one record per row, keyed by column names from the header row."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from itertools import accumulate, chain
from operator import sub
from pathlib import Path
from typing import Any, ClassVar, TextIO

import attrs

from connector_core.components import Failed, LocalFile, Source
from connector_core.errors import RunFailed
from connector_core.keys import missing_key_columns
from connector_core.records import Record

from .base import require_file
from .csv_rows import Block, CsvRecords, Unreadable
from .text_input import decode_problem, input_encoding

log = logging.getLogger("crmsync.files")

#: How much of the file the delimiter sniffer looks at.
SNIFF_BYTES = 64 * 1024
#: Delimiters the sniffer may pick; left open it sometimes "finds" a letter that happens to repeat.
SNIFF_DELIMITERS = ",;\t|"
HEADER_STYLES = ("none", "lower", "snake")
#: Clean rows are made records this many at a time (at least: a block's rows are taken whole).
BUILT_AT_ONCE = 1000


def _header_style(value: Any) -> str:
    # The spec converter has no hook for `bool | str`, so the field takes Any and this normalises it.
    if value is True:
        return "snake"
    if value is False or value is None:
        return "none"
    if isinstance(value, str) and value in HEADER_STYLES:
        return value
    raise ValueError(f"normalize_headers must be true, false or one of {', '.join(HEADER_STYLES)}; got {value!r}")


def _one_char(_: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and len(value) != 1:
        raise ValueError(f"{attribute.name} must be a single character, got {value!r}")


#: How much of an over-long field the error stream keeps.
KEPT_CHARS = 1000


@attrs.frozen
class CsvSourceOptions:
    """Options of the ``csv`` source."""

    path: Path
    """The CSV file; relative paths resolve against the spec's folder."""
    encoding: str = "utf-8-sig"
    """Text encoding of files without a byte-order mark; a UTF-8, UTF-16 or UTF-32 mark decides by itself."""
    delimiter: str | None = attrs.field(default=None, validator=_one_char)
    """Field separator; unset means sniff it from the first 64 KB (``,`` ``;`` tab or ``|``), falling back to ``,``."""
    quotechar: str = attrs.field(default='"', validator=_one_char)
    """Character that quotes fields containing the delimiter, quotes or newlines."""
    normalize_headers: Any = attrs.field(default=False, converter=_header_style)
    """Column names are always stripped; ``lower`` lowercases them, ``snake`` (or ``true``) turns
    ``First Name`` and ``firstName`` into ``first_name``."""
    max_lines_per_record: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    """A quoted field still open after this many lines is taken for a stray quote: its first line goes to the
    error stream and the lines after it are read again as rows."""
    max_field_chars: int = attrs.field(default=1_000_000, validator=attrs.validators.ge(1))
    """A row with a longer field goes to the error stream (the rest of the file is read as usual)."""


class CsvSource(Source[CsvSourceOptions]):
    """Reads a CSV file with a header row.

    The record's position is the physical line its row starts on, so quoted fields spanning several lines do
    not shift the positions of later rows. Every row ends up as a record or in the error stream: rows with
    more or fewer fields than the header, whitespace-only lines, a stray quote (its line; the following
    lines are read again), a field over ``max_field_chars`` and NUL characters. Empty lines are skipped and
    counted in the run report.
    """

    Options: ClassVar[type] = CsvSourceOptions
    # Parsing a local file is CPU work between buffered reads: on a thread of its own it would trade the GIL
    # with the loop for every batch (18,600 futex calls on a 300k-row job; 130 on the loop).
    io_thread: ClassVar[bool] = False

    @classmethod
    def key_problem(cls, options: CsvSourceOptions, key: tuple[str, ...]) -> str | None:
        try:
            header = read_header(options)
        except (OSError, UnicodeError, RunFailed):
            return None  # the run reports an unreadable file with its own message
        if header is None:
            return None
        return missing_key_columns(key, header.columns, f"the header of {options.path.name} (line {header.line})")

    @classmethod
    def input_file(cls, options: CsvSourceOptions) -> LocalFile:
        return LocalFile("path", options.path.resolve())

    def open(self) -> None:
        require_file(self.options.path, self.name)

    def read(self) -> Iterator[Record | Failed]:
        options: CsvSourceOptions = self.options
        encoding = input_encoding(options.path, options.encoding)
        try:
            with open(options.path, encoding=encoding, newline="") as file:
                yield from self._rows(file, encoding)
        except UnicodeDecodeError:
            problem = decode_problem(options.path, encoding)
            raise RunFailed(f"{self.name}: {problem}; set the `encoding` option (e.g. cp1252)") from None

    def _rows(self, file: TextIO, encoding: str) -> Iterator[Record | Failed]:
        options: CsvSourceOptions = self.options
        delimiter = options.delimiter or sniff_delimiter(options.path, encoding)
        blocks: Iterator[Block] = iter(CsvRecords(file, delimiter, options.quotechar, options.max_lines_per_record))
        header, empty, rest = find_header(blocks, options, self.name)
        if header is None:
            self.count("empty_lines_skipped", empty)
            return
        if rest is not None:
            blocks = chain([rest], blocks)
        names, width = header.columns, len(header.columns)
        for warning in header.warnings:
            log.warning("%s: %s", self.name, warning)
        max_chars = options.max_field_chars
        # Good records are gathered across blocks and made records a thousand at a time; a bad one (ragged, an
        # over-long field, a NUL) is yielded on its own, after the good ones before it, so the order is kept.
        datas: list[dict[str, Any]] = []
        positions: list[int] = []
        for block in blocks:
            if block.__class__ is Unreadable:
                if datas:
                    yield from self.rows(datas, positions)
                    datas, positions = [], []
                yield self._unreadable(block)
                continue
            starts, rows, lines = block  # type: ignore[misc]
            # Each record's text is longer than any of its fields.
            clean = _longest_record(starts, lines) <= max_chars and "\x00" not in "".join(lines)
            if clean and all(len(fields) == width for fields in rows):
                # Lengths are equal here, and zip's strict= keyword costs measurably per row.
                datas += [dict(zip(names, fields)) for fields in rows]  # noqa: B905
                positions += starts
            else:
                for fields, at in zip(rows, starts):  # noqa: B905
                    if len(fields) == width:
                        data = dict(zip(names, fields))  # noqa: B905
                        bad = None if clean else self._field_problem(data, at)
                        if bad is None:
                            datas.append(data)
                            positions.append(at)
                            continue
                    elif not fields:
                        empty += 1
                        continue
                    else:
                        bad = self._ragged(names, fields, at)
                    if datas:
                        yield from self.rows(datas, positions)
                        datas, positions = [], []
                    yield bad
            if len(datas) >= BUILT_AT_ONCE:
                yield from self.rows(datas, positions)
                datas, positions = [], []
        if datas:
            yield from self.rows(datas, positions)
        self.count("empty_lines_skipped", empty)

    def _field_problem(self, data: dict[str, Any], start: int) -> Failed | None:
        """A row with an over-long field or a NUL character, failed; None for a good row (rare: the common case
        skips this)."""
        limit = self.options.max_field_chars
        for name, value in data.items():
            if len(value) > limit:
                kept = {field: text[:KEPT_CHARS] for field, text in data.items()}
                reason = f"line {start}: field {name!r} has {len(value):,} characters, over max_field_chars ({limit:,})"
                return Failed(self.record(kept, start), reason)
            if "\x00" in value:
                reason = f"line {start}: field {name!r} holds a NUL character (binary data in a text file?)"
                return Failed(self.record(data, start), reason)
        return None

    def _ragged(self, header: list[str], fields: list[str], start: int) -> Failed:
        width = len(header)
        data: dict[str, Any] = dict(zip(header, fields, strict=False))
        if len(fields) > width:
            data["_extra"] = fields[width:]
        if len(fields) == 1 and not fields[0].strip():
            return Failed(self.record(data, start), f"line {start}: blank line (only whitespace)")
        return Failed(self.record(data, start), f"line {start}: expected {width} fields, got {len(fields)}")

    def _unreadable(self, item: Unreadable) -> Failed:
        return Failed(self.record({"_line": item.text}, item.line), item.reason)


@attrs.frozen
class Header:
    """The header row: its line, the cleaned column names and what was renamed."""

    line: int
    columns: list[str]
    warnings: list[str]


def read_header(options: CsvSourceOptions) -> Header | None:
    """The header of the file ``options`` describe, or None when it has no row at all."""
    encoding = input_encoding(options.path, options.encoding)
    delimiter = options.delimiter or sniff_delimiter(options.path, encoding)
    with open(options.path, encoding=encoding, newline="") as file:
        records = CsvRecords(file, delimiter, options.quotechar, options.max_lines_per_record)
        return find_header(iter(records), options, str(options.path))[0]


def find_header(
    blocks: Iterator[Block], options: CsvSourceOptions, name: str
) -> tuple[Header | None, int, Block | None]:
    """Read ``blocks`` up to the header row (the first line with text): the header (None when there is no such
    line), the number of empty or whitespace-only lines before it, and the rest of the block it was in (None if
    nothing is left); ``blocks`` then goes on after that."""
    skipped = 0
    for block in blocks:
        if isinstance(block, Unreadable):
            raise RunFailed(f"{name}: {options.path}: the header row cannot be read: {block.reason}")
        starts, rows, lines = block
        for index, fields in enumerate(rows):
            if not any(field.strip() for field in fields) and len(fields) <= 1:
                skipped += 1  # empty and whitespace-only lines before the header
                continue
            start = starts[index]
            end = starts[index + 1] - starts[0] if index + 1 < len(rows) else len(lines)
            if any("\x00" in line for line in lines[start - starts[0] : end]):
                raise RunFailed(
                    f"{name}: {options.path}: line {start} holds NUL characters; if it is UTF-16 without a "
                    "byte-order mark, set `encoding: utf-16-le` (or utf-16-be)"
                )
            columns, warnings = normalize_header(fields, options.normalize_headers)
            if not any(field.strip() for field in fields):
                warnings.insert(
                    0, f"line {start}: the header row has no column names; using column_1..column_{len(fields)}"
                )
            header = Header(start, columns, [f"{options.path.name}: {warning}" for warning in warnings])
            rest = (starts[index + 1 :], rows[index + 1 :], lines[end:]) if index + 1 < len(rows) else None
            return header, skipped, rest
    return None, skipped, None


def _longest_record(starts: list[int], lines: list[str]) -> int:
    """The length of the longest record's text, for records starting on lines ``starts`` of ``lines``."""
    if len(starts) == len(lines):  # one line each
        return max(map(len, lines))
    ends = list(accumulate(map(len, lines), initial=0))
    bounds = [start - starts[0] for start in starts] + [len(lines)]
    lengths: Iterator[int] = map(sub, map(ends.__getitem__, bounds[1:]), map(ends.__getitem__, bounds[:-1]))
    return max(lengths)


def sniff_delimiter(path: Path, encoding: str) -> str:
    """Guess the delimiter from the start of the file; ``,`` when the sample is inconclusive."""
    with open(path, encoding=encoding, newline="", errors="replace") as file:
        sample = file.read(SNIFF_BYTES)
    if len(sample) == SNIFF_BYTES:
        # A row cut in half would skew the per-line counts the sniffer relies on.
        sample = sample[: sample.rfind("\n") + 1] or sample
    consistent = consistent_delimiter(sample)
    if consistent is not None:
        return consistent
    try:
        # The standard sniffer weighs quotes with regular expressions that take up to half a second on a sample
        # full of quoted fields: it only settles the samples the parse above leaves open.
        return csv.Sniffer().sniff(sample, delimiters=SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","


def consistent_delimiter(sample: str) -> str | None:
    """The one delimiter that parses ``sample`` into rows as wide as its first (at least two fields, and at least
    9 rows in 10 after the first), or None when none or several do."""
    fitting = []
    for delimiter in SNIFF_DELIMITERS:
        if delimiter not in sample:
            continue
        try:
            widths = [len(row) for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if len(widths) < 2 or widths[0] < 2:
            continue
        if widths.count(widths[0]) - 1 >= 0.9 * (len(widths) - 1):
            fitting.append(delimiter)
    return fitting[0] if len(fitting) == 1 else None


def normalize_header(names: list[str], style: str) -> tuple[list[str], list[str]]:
    """Clean column names: strip, apply ``style``, name blank columns ``column_N`` and number repeats ``x_2``.

    Returns the names and a line for each repeated name renamed (blank names are common and not reported).
    """
    result: list[str] = []
    renamed: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(names, 1):
        name = raw.strip()
        if style == "snake":
            name = snake_case(name)
        elif style == "lower":
            name = name.lower()
        name = name or f"column_{index}"
        # Duplicate names would silently overwrite each other in the record's dict.
        unique, counter = name, 1
        while unique in seen:
            counter += 1
            unique = f"{name}_{counter}"
        if unique != name:
            renamed.append(f"column {index} repeats the name {name!r}; it is read as {unique!r}")
        seen.add(unique)
        result.append(unique)
    return result, renamed


_ACRONYM_END = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_START = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[\W_]+")


def snake_case(name: str) -> str:
    """``First Name`` → ``first_name``, ``firstName`` → ``first_name``, ``HTTPStatus`` → ``http_status``."""
    name = _WORD_START.sub(r"\1_\2", _ACRONYM_END.sub(r"\1_\2", name))
    return _SEPARATORS.sub("_", name).strip("_").lower()

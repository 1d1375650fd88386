"""The ``csv`` source: one record per row, keyed by column names from the header row."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs

from connector_core.components import Failed, Source
from connector_core.errors import RunFailed
from connector_core.records import Record

from .base import require_file

#: How much of the file the delimiter sniffer looks at.
SNIFF_BYTES = 64 * 1024
#: Delimiters the sniffer may pick; left open it sometimes "finds" a letter that happens to repeat.
SNIFF_DELIMITERS = ",;\t|"
HEADER_STYLES = ("none", "lower", "snake")


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


@attrs.frozen
class CsvSourceOptions:
    """Options of the ``csv`` source."""

    path: Path
    """The CSV file; relative paths resolve against the spec's folder."""
    encoding: str = "utf-8-sig"
    """Text encoding; the default reads UTF-8 and drops the byte-order mark Excel writes."""
    delimiter: str | None = attrs.field(default=None, validator=_one_char)
    """Field separator; unset means sniff it from the first 64 KB (``,`` ``;`` tab or ``|``), falling back to ``,``."""
    quotechar: str = attrs.field(default='"', validator=_one_char)
    """Character that quotes fields containing the delimiter, quotes or newlines."""
    normalize_headers: Any = attrs.field(default=False, converter=_header_style)
    """Column names are always stripped; ``lower`` lowercases them, ``snake`` (or ``true``) turns
    ``First Name`` and ``firstName`` into ``first_name``."""


class CsvSource(Source):
    """Reads a CSV file with a header row.

    The record's position is the physical line its row starts on, so quoted fields spanning several lines do
    not shift the positions of later rows. Rows with more or fewer fields than the header go to the error
    stream; empty lines are skipped.
    """

    Options: ClassVar[type] = CsvSourceOptions

    def open(self) -> None:
        require_file(self.options.path, self.name)

    def read(self) -> Iterator[Record | Failed]:
        options: CsvSourceOptions = self.options
        delimiter = options.delimiter or sniff_delimiter(options.path, options.encoding)
        line = 0
        try:
            with open(options.path, encoding=options.encoding, newline="") as file:
                reader = csv.reader(file, delimiter=delimiter, quotechar=options.quotechar)
                for raw_header in reader:
                    if any(cell.strip() for cell in raw_header):
                        break
                else:
                    return  # an empty file has no records
                header = normalize_header(raw_header, options.normalize_headers)
                width = len(header)
                record = self.record
                # line_num counts physical lines consumed, i.e. where the previous row *ended*.
                line = reader.line_num
                for row in reader:
                    start = line + 1
                    line = reader.line_num
                    if len(row) == width:
                        # Lengths are equal here, and zip's strict= keyword costs measurably per row.
                        yield record(dict(zip(header, row)), start)  # noqa: B905
                    elif row and (len(row) > 1 or row[0].strip()):
                        data: dict[str, Any] = dict(zip(header, row, strict=False))
                        if len(row) > width:
                            data["_extra"] = row[width:]
                        yield Failed(record(data, start), f"line {start}: expected {width} fields, got {len(row)}")
        except UnicodeDecodeError as exc:
            raise RunFailed(
                f"{self.name}: {options.path} is not valid {options.encoding} after line {line} ({exc.reason}); "
                "set the `encoding` option (e.g. cp1252)"
            ) from None
        except csv.Error as exc:
            raise RunFailed(f"{self.name}: {options.path}: line {line + 1}: {exc}") from None


def sniff_delimiter(path: Path, encoding: str) -> str:
    """Guess the delimiter from the start of the file; ``,`` when the sample is inconclusive."""
    with open(path, encoding=encoding, newline="", errors="replace") as file:
        sample = file.read(SNIFF_BYTES)
    if len(sample) == SNIFF_BYTES:
        # A row cut in half would skew the per-line counts the sniffer relies on.
        sample = sample[: sample.rfind("\n") + 1] or sample
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","


def normalize_header(names: list[str], style: str) -> list[str]:
    """Clean column names: strip, apply ``style``, name blank columns ``column_N`` and number repeats ``x_2``."""
    result: list[str] = []
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
        seen.add(unique)
        result.append(unique)
    return result


_ACRONYM_END = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_START = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[\W_]+")


def snake_case(name: str) -> str:
    """``First Name`` → ``first_name``, ``firstName`` → ``first_name``, ``HTTPStatus`` → ``http_status``."""
    name = _WORD_START.sub(r"\1_\2", _ACRONYM_END.sub(r"\1_\2", name))
    return _SEPARATORS.sub("_", name).strip("_").lower()

"""The ``csv`` source as it read files before its fast path: every record through the careful line-by-line
reader, every row checked one by one. The differential tests hold the fast path to it."""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from connector_core.components import Failed
from connector_core.records import Record
from crmsync_plugins.files.csv_rows import Unreadable, _line_index, _stray_quote_by_char
from crmsync_plugins.files.csv_source import CsvSource, normalize_header

#: One record as the careful reader gave it: first line, fields, physical lines; or a record given up.
Raw = tuple[int, list[str], list[str]] | Unreadable


class _GiveUp(Exception):
    pass


def careful_records(lines: list[str], delimiter: str, quote: str, max_lines: int) -> Iterator[Raw]:
    """The records of ``lines``, each read line by line (the reader the fast path must agree with)."""
    held: list[str] = []
    replay: deque[str] = deque()
    source = iter(lines)
    consumed = 0

    def feed() -> Iterator[str]:
        while True:
            line = replay.popleft() if replay else next(source, None)
            if line is None:
                break
            held.append(line)
            if len(held) > max_lines:
                raise _GiveUp(f"a quoted field is still open after {max_lines} lines (max_lines_per_record)")
            yield line
        if held:
            raise _GiveUp("a quoted field is still open at the end of the file")

    def stray(text: str) -> tuple[int, int | None] | None:
        return _stray_quote_by_char(text, delimiter, quote)

    while True:
        reader = csv.reader(feed(), delimiter=delimiter, quotechar=quote)
        try:
            for fields in reader:
                if len(held) > 1:
                    found = stray("".join(held))
                    if found is not None and found[1] is not None:
                        line = consumed + 1 + _line_index(held, found[1])
                        raise _GiveUp(f"stray quote: a quoted field closes on line {line} before text")
                yield consumed + 1, fields, list(held)
                consumed += len(held)
                held.clear()
            return
        except (_GiveUp, csv.Error) as exc:
            first = consumed + 1
            found = stray("".join(held))
            upto = (0 if found is None else _line_index(held, found[0])) + 1
            reason = f"line {first}: {exc}"
            if upto > 1:
                reason += f" (the stray quote is on line {first + upto - 1})"
            yield Unreadable(first, "".join(held[:upto]).rstrip("\r\n"), reason)
            consumed += upto
            replay.extendleft(reversed(held[upto:]))
            held.clear()


def careful_read(source: CsvSource, delimiter: str) -> Iterator[Record | Failed]:
    """What ``source`` reads from its file, the careful way, row by row (no NUL in the header here)."""
    options = source.options
    with open(options.path, encoding="utf-8", newline="") as file:
        lines = list(chain(file))
    items = careful_records(lines, delimiter, options.quotechar, options.max_lines_per_record)
    empty = 0
    for item in items:
        if isinstance(item, Unreadable):
            raise AssertionError("these tests keep the header readable")
        _, fields, _ = item
        if not any(field.strip() for field in fields) and len(fields) <= 1:
            empty += 1
            continue
        names = normalize_header(fields, options.normalize_headers)[0]
        break
    else:
        source.count("empty_lines_skipped", empty)
        return
    width = len(names)
    for item in items:
        if isinstance(item, Unreadable):
            yield source._unreadable(item)
            continue
        start, fields, held = item
        if len(fields) == width:
            data = dict(zip(names, fields, strict=True))
            if len(held) == 1 and len(held[0]) <= options.max_field_chars and "\x00" not in held[0]:
                yield source.row(data, start)
            else:
                yield source._field_problem(data, start) or source.row(data, start)
        elif not fields:
            empty += 1
        else:
            yield source._ragged(names, fields, start)
    source.count("empty_lines_skipped", empty)


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as file:
        return list(file)

"""CSV records from physical lines, recovering from a quote that never closes.

The ``csv`` module alone reads an unterminated quote as one field holding the rest of the file. Here the
module is fed line by line and every record's lines are held: a record that spans more than ``max_lines``
lines, reaches the end of the file inside a quote, or pairs a stray quote with a quote on a later line, is
given up. Only its first line is reported as unreadable; the lines after it are parsed again as records of
their own, so nothing else is lost.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import chain

import attrs

#: The ``csv`` module's own field limit, process-wide. Records are bounded by their number of lines here and
#: fields by each source's ``max_field_chars``, so the module's limit is only raised out of their way.
CSV_MODULE_FIELD_LIMIT = 2**31 - 1


@attrs.frozen
class Unreadable:
    """A record given up: its first line's number and text, and why."""

    line: int
    text: str
    reason: str


#: One record: the number of its first line, its fields and its physical lines.
RawRecord = tuple[int, list[str], list[str]] | Unreadable


class _GiveUp(Exception):
    """Raised into the ``csv`` module to abandon the record being read."""


class CsvRecords:
    """Iterates over ``(first line number, fields, physical lines)`` of each record in ``lines`` (read with
    ``newline=""``), or :class:`Unreadable` for a record given up.

    The list of physical lines is reused for the next record: use it before asking for the next one.

    A record spanning several lines is given up too when one of its quoted fields closes on text other than
    the delimiter, spaces or the line end: that is a stray quote pairing with a quote on a later line
    (``2,"Bob,y`` then ``3,"Cy",z``), where a real multi-line field closes cleanly.
    """

    def __init__(self, lines: Iterable[str], delimiter: str, quotechar: str, max_lines: int) -> None:
        self.lines, self.delimiter, self.quotechar, self.max_lines = lines, delimiter, quotechar, max_lines

    def __iter__(self) -> Iterator[RawRecord]:
        if csv.field_size_limit() < CSV_MODULE_FIELD_LIMIT:
            csv.field_size_limit(CSV_MODULE_FIELD_LIMIT)
        max_lines = self.max_lines
        held: list[str] = []
        replay: deque[str] = deque()
        source = iter(self.lines)
        consumed = 0  # physical lines before the current record

        def feed() -> Iterator[str]:
            for line in chain(_drain(replay), source):
                held.append(line)
                if len(held) > max_lines:
                    raise _GiveUp(f"a quoted field is still open after {max_lines} lines (max_lines_per_record)")
                yield line
            if held:  # the csv module only asks for another line while a quoted field is open
                raise _GiveUp("a quoted field is still open at the end of the file")

        while True:
            reader = csv.reader(feed(), delimiter=self.delimiter, quotechar=self.quotechar)
            try:
                for fields in reader:
                    if len(held) > 1:
                        self._check_closing_quotes(held, consumed + 1)
                    yield consumed + 1, fields, held
                    consumed += len(held)
                    held.clear()
                return
            except (_GiveUp, csv.Error) as exc:
                first = consumed + 1
                yield Unreadable(first, held[0].rstrip("\r\n") if held else "", f"line {first}: {exc}")
                # Only the first line is given up: the others are read again as records of their own.
                consumed += 1
                replay.extendleft(reversed(held[1:]))
                held.clear()

    def _check_closing_quotes(self, lines: list[str], first: int) -> None:
        # Multi-line records are rare, so a character loop is affordable here.
        text, quote, delimiter = "".join(lines), self.quotechar, self.delimiter
        quoted, field_start, index = False, True, 0
        while index < len(text):
            char = text[index]
            index += 1
            if not quoted:
                quoted = char == quote and field_start
                field_start = char in (delimiter, "\r", "\n")
            elif char == quote:
                if text.startswith(quote, index):  # a doubled quote stands for one
                    index += 1
                    continue
                quoted = False
                while index < len(text) and text[index] in " \t":
                    index += 1
                if index < len(text) and text[index] not in (delimiter, "\r", "\n"):
                    line = first + _line_index(lines, index)
                    raise _GiveUp(f"stray quote: the quoted field opened here closes on line {line}, before text")


def _line_index(lines: list[str], offset: int) -> int:
    """Which of ``lines`` (0-based) holds character ``offset`` of their concatenation."""
    for number, line in enumerate(lines):
        offset -= len(line)
        if offset < 0:
            return number
    return len(lines) - 1


def _drain(lines: deque[str]) -> Iterator[str]:
    while lines:
        yield lines.popleft()

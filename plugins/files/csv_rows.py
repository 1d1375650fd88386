"""CSV records from physical lines, recovering from a quote that never closes.

The ``csv`` module alone reads an unterminated quote as one field holding the rest of the file. Here the
module is fed line by line and every record's lines are held: a record that spans more than ``max_lines``
lines, reaches the end of the file inside a quote, or pairs a stray quote with a quote on a later line, is
given up. Only its lines up to the one holding the stray quote are reported as unreadable (usually just its
first line); the lines after them are parsed again as records of their own, so nothing else is lost.
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
    """A record given up: the number of its first line, the text of the lines given up, and why."""

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
                # The lines up to the stray quote's are given up (one row that spans several lines stays
                # one row); the others are read again as records of their own.
                upto = self._stray_line(held) + 1
                reason = f"line {first}: {exc}"
                if upto > 1:
                    reason += f" (the stray quote is on line {first + upto - 1})"
                yield Unreadable(first, "".join(held[:upto]).rstrip("\r\n"), reason)
                consumed += upto
                replay.extendleft(reversed(held[upto:]))
                held.clear()

    def _check_closing_quotes(self, lines: list[str], first: int) -> None:
        stray = _stray_quote("".join(lines), self.delimiter, self.quotechar)
        if stray is not None and stray[1] is not None:
            line = first + _line_index(lines, stray[1])
            raise _GiveUp(f"stray quote: a quoted field closes on line {line} before text")

    def _stray_line(self, lines: list[str]) -> int:
        """Which of ``lines`` (0-based) holds the quote that opened the field that ran away; 0 if unknown."""
        stray = _stray_quote("".join(lines), self.delimiter, self.quotechar)
        return 0 if stray is None else _line_index(lines, stray[0])


def _stray_quote(text: str, delimiter: str, quote: str) -> tuple[int, int | None] | None:
    """The offsets of the quote opening a field that closes on text other than the delimiter, spaces or a
    line end, and of that text; or of the quote opening a field still open at the end, and None. None when
    every quoted field in ``text`` closes cleanly. Reads quotes as the ``csv`` module does: a quote opens a field
    only at its start, and a doubled quote inside stands for one.

    Only multi-line records and given-up ones are scanned, so a character loop is affordable here.
    """
    quoted, field_start, index, opened, size = False, True, 0, 0, len(text)
    while index < size:
        char = text[index]
        index += 1
        if not quoted:
            if char == quote and field_start:
                quoted, opened = True, index - 1
            field_start = char in (delimiter, "\r", "\n")
        elif char == quote:
            if text.startswith(quote, index):
                index += 1
                continue
            quoted = False
            while index < size and text[index] in " \t":
                index += 1
            if index < size and text[index] not in (delimiter, "\r", "\n"):
                return opened, index
    return (opened, None) if quoted else None


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

"""CSV records from physical lines, recovering from a quote that never closes.

The ``csv`` module alone reads an unterminated quote as one field holding the rest of the file. Here the
module is fed line by line and every record's lines are held: a record that spans more than ``max_lines``
lines, reaches the end of the file inside a quote, or pairs a stray quote with a quote on a later line, is
given up. Only its lines up to the one holding the stray quote are reported as unreadable (usually just its
first line); the lines after them are parsed again as records of their own, so nothing else is lost.

That careful reading costs a generator step per line, so it is kept for the records that need it. Lines are
read in blocks, and the ``csv`` module parses each block at full speed in strict mode, also records whose quoted
fields span lines, as long as each record ends inside the block, within ``max_lines`` lines, and closes its
quoted fields cleanly; the first record that does not (or that strict mode refuses) is read again the careful
way, alone, and the fast parse resumes after it. A record the fast parse accepts is one the careful reading
takes as is: strict mode refuses whatever the lenient mode would read differently, and the other conditions
are the careful reading's own.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import islice

import attrs

#: The ``csv`` module's own field limit, process-wide. Records are bounded by their number of lines here and
#: fields by each source's ``max_field_chars``, so the module's limit is only raised out of their way.
CSV_MODULE_FIELD_LIMIT = 2**31 - 1
#: Lines read and parsed at a time.
BLOCK_LINES = 1000


@attrs.frozen
class Unreadable:
    """A record given up: the number of its first line, the text of the lines given up, and why."""

    line: int
    text: str
    reason: str


#: Records read together: the number of each one's first line, their fields, and their physical lines (the
#: lines of each record in turn: record ``i`` has the lines from ``starts[i]`` up to the next record's start).
#: Or a record given up.
Block = tuple[list[int], list[list[str]], list[str]] | Unreadable


class _GiveUp(Exception):
    """Raised into the ``csv`` module to abandon the record being read."""


class _Lines:
    """The lines still to parse: the rest of the block read last (``block[pos:]``), then the file's."""

    __slots__ = ("block", "pos", "source")

    def __init__(self, source: Iterator[str]) -> None:
        self.block: list[str] = []
        self.pos = 0
        self.source = source

    def fill(self) -> bool:
        """Read the next block if this one is used up; False at the end of the file."""
        if self.pos == len(self.block):
            self.block, self.pos = list(islice(self.source, BLOCK_LINES)), 0
        return bool(self.block)

    def take(self) -> str | None:
        """The next line, or None at the end of the file."""
        if self.pos < len(self.block):
            self.pos += 1
            return self.block[self.pos - 1]
        return next(self.source, None)

    def put_back(self, taken: list[str]) -> None:
        """Make the last lines :meth:`take` gave the next ones again."""
        if taken:
            self.block, self.pos = taken + self.block[self.pos :], 0


class CsvRecords:
    """Iterates over the :data:`Block` s of ``lines`` (read with ``newline=""``).

    A record spanning several lines is given up too when one of its quoted fields closes on text other than
    the delimiter, spaces or the line end: that is a stray quote pairing with a quote on a later line
    (``2,"Bob,y`` then ``3,"Cy",z``), where a real multi-line field closes cleanly.
    """

    def __init__(self, lines: Iterable[str], delimiter: str, quotechar: str, max_lines: int) -> None:
        self.lines, self.delimiter, self.quotechar, self.max_lines = lines, delimiter, quotechar, max_lines

    def __iter__(self) -> Iterator[Block]:
        if csv.field_size_limit() < CSV_MODULE_FIELD_LIMIT:
            csv.field_size_limit(CSV_MODULE_FIELD_LIMIT)
        lines = _Lines(iter(self.lines))
        consumed = 0  # physical lines before the next record
        while lines.fill():
            starts, rows, used = self._parsed(lines.block, lines.pos, consumed + 1)
            if rows:
                yield starts, rows, lines.block[lines.pos : lines.pos + used]
                consumed += used
                lines.pos += used
                if lines.pos == len(lines.block):
                    continue
            # The next record needs the careful reading; it may read lines beyond the block.
            block, used = self._careful(lines, consumed)
            yield block
            consumed += used

    def _parsed(self, block: list[str], start: int, first: int) -> tuple[list[int], list[list[str]], int]:
        """The leading records of ``block[start:]`` that the strict parse reads within the block (their first
        lines' numbers counted from ``first``, their fields, and the lines they take), up to the first record the
        careful reading must take: one strict mode refuses, one still open at the block's end (strict mode
        refuses that too), one longer than ``max_lines`` or one whose quoted field closes before text."""
        reader = csv.reader(islice(block, start, None), delimiter=self.delimiter, quotechar=self.quotechar, strict=True)
        rows: list[list[str]] = []
        starts: list[int] = []
        used = 0  # lines of the records in rows
        try:
            for fields in reader:
                end = reader.line_num
                if end - used > 1:  # a record spanning lines
                    held = block[start + used : start + end]
                    if len(held) > self.max_lines or _closes_before_text(held, self.delimiter, self.quotechar):
                        break
                rows.append(fields)
                starts.append(first + used)
                used = end
        except csv.Error:
            pass  # the careful reading says what is wrong, or reads it the lenient way
        return starts, rows, used

    def _careful(self, lines: _Lines, consumed: int) -> tuple[Block, int]:
        """The next record, read line by line, and the number of lines it used up. A record given up uses up the
        lines to its stray quote; those after it are put back to be read again."""
        max_lines = self.max_lines
        held: list[str] = []

        def feed() -> Iterator[str]:
            while (line := lines.take()) is not None:
                held.append(line)
                if len(held) > max_lines:
                    raise _GiveUp(f"a quoted field is still open after {max_lines} lines (max_lines_per_record)")
                yield line
            if held:  # the csv module only asks for another line while a quoted field is open
                raise _GiveUp("a quoted field is still open at the end of the file")

        reader = csv.reader(feed(), delimiter=self.delimiter, quotechar=self.quotechar)
        try:
            fields = next(reader)
            if len(held) > 1:
                self._check_closing_quotes(held, consumed + 1)
            return ([consumed + 1], [fields], held), len(held)
        except (_GiveUp, csv.Error) as exc:
            first = consumed + 1
            # The lines up to the stray quote's are given up (one row that spans several lines stays one row);
            # the others are read again as records of their own.
            upto = self._stray_line(held) + 1
            reason = f"line {first}: {exc}"
            if upto > 1:
                reason += f" (the stray quote is on line {first + upto - 1})"
            lines.put_back(held[upto:])
            return Unreadable(first, "".join(held[:upto]).rstrip("\r\n"), reason), upto

    def _check_closing_quotes(self, lines: list[str], first: int) -> None:
        stray = _stray_quote("".join(lines), self.delimiter, self.quotechar)
        if stray is not None and stray[1] is not None:
            line = first + _line_index(lines, stray[1])
            raise _GiveUp(f"stray quote: a quoted field closes on line {line} before text")

    def _stray_line(self, lines: list[str]) -> int:
        """Which of ``lines`` (0-based) holds the quote that opened the field that ran away; 0 if unknown."""
        stray = _stray_quote("".join(lines), self.delimiter, self.quotechar)
        return 0 if stray is None else _line_index(lines, stray[0])


def _closes_before_text(lines: list[str], delimiter: str, quote: str) -> bool:
    """Whether a quoted field of a record spanning ``lines`` closes on text (what :meth:`CsvRecords._careful`
    gives up)."""
    stray = _stray_quote("".join(lines), delimiter, quote)
    return stray is not None and stray[1] is not None


def _stray_quote(text: str, delimiter: str, quote: str) -> tuple[int, int | None] | None:
    """The offsets of the quote opening a field that closes on text other than the delimiter, spaces or a
    line end, and of that text; or of the quote opening a field still open at the end, and None. None when
    every quoted field in ``text`` closes cleanly. Reads quotes as the ``csv`` module does: a quote opens a field
    only at its start, and a doubled quote inside stands for one.

    Jumps from quote to quote; a quote character that is also a delimiter, a space or a line end takes the
    character-by-character reading, which needs no such assumption.
    """
    ends = (delimiter, "\r", "\n")
    if quote in ends or quote in " \t":
        return _stray_quote_by_char(text, delimiter, quote)
    blanks = _blanks(delimiter)
    find, size, index = text.find, len(text), 0
    while (opened := find(quote, index)) >= 0:
        index = opened + 1
        if opened and text[opened - 1] not in ends:
            continue  # a quote inside an unquoted field is text
        while True:  # inside the quoted field: find its closing quote, skipping doubled ones
            closing = find(quote, index)
            if closing < 0:
                return opened, None
            index = closing + 1
            if not text.startswith(quote, index):
                break
            index += 1
        while index < size and text[index] in blanks:
            index += 1
        if index < size and text[index] not in ends:
            return opened, index
    return None


def _blanks(delimiter: str) -> str:
    """What may follow a closing quote before the delimiter: spaces and tabs, unless one is the delimiter (a
    tab after a quote ends the field in a tab-separated file)."""
    return " \t".replace(delimiter, "")


def _stray_quote_by_char(text: str, delimiter: str, quote: str) -> tuple[int, int | None] | None:
    """:func:`_stray_quote`, one character at a time."""
    quoted, field_start, index, opened, size = False, True, 0, 0, len(text)
    blanks = _blanks(delimiter)
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
            while index < size and text[index] in blanks:
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

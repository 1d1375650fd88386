"""The ``jsonl`` source: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs

from connector_core.components import Failed, Source
from connector_core.errors import RunFailed
from connector_core.records import Record

from .base import require_file
from .text_input import decode_problem, input_encoding


@attrs.frozen
class JsonlSourceOptions:
    """Options of the ``jsonl`` source."""

    path: Path
    """The JSON Lines file; relative paths resolve against the spec's folder."""
    encoding: str = "utf-8"
    """Text encoding of files without a byte-order mark; a UTF-8, UTF-16 or UTF-32 mark decides by itself."""


class JsonlSource(Source[JsonlSourceOptions]):
    """Reads a JSON Lines file. Position is the line number.

    Blank lines are skipped; a line that is not valid JSON, or is JSON but not an object, goes to the error
    stream with its text under ``_line`` and the run goes on. The file has no schema: a record lacking a
    ``key`` field has a blank key and goes to the error stream too.
    """

    Options: ClassVar[type] = JsonlSourceOptions
    # On the loop, as the CSV source (see there): parsing a local file is CPU work between buffered reads.
    io_thread: ClassVar[bool] = False

    def open(self) -> None:
        require_file(self.options.path, self.name)

    def read(self) -> Iterator[Record | Failed]:
        options: JsonlSourceOptions = self.options
        row, loads = self.row, json.loads
        encoding = input_encoding(options.path, options.encoding)
        try:
            with open(options.path, encoding=encoding) as file:
                for number, line in enumerate(file, 1):
                    try:
                        data = loads(line)
                    except ValueError as exc:
                        if line.isspace():
                            continue
                        yield self._failed(line, number, str(exc))
                        continue
                    if data.__class__ is dict:
                        yield row(data, number)
                    else:
                        yield self._failed(line, number, f"expected an object, got {type(data).__name__}")
        except UnicodeDecodeError:
            problem = decode_problem(options.path, encoding)
            raise RunFailed(f"{self.name}: {problem}; set the `encoding` option") from None

    def _failed(self, line: str, number: int, problem: str) -> Failed:
        return Failed(self.record({"_line": line.rstrip("\r\n")}, number), f"line {number}: invalid JSON: {problem}")

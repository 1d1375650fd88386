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


@attrs.frozen
class JsonlSourceOptions:
    """Options of the ``jsonl`` source."""

    path: Path
    """The JSON Lines file; relative paths resolve against the spec's folder."""
    encoding: str = "utf-8"
    """Text encoding of the file."""


class JsonlSource(Source):
    """Reads a JSON Lines file. Position is the line number.

    Blank lines are skipped; a line that is not valid JSON, or is JSON but not an object, goes to the error
    stream with its text under ``_line`` and the run goes on.
    """

    Options: ClassVar[type] = JsonlSourceOptions

    def open(self) -> None:
        require_file(self.options.path, self.name)

    def read(self) -> Iterator[Record | Failed]:
        options: JsonlSourceOptions = self.options
        record, loads = self.record, json.loads
        number = 0
        try:
            with open(options.path, encoding=options.encoding) as file:
                for number, line in enumerate(file, 1):
                    try:
                        data = loads(line)
                    except ValueError as exc:
                        if line.isspace():
                            continue
                        yield self._failed(line, number, str(exc))
                        continue
                    if data.__class__ is dict:
                        yield record(data, number)
                    else:
                        yield self._failed(line, number, f"expected an object, got {type(data).__name__}")
        except UnicodeDecodeError as exc:
            raise RunFailed(
                f"{self.name}: {options.path} is not valid {options.encoding} after line {number} ({exc.reason})"
            ) from None

    def _failed(self, line: str, number: int, problem: str) -> Failed:
        return Failed(self.record({"_line": line.rstrip("\r\n")}, number), f"line {number}: invalid JSON: {problem}")

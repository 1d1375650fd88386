"""The components of crmsync-hello, imported by its registration hooks when crmsync first needs them."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from connector_core.components import Emitter, Mapper, Sink, Source
from connector_core.records import Record


@attrs.frozen
class GreetingsOptions:
    count: int
    greeting: str = "hello"


class Greetings(Source):
    """Yields ``count`` greetings, numbered from 0."""

    Options = GreetingsOptions

    def read(self):
        for i in range(self.options.count):
            yield self.record({"n": i, "text": f"{self.options.greeting} {i}"}, i + 1)


@attrs.frozen
class ShoutOptions:
    field: str


class Shout(Mapper):
    """Upper-cases one string field of every record."""

    Options = ShoutOptions

    def process(self, batch: list[Record], out: Emitter) -> None:
        field = self.options.field
        for record in batch:
            value = record.data.get(field)
            if not isinstance(value, str):
                out.fail(record, f"field {field!r} is not a string")
                continue
            out.emit(record.with_data({**record.data, field: value.upper()}))


@attrs.frozen
class JsonlOptions:
    path: Path


class JsonlSink(Sink):
    """Writes records as JSON lines; the file appears complete or not at all."""

    Options = JsonlOptions

    def open(self) -> None:
        self.options.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.options.path.with_name(self.options.path.name + ".partial")
        self._file = self._partial.open("w", encoding="utf-8")

    def write(self, batch: list[Record], out: Emitter) -> None:
        for record in batch:
            self._file.write(json.dumps(record.data, sort_keys=True) + "\n")

    def close(self, success: bool) -> None:
        self._file.close()
        if success:
            self._partial.replace(self.options.path)
        else:
            self._partial.unlink(missing_ok=True)

"""The ``testkit`` plugin the conformance tests wire around the component under test.

``testkit.rows`` reads a JSONL file the test wrote, ``testkit.crash`` aborts the run once it has passed a
number of records (or, with ``hard: true``, ends the process on the spot), and ``testkit.collect`` appends
what it receives to a JSONL file at once (durable per batch, so a crash loses nothing it acknowledged; with
state it cuts the file back to what was committed, so a crash doubles nothing either).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs

from connector_core import hookimpl
from connector_core.components import Emitter, Mapper, Sink, Source
from connector_core.errors import RunFailed
from connector_core.options import option
from connector_core.records import Record
from connector_core.registry import ComponentRegistry


@attrs.frozen
class RowsOptions:
    path: Path = option(help="a JSONL file, one record per line")


class Rows(Source[RowsOptions]):
    """Reads the records a conformance test prepared."""

    Options = RowsOptions

    def read(self) -> Iterator[Record]:
        with self.options.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield self.record(json.loads(line), number)


#: The exit status of a process ended by ``testkit.crash`` with ``hard: true``.
KILLED = 77


@attrs.frozen
class CrashOptions:
    after: int = option(help="abort the run once this many records went through")
    hard: bool = option(False, help="end the process at once (no close, no finally), as kill -9 would")


class Crash(Mapper[CrashOptions]):
    """Passes records on until ``after`` of them went through, then aborts the run."""

    Options = CrashOptions
    batch_size: ClassVar[int] = 1

    def open(self) -> None:
        self.seen = 0

    def process(self, batch: list[Record], out: Emitter) -> None:
        if self.seen >= self.options.after:
            if self.options.hard:
                os._exit(KILLED)
            raise RunFailed(f"testkit.crash: simulated crash after {self.seen} records")
        self.seen += len(batch)
        out.emit_many(batch)


@attrs.frozen
class CollectOptions:
    path: Path = option(help="the JSONL file records are appended to")


class Collect(Sink[CollectOptions]):
    """Appends each record's data to a JSONL file, durable per batch.

    With state, each batch's checkpoint is the file's length, and a run cuts the file back to the committed
    length on open: a batch written but not committed when the process died is written again, not twice.
    """

    Options = CollectOptions

    def open(self) -> None:
        state, path = self.context.state, self.options.path
        if state is None:
            return
        committed = state.sink_checkpoint(self.name)
        if committed and committed.get("path") == str(path):
            if path.exists() and path.stat().st_size > committed["length"]:
                os.truncate(path, committed["length"])
        else:  # before the first write: what is there now is what a crash cuts back to
            state.save_checkpoint(self.name, self.checkpoint())

    def write(self, batch: list[Record], out: Emitter) -> None:
        with self.options.path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record.data, default=str) + "\n" for record in batch)
            handle.flush()
            os.fsync(handle.fileno())

    def checkpoint(self) -> dict[str, object]:
        path = self.options.path
        return {"path": str(path), "length": path.stat().st_size if path.exists() else 0}


@hookimpl
def register_sources(registry: ComponentRegistry) -> None:
    registry.add("testkit.rows", Rows)


@hookimpl
def register_mappers(registry: ComponentRegistry) -> None:
    registry.add("testkit.crash", Crash)


@hookimpl
def register_sinks(registry: ComponentRegistry) -> None:
    registry.add("testkit.collect", Collect)

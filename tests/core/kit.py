"""Tiny in-code components for the core tests, registered as the plugin ``kit`` (types named ``t.*``).

They depend on nothing but connector_core, so the core tests never need the built-in plugins. Sinks and
probes write what they saw into :data:`STORE` (cleared before every test by an autouse fixture).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs

from connector_core import hookimpl
from connector_core.components import Connection, Emitter, Failed, Mapper, Sink, Source
from connector_core.options import option
from connector_core.records import Record

#: What the components saw, by component name (sinks: record data; probes: batch sizes, etc.).
STORE: defaultdict[str, list[Any]] = defaultdict(list)
#: Counters shared by components of one run (e.g. records in flight for the back-pressure test).
COUNTERS: defaultdict[str, int] = defaultdict(int)


def reset() -> None:
    STORE.clear()
    COUNTERS.clear()


@attrs.frozen
class NumbersOptions:
    count: int = 10
    #: Raise ``message`` (a ValueError) when about to read this index.
    fail_at: int | None = None
    #: Indexes yielded as :class:`Failed` with ``message`` as reason.
    bad: list[int] = attrs.Factory(list)
    message: str = "boom"
    #: Add this much to COUNTERS["in_flight"] per record read: the number of tracking sinks each record
    #: reaches (back-pressure tests).
    track: int = 0


class Numbers(Source):
    """Records ``{"i": 0..count-1}`` at positions 1..count."""

    Options = NumbersOptions

    def read(self):
        options = self.options
        for i in range(options.count):
            if i == options.fail_at:
                raise ValueError(options.message)
            record = self.record({"i": i}, i + 1)
            if options.track:
                COUNTERS["in_flight"] += options.track
                COUNTERS["max_in_flight"] = max(COUNTERS["max_in_flight"], COUNTERS["in_flight"])
            if i in options.bad:
                yield Failed(record, options.message)
            else:
                yield record


class AsyncNumbers(Source):
    """Like :class:`Numbers` but ``read`` is an async generator."""

    Options = NumbersOptions

    async def read(self):
        for i in range(self.options.count):
            await asyncio.sleep(0)
            if i == self.options.fail_at:
                raise ValueError(self.options.message)
            yield self.record({"i": i, "async": True}, i + 1)


@attrs.frozen
class SplitOptions:
    #: Values of ``i`` rejected with ``reason``.
    reject: list[int] = attrs.Factory(list)
    reason: str = "rejected"
    #: Values of ``i`` set aside as after a transient failure.
    defer: list[int] = attrs.Factory(list)


class Split(Mapper):
    """Even ``i`` to the default output, odd ``i`` to ``odd``; rejects the listed ones."""

    Options = SplitOptions
    outputs = ("default", "odd")

    def process(self, batch: list[Record], out: Emitter) -> None:
        for record in batch:
            i = record.data["i"]
            if i in self.options.reject:
                out.fail(record, self.options.reason)
            elif i in self.options.defer:
                out.defer(record, "service unavailable (503)")
            else:
                out.emit(record, "odd" if i % 2 else "default")


@attrs.frozen
class ExplodeOptions:
    #: Raise (RuntimeError ``message``) on a batch holding any of these ``i``.
    fail_on: list[int] = attrs.Factory(list)
    message: str = "kaboom"


class Explode(Mapper):
    """Passes records through, but raises on a batch containing one of the ``fail_on`` values."""

    Options = ExplodeOptions

    def process(self, batch: list[Record], out: Emitter) -> None:
        if any(record.data["i"] in self.options.fail_on for record in batch):
            raise RuntimeError(self.options.message)
        out.emit_many(batch)


@attrs.frozen
class ProbeOptions:
    sleep: float = 0.0


class Probe(Mapper):
    """An async pass-through recording batch sizes (``STORE[name]``) and the most calls in flight at once."""

    Options = ProbeOptions

    async def process(self, batch: list[Record], out: Emitter) -> None:
        STORE[self.name].append(len(batch))
        key = f"{self.name}.in_flight"
        COUNTERS[key] += 1
        COUNTERS[f"{self.name}.max_in_flight"] = max(COUNTERS[f"{self.name}.max_in_flight"], COUNTERS[key])
        await asyncio.sleep(self.options.sleep)
        COUNTERS[key] -= 1
        out.emit_many(batch)


@attrs.frozen
class StampOptions:
    values: dict[str, Any] = attrs.Factory(dict)


class Stamp(Mapper):
    """Adds ``values`` (any nesting) to every record."""

    Options = StampOptions

    def process(self, batch: list[Record], out: Emitter) -> None:
        out.emit_many(record.with_data({**record.data, **self.options.values}) for record in batch)


class Quiet(Mapper):
    """Drops odd ``i`` to an output nobody has to read."""

    outputs = ("default", "dropped")
    quiet_outputs = ("dropped",)

    def process(self, batch: list[Record], out: Emitter) -> None:
        for record in batch:
            out.emit(record, "dropped" if record.data["i"] % 2 else "default")


@attrs.frozen
class CollectOptions:
    #: Values of ``i`` the sink fails with ``reason``.
    reject: list[int] = attrs.Factory(list)
    reason: str = "sink rejected"
    #: Seconds to await per batch (a slow sink).
    sleep: float = 0.0
    #: A message logged at WARNING through ``context.log`` when the sink opens.
    log: str | None = None
    #: Raise this message from ``close``.
    close_error: str | None = None
    #: Raise this message from ``prepare`` (the phase of closing that can fail, before any sink closes).
    prepare_error: str | None = None
    #: Decrease COUNTERS["in_flight"] by the records written (back-pressure test).
    track: bool = False
    connection: str | None = option(
        None, help="a connection declared in the spec; its token is stored in STORE[name + '.token']", connection=True
    )


class Collect(Sink):
    """Keeps the data of every record written in ``STORE[name]``."""

    Options = CollectOptions

    def open(self) -> None:
        if self.options.log:
            self.context.log.warning("%s", self.options.log)
        if self.options.connection:
            STORE[self.name + ".token"].append(self.context.connection(self.options.connection).options.token)

    async def write(self, batch: list[Record], out: Emitter) -> None:
        if self.options.track:
            COUNTERS["in_flight"] -= len(batch)
        if self.options.sleep:
            await asyncio.sleep(self.options.sleep)
        for record in batch:
            if record.data.get("i") in self.options.reject:
                out.fail(record, self.options.reason)
            else:
                STORE[self.name].append(record.data)

    def prepare(self) -> None:
        STORE["prepared"].append(self.name)
        if self.options.prepare_error:
            raise OSError(self.options.prepare_error)

    def close(self, success: bool) -> None:
        STORE[self.name + ".closed"].append(success)
        if self.options.close_error:
            raise OSError(self.options.close_error)


class Database(Collect):
    """A collect sink whose close is a COMMIT that can still refuse after it prepared."""

    commit_may_fail = True


@attrs.frozen
class RelayOptions:
    #: Seconds to await per batch.
    sleep: float = 0.0


class Relay(Sink):
    """A sink with an output: every record it writes goes on to ``written`` (like ``apollo.contacts``)."""

    Options = RelayOptions
    outputs = ("written",)

    async def write(self, batch: list[Record], out: Emitter) -> None:
        await asyncio.sleep(self.options.sleep)
        out.emit_many(batch, "written")


@attrs.frozen
class BlockingOptions:
    #: Seconds each ``write`` and each ``checkpoint`` block the calling thread (a slow disk and its fsync).
    block: float = 0.1


class Blocking(Sink):
    """A plain-function sink that blocks in ``write`` and ``checkpoint``, like a file sink on a slow disk."""

    Options = BlockingOptions

    def write(self, batch: list[Record], out: Emitter) -> None:
        time.sleep(self.options.block)
        STORE[self.name].extend(record.data for record in batch)

    def checkpoint(self) -> dict[str, int]:
        time.sleep(self.options.block)
        return {"records": len(STORE[self.name])}


class Heartbeat(Connection):
    """Measures event-loop stalls while open: the largest delay of a 5 ms tick, in ``COUNTERS["max_lag_ms"]``."""

    async def open(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.005)
            lag_ms = int((loop.time() - start - 0.005) * 1000)
            COUNTERS["max_lag_ms"] = max(COUNTERS["max_lag_ms"], lag_ms)

    async def close(self) -> None:
        self._task.cancel()


@attrs.frozen
class FileOptions:
    path: Path


class FileSink(Sink):
    """Writes the ``i`` of each record, one a line, to ``path`` (required)."""

    Options = FileOptions

    def open(self) -> None:
        self._lines: list[str] = []

    def write(self, batch: list[Record], out: Emitter) -> None:
        self._lines.extend(str(record.data["i"]) for record in batch)

    def close(self, success: bool) -> None:
        self.options.path.parent.mkdir(parents=True, exist_ok=True)
        self.options.path.write_text("".join(line + "\n" for line in self._lines), encoding="utf-8")


@attrs.frozen
class TokenOptions:
    token: str
    close_error: str | None = None


class TokenConnection(Connection):
    """A connection holding a token, as an API client would."""

    Options = TokenOptions

    async def open(self) -> None:
        STORE["connections"].append(("open", self.name))

    async def close(self) -> None:
        STORE["connections"].append(("close", self.name))
        if self.options.close_error:
            raise ConnectionError(self.options.close_error)


class KitPlugin:
    """The ``kit`` plugin: register with ``plugins=[("kit", KitPlugin)]``."""

    @hookimpl
    def register_sources(registry):
        registry.add("t.numbers", Numbers)
        registry.add("t.anumbers", AsyncNumbers)

    @hookimpl
    def register_mappers(registry):
        registry.add("t.split", Split)
        registry.add("t.explode", Explode)
        registry.add("t.probe", Probe)
        registry.add("t.quiet", Quiet)
        registry.add("t.stamp", Stamp)

    @hookimpl
    def register_sinks(registry):
        registry.add("t.collect", Collect)
        registry.add("t.database", Database)
        registry.add("t.file", FileSink)
        registry.add("t.relay", Relay)
        registry.add("t.blocking", Blocking)

    @hookimpl
    def register_connections(registry):
        registry.add("t.token", TokenConnection)
        registry.add("t.heartbeat", Heartbeat)


KIT = ("kit", KitPlugin)

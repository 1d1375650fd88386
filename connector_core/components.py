"""The contracts every plugin component implements: sources, mappers, sinks and connections.

A component class declares its options as an attrs class in ``Options`` and the names of the streams it can
emit in ``outputs``. Work methods may be plain functions or coroutines: the engine awaits coroutines and calls
plain functions directly, so file plugins stay simple while network plugins run concurrently.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from connector_core.records import Record, content_key

if TYPE_CHECKING:
    from connector_core.context import RunContext

DEFAULT = "default"


@attrs.frozen
class NoOptions:
    """Options class for components that take none."""


@attrs.frozen(slots=True)
class Failed:
    """A record a source could not read properly; the engine routes it to the error stream."""

    record: Record
    reason: str


class Emitter:
    """Collects what a mapper or sink did with one batch: records routed to outputs, failures, and records
    set aside after a transient failure."""

    __slots__ = ("deferred", "failed", "routed")

    def __init__(self) -> None:
        self.routed: dict[str, list[Record]] = {}
        self.failed: list[Failed] = []
        self.deferred: list[Failed] = []

    def emit(self, record: Record, output: str = DEFAULT) -> None:
        """Send ``record`` to the named output (the default output unless told otherwise)."""
        bucket = self.routed.get(output)
        if bucket is None:
            bucket = self.routed[output] = []
        bucket.append(record)

    def emit_many(self, records: Iterable[Record], output: str = DEFAULT) -> None:
        """Send several records to one output."""
        self.routed.setdefault(output, []).extend(records)

    def fail(self, record: Record, reason: str) -> None:
        """Send ``record`` to the job's error stream with a human-readable reason."""
        self.failed.append(Failed(record, reason))

    def defer(self, record: Record, reason: str) -> None:
        """Set ``record`` aside after a transient failure (a 5xx storm, a timeout, a long ``Retry-After``).

        It is not a reject: it shows in the error stream marked ``transient`` (so nothing is lost in a run
        without state), and a job that keeps state retries it on its next run without using up an attempt.
        """
        self.deferred.append(Failed(record, reason))


class Component:
    """Base of every component. ``name`` is the component's name in the spec."""

    Options: ClassVar[type] = NoOptions
    #: Streams this component can emit; ``default`` is addressed by the component's bare name.
    outputs: ClassVar[tuple[str, ...]] = (DEFAULT,)
    #: Outputs that may go unread without a warning (e.g. records a filter drops on purpose).
    quiet_outputs: ClassVar[tuple[str, ...]] = ()
    #: Outputs of records this run did not get to (e.g. a credit budget ran out): a job that keeps state
    #: retries them on its next run instead of counting them as done.
    deferred_outputs: ClassVar[tuple[str, ...]] = ()
    #: Sources and sinks: whether a plain-function ``read``/``write`` runs on a thread of the component's own,
    #: so blocking I/O cannot stall the event loop every HTTP call runs on. Turn it off only for work that is
    #: CPU-bound and merely buffers its I/O: on a thread it would compete with the loop for the GIL (the JSONL
    #: and CSV sinks lost 15% throughput). ``open``, ``checkpoint`` and ``close`` (the fsyncs) run there anyway.
    io_thread: ClassVar[bool] = True

    def __init__(self, name: str, options: Any, context: RunContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    def open(self) -> Awaitable[None] | None:
        """Acquire resources before the first record (files, clients). May be a coroutine."""

    def close(self, success: bool) -> Awaitable[None] | None:
        """Release resources after the last record; ``success`` is False when the run failed."""


class Source(Component):
    """Produces records. Implement :meth:`read`."""

    def __init__(self, name: str, options: Any, context: RunContext, key: tuple[str, ...] = ()) -> None:
        super().__init__(name, options, context)
        self.key_fields = key
        self._key = _key_function(key)

    def record(self, data: dict[str, Any], position: int) -> Record:
        """Build a record with this source's provenance and its key (the ``key`` fields, else a hash)."""
        return Record(data, self._key(data), self.name, position)

    def read(self) -> Iterable[Record | Failed] | AsyncIterable[Record | Failed]:
        """Yield records (or :class:`Failed` for unreadable input) in input order."""
        raise NotImplementedError


def _key_function(fields: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
    """How a source computes record keys; chosen once, since it runs for every record read."""
    if not fields:
        return content_key
    if len(fields) == 1:
        (field,) = fields

        def one_field(data: dict[str, Any]) -> str:
            value = data.get(field, "")
            return value if value.__class__ is str else str(value)

        return one_field
    return lambda data: "|".join(str(data.get(field, "")) for field in fields)


class Mapper(Component):
    """Takes a batch of records and routes records to its outputs through the emitter."""

    #: Records per call, unless the spec says otherwise.
    batch_size: ClassVar[int] = 500
    #: Calls in flight at once, unless the spec says otherwise (raise it for network mappers).
    concurrency: ClassVar[int] = 1
    #: The largest ``batch_size`` a spec may set (an API's per-call limit), or None.
    max_batch_size: ClassVar[int | None] = None

    def process(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        """Handle one batch: ``out.emit(record, output)`` results, ``out.fail(record, reason)`` rejects."""
        raise NotImplementedError


class Sink(Mapper):
    """Consumes records. Records handed to :meth:`write` are delivered unless the sink fails them.

    A sink may also emit outputs (the Apollo contacts sink emits ``created`` and ``existing``); by default it
    has none. :meth:`close` is where a sink makes its writes visible atomically.
    """

    outputs: ClassVar[tuple[str, ...]] = ()

    def process(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        return self.write(batch, out)

    def write(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        """Write one batch."""
        raise NotImplementedError

    def checkpoint(self) -> Any:
        """Make everything written so far durable and return a JSON-able token describing it, or None.

        Called after each batch when the job keeps state; the token is committed in the same transaction as
        the batch's deliveries and handed back by ``context.state.sink_checkpoint(name)`` after a crash. Sinks
        whose writes are durable at once (an API) keep the default.
        """
        return None


class Connection:
    """A shared, named resource such as an API client, declared under ``connections:`` in the spec.

    Components reference it by name and get it with ``context.connection(name)``; the engine opens every
    connection before the run and closes it after.
    """

    Options: ClassVar[type] = NoOptions

    def __init__(self, name: str, options: Any, context: RunContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    async def open(self) -> None:
        """Open clients or pools."""

    async def close(self) -> None:
        """Close what :meth:`open` opened."""

"""The contracts every plugin component implements: sources, mappers, sinks and connections.

A component class declares its options as an attrs class in ``Options`` and the names of the streams it can
emit in ``outputs``. Work methods may be plain functions or coroutines: the engine awaits coroutines and calls
plain functions directly, so file plugins stay simple while network plugins run concurrently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeAlias, TypeVar

import attrs

from connector_core.keys import KeyFunction, blank_fields, key_function, keys_function
from connector_core.records import Record, content_key, content_keys, record_of

if TYPE_CHECKING:
    from connector_core.context import RunContext

DEFAULT = "default"
log = logging.getLogger("crmsync.sources")

#: The attrs class of a component's options: ``class MySink(Sink[MySinkOptions])`` types ``self.options``.
OptionsT = TypeVar("OptionsT")


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


class Component(Generic[OptionsT]):
    """Base of every component. ``name`` is the component's name in the spec; ``options`` its structured options."""

    Options: ClassVar[type[Any]] = NoOptions
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
    #: Whether ``close(True)`` can still fail after :meth:`prepare` succeeded: a database's ``COMMIT``, which
    #: cannot be split further. Such components close first, so that a refusal leaves the others' outputs
    #: unpublished (closed with ``success=False``); a rename or an API's nothing-to-do cannot refuse.
    commit_may_fail: ClassVar[bool] = False

    def __init__(self, name: str, options: OptionsT, context: RunContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    @classmethod
    def reads_keys(cls, options: Any) -> bool:
        """Mappers and sinks: whether this component, with these options, reads ``record.key`` (or hands records
        to code that may). A source without ``key`` keys each record by a hash of its content, a fifth of a file
        job's CPU: a job that keeps no state, and whose every mapper and sink says False, skips that hash (its
        records then carry an empty key). True unless overridden: say False only if the component never looks."""
        return True

    def open(self) -> Awaitable[None] | None:
        """Acquire resources before the first record (files, clients). May be a coroutine."""

    def prepare(self) -> Awaitable[None] | None:
        """Do the part of ``close(True)`` that can fail (flush, ``fsync``, write a merged copy), leaving it only
        what cannot (a rename, a ``COMMIT``). May be a coroutine.

        Called on every opened component when the run has gone well, before any is closed: if one raises, the
        run fails and every component is closed with ``success=False``, so no output changes because a sink
        beside it could not finish. Components whose output is visible at once (an API) need not override it.
        """

    def close(self, success: bool) -> Awaitable[None] | None:
        """Release resources after the last record; ``success`` is False when the run failed. After a
        successful :meth:`prepare` this is where a sink makes its output visible."""


class Source(Component[OptionsT]):
    """Produces records. Implement :meth:`read`; build each input row's record with :meth:`row`."""

    def __init__(self, name: str, options: OptionsT, context: RunContext, key: tuple[str, ...] = ()) -> None:
        super().__init__(name, options, context)
        self.key_fields = key
        self._key: KeyFunction = key_function(key) if key else content_key
        self._keys = keys_function(key)
        self._counts: dict[str, int] = {}
        #: Set by the engine when the job keeps state: :meth:`rows` and :meth:`record` give each record its
        #: fingerprint as they build it (else the state stamps every batch afterwards, building each record a
        #: second time).
        self.fingerprint_rows: Callable[[list[dict[str, Any]]], list[str]] | None = None
        #: Set False by the engine when nothing in the job reads keys (see :meth:`Component.reads_keys`): records
        #: of a source without ``key`` are then left unkeyed (``""``) instead of hashing each one's content.
        self.hashes_content = True

    @classmethod
    def key_problem(cls, options: Any, key: tuple[str, ...]) -> str | None:
        """Why ``key`` cannot work with this input (a field its columns lack), or None; checked when the spec
        loads, so ``validate`` and ``run`` stop with exit 2. Sources that know their columns before reading
        (a CSV header) override it: a missing key column would leave every record without a key."""
        return None

    @classmethod
    def input_file(cls, options: Any) -> LocalFile | None:
        """The local file this source reads, or None (an API, a database). Checked when the spec loads: a sink of
        the job writing it would replace the input with the output (exit 2 instead)."""
        return None

    def row(self, data: dict[str, Any], position: int) -> Record:
        """The record of one input row, with its key and provenance.

        A row whose ``key`` field is blank (missing, null, blank text) is keyed by its content hash instead,
        like a source without ``key``: rows without a value must not share one key, or they would overwrite
        each other downstream. Such rows are counted in the run report (``blank_keys``); the first is logged.
        """
        return self.rows([data], position)[0]

    def rows(self, rows: list[dict[str, Any]], first: int | Sequence[int]) -> list[Record]:
        """The records of input rows at positions ``first``, ``first + 1``, ... (or at the positions ``first``
        lists, one per row): :meth:`row` for many rows at once, at a fraction of the cost per row."""
        keys: list[Any] = self._keys(rows) if self.key_fields or self.hashes_content else [""] * len(rows)
        if None in keys:  # blank keys are rare: count and log them as row() says
            self._hash_blank_keys(rows, keys, first)
        positions = range(first, first + len(rows)) if isinstance(first, int) else first
        fingerprints: Iterable[str] = repeat("")
        if self.fingerprint_rows is not None:
            fingerprints = keys if self._keyed_by_content else self.fingerprint_rows(rows)
        # Built in C, as tuples of the record's fields (equal lengths: zip's strict= costs per row).
        fields = zip(rows, keys, repeat(self.name), positions, fingerprints)
        return list(map(record_of, fields))

    def _hash_blank_keys(self, rows: list[dict[str, Any]], keys: list[Any], first: int | Sequence[int]) -> None:
        """Replace each blank one of ``keys`` by its row's content hash (counted; the first one logged)."""
        blank = [index for index, key in enumerate(keys) if key is None]
        if "blank_keys" not in self._counts:
            index = blank[0]
            log.warning(
                "%s: record %d has a blank key %s; blank keys are replaced by a content hash",
                self.name,
                first + index if isinstance(first, int) else first[index],
                ", ".join(blank_fields(self.key_fields, rows[index])),
            )
        self.count("blank_keys", len(blank))
        for index, key in zip(blank, content_keys(list(map(rows.__getitem__, blank)))):  # noqa: B905
            keys[index] = key

    def record(self, data: dict[str, Any], position: int) -> Record:
        """A record with this source's provenance and key, without counting a blank key: for rows the source
        wraps in a :class:`Failed`."""
        key = self._key(data)
        if key is None:
            key = content_key(data)
        fingerprint = ""
        if self.fingerprint_rows is not None:
            fingerprint = key if self._keyed_by_content else self.fingerprint_rows([data])[0]
        return Record(data, key, self.name, position, fingerprint)

    @property
    def _keyed_by_content(self) -> bool:
        """Whether every record's key is the hash of its content (no ``key`` fields, and keys are read): the key
        then tells a changed record from a stored one as well as a fingerprint would, and serves as one (the
        fingerprint's hash, a second pass over each record, is spared)."""
        return not self.key_fields and self.hashes_content

    def count(self, counter: str, amount: int = 1) -> None:
        """Add to a counter of this source shown in the run report under ``source <name>``."""
        if amount <= 0:
            return
        if not self._counts and self.context is not None:
            self.context.add_report_section(f"source {self.name}", lambda: dict(self._counts))
        self._counts[counter] = self._counts.get(counter, 0) + amount

    def read(self) -> Iterable[Record | Failed] | AsyncIterable[Record | Failed]:
        """Yield records (or :class:`Failed` for unreadable input) in input order."""
        raise NotImplementedError


class Mapper(Component[OptionsT]):
    """Takes a batch of records and routes records to its outputs through the emitter."""

    #: Records per call, unless the spec says otherwise. Small enough for a batch and its results to stay in the
    #: CPU's cache between stages (see ``JobSettings.source_batch_size``); an API's limit is set by its plugin.
    batch_size: ClassVar[int] = 250
    #: Calls in flight at once, unless the spec says otherwise (raise it for network mappers).
    concurrency: ClassVar[int] = 1
    #: The largest ``batch_size`` a spec may set (an API's per-call limit), or None.
    max_batch_size: ClassVar[int | None] = None

    def process(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        """Handle one batch: ``out.emit(record, output)`` results, ``out.fail(record, reason)`` rejects."""
        raise NotImplementedError

    def plan(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        """Optional: what :meth:`process` would do, without any write or paid call (``crmsync plan``).

        Override it in components that write or pay. Without it, ``crmsync plan`` runs a mapper's
        :meth:`process` (local work is safe) and skips a sink altogether.
        """
        raise NotImplementedError

    def finish(self, out: Emitter) -> Awaitable[None] | None:
        """Optional: emit what is left once the input ended, after the last batch and before the outputs close
        (e.g. results an API delivers later). Not called by ``crmsync plan``."""

    @property
    def has_finish(self) -> bool:
        """Whether this component's class implements :meth:`finish`."""
        return type(self).finish is not Mapper.finish

    @property
    def has_plan(self) -> bool:
        """Whether this component's class implements :meth:`plan`."""
        return type(self).plan is not Mapper.plan


class LocalFile(NamedTuple):
    """A local file a component works on: the file a sink writes (:meth:`Sink.output_file`) or a source reads
    (:meth:`Source.input_file`)."""

    #: The option naming it (where a spec error points).
    option: str
    #: The file, resolved (two spellings of one file are one file).
    path: Path


#: The name sinks have returned from :meth:`Sink.output_file` since before sources declared their files.
OutputFile = LocalFile


class Sink(Mapper[OptionsT]):
    """Consumes records. Records handed to :meth:`write` are delivered unless the sink fails them.

    A sink may also emit outputs (the Apollo contacts sink emits ``created`` and ``existing``); by default it
    has none. :meth:`close` is where a sink makes its writes visible atomically.
    """

    outputs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def output_file(cls, options: Any) -> LocalFile | None:
        """The local file this sink writes, or None (an API). Checked when the spec loads: two sinks of a job
        writing one file would each count records the other overwrote (or fail on its lock)."""
        return None

    def process(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        return self.write(batch, out)

    def write(self, batch: list[Record], out: Emitter) -> Awaitable[None] | None:
        """Write one batch."""
        raise NotImplementedError

    def checkpoint(self) -> Any:
        """Make everything written so far durable and return a JSON-able token describing it, or None.

        Called when the job keeps state; the token is committed in the same transaction as the deliveries it
        covers and handed back by ``context.state.sink_checkpoint(name)`` after a crash. A sink that overrides
        it (and writes with plain functions) must be able to cut its output back to the last committed token:
        it is then called once per group of batches (see ``connector_core.commit_groups``), not per batch.
        Sinks whose writes are durable at once (an API) keep the default and are committed after every batch.
        """
        return None


class Connection(Generic[OptionsT]):
    """A shared, named resource such as an API client, declared under ``connections:`` in the spec.

    Components reference it by name and get it with ``context.connection(name)``; the engine opens every
    connection before the run and closes it after.
    """

    Options: ClassVar[type[Any]] = NoOptions

    def __init__(self, name: str, options: OptionsT, context: RunContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    async def open(self) -> None:
        """Open clients or pools."""

    async def close(self) -> None:
        """Close what :meth:`open` opened."""


#: A class a plugin registers: a component or a connection.
ComponentClass: TypeAlias = type[Component[Any]] | type[Connection[Any]]

"""The streaming engine: runs a job graph with bounded queues, batching per component and an error stream."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from itertools import islice
from typing import Any, TypeVar

from connector_core.collector import run_pace
from connector_core.commit_groups import CommitGroup
from connector_core.components import Component, Connection, Emitter, Failed, Mapper, Sink, Source
from connector_core.context import RunContext
from connector_core.errors import CrmsyncError, RunFailed
from connector_core.fingerprints import fingerprints
from connector_core.lanes import Lanes
from connector_core.ledger import Ledger, delivery_pairs, lists_this_run_only
from connector_core.plugin_manager import PluginHost
from connector_core.progress import Progress
from connector_core.records import Record
from connector_core.report import RunReport
from connector_core.spec.graph import parse_stream, stream_name, topological_order
from connector_core.spec.model import ERRORS_STREAM, ComponentSpec, SyncSpec
from connector_core.state.store import StateStore
from connector_core.state.writer import StateWriter
from connector_core.streams import END, RecordQueue

log = logging.getLogger("crmsync.engine")
T = TypeVar("T")

#: The error rate is judged mid-run only once this many records were read (a first bad row is not a trend).
MIN_RECORDS_FOR_RATE = 100


async def _maybe_await(value: Awaitable[Any] | Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Engine:
    """Runs one job. Build it, then ``await engine.run()`` (or use :func:`run_sync`)."""

    def __init__(
        self,
        spec: SyncSpec,
        host: PluginHost,
        max_error_rate: float | None = None,
        state: StateStore | None = None,
        full_refresh: bool = False,
        plan: bool = False,
    ) -> None:
        self.spec = spec
        #: Plan mode: sources and local mappers run; remote components only estimate (their ``plan``
        #: method), sinks without one write nothing, and the state is only read.
        self.plan = plan
        self.context = RunContext(spec, host)
        self.store = state
        self.full_refresh = full_refresh
        self.ledger: Ledger | None = None
        #: The state store's own thread (with state): the event loop never waits on SQLite or its fsyncs.
        self.writer: StateWriter | None = None
        #: Whether every component works on the loop and nothing there waits for I/O (see :func:`_loop_only`).
        self.loop_only = _loop_only(spec)
        #: The threads where the plain-function methods of sources and sinks run (file and database I/O).
        self.lanes = Lanes(inline=self.loop_only)
        #: The run's event loop (set by :meth:`run`), for a coroutine checkpoint called from a sink's thread.
        self._loop: asyncio.AbstractEventLoop
        self.max_error_rate = spec.settings.max_error_rate if max_error_rate is None else max_error_rate
        components = spec.components
        self.subscribers: dict[tuple[str, str], list[RecordQueue]] = {}
        self.error_queues: list[RecordQueue] = []
        self.queues: dict[str, RecordQueue] = {}
        for name, component in components.items():
            if component.kind == "source":
                continue
            # Sized in the reader's own batches, counted in records: memory stays flat whatever batch size the
            # producer hands over.
            queue = RecordQueue(
                spec.settings.queue_batches * (component.batch_size or component.cls_as(Mapper).batch_size)
            )
            self.queues[name] = queue
            for ref in component.inputs:
                if ref == ERRORS_STREAM:
                    self.error_queues.append(queue)
                else:
                    self.subscribers.setdefault(parse_stream(ref), []).append(queue)
        # Components fed, directly or not, by the error stream cannot route their own failures back into it.
        self.error_side = _downstream(components, {n for n, c in components.items() if ERRORS_STREAM in c.inputs})
        self._error_producers_left = len(components) - len(self.error_side)
        self.nodes: dict[str, Component[Any]] = {}
        #: Sinks whose files list the current run only: every record they get is written, none settles.
        self.run_only = {name for name, c in components.items() if c.kind == "sink" and lists_this_run_only(spec, name)}
        #: Per sink that commits in groups (see connector_core.commit_groups): what it wrote since its last commit.
        self.groups: dict[str, CommitGroup] = {}
        self.component_failures: dict[str, str] = {}
        self.close_failures: list[str] = []
        self.progress = Progress(self.context.stats)
        #: Why the run was asked to stop early (see :meth:`stop`), and why it was cut short (:meth:`abort`).
        self.stopped: str | None = None
        self.aborted: str | None = None
        self._graph: asyncio.Task[None] | None = None

    def stop(self, reason: str) -> None:
        """Stop gracefully: sources read no further, no new remote work starts, what is in flight finishes."""
        self.stopped = self.stopped or reason
        self.context.halt(reason)

    def abort(self, reason: str) -> None:
        """Stop now: cancel every component; what was committed stays committed, the run resumes later."""
        if self.aborted is None and self._graph is not None and not self._graph.done():
            self.aborted = reason
            self._graph.cancel()

    async def run(self) -> RunReport:
        """Run the job to the end and return its report; a fatal error is reported, not raised."""
        context, host = self.context, self.context.host
        failure: str | None = None
        opened: list[Component[Any]] = []
        self._loop = asyncio.get_running_loop()
        if self.store is not None:  # before anything else: a second run of the job must not start at all
            self.writer = StateWriter(inline=self.loop_only)
            settings = self.spec.state_settings
            try:
                self.ledger = Ledger(
                    self.writer.bind(self.store),
                    self.spec.job,
                    settings.max_attempts,
                    self.full_refresh,
                    self.plan,
                    settings.lock_ttl_s,
                )
            except BaseException:
                self.writer.close()
                raise
            context.state = self.ledger.state
        try:
            for name, spec in self.spec.connections.items():
                connection = spec.cls_as(Connection)(name, spec.options, context)
                await connection.open()
                context.connections[name] = connection
            for name in topological_order(self.spec.components):
                node = self._instantiate(self.spec.components[name])
                if self._acts(node):
                    await self._open(name, node)
                    opened.append(node)
                self.nodes[name] = node
            host.hooks.before_sync(context=context)
            self.progress.start()
            self._graph = asyncio.create_task(self._run_graph())
            with run_pace():
                await asyncio.wait([self._graph])
            if self._graph.cancelled():
                raise RunFailed(self.aborted or "run cancelled")
            self._graph.result()
        except* RunFailed as errors:
            failure = context.redactor.text(str(_first(errors)))
        except* Exception as errors:
            first = _first(errors)
            log.debug("run aborted:\n%s", context.redactor.text("".join(traceback.format_exception(first))))
            failure = context.redactor.text(f"{type(first).__name__}: {first}")
        finally:
            self.progress.stop()
            aborted = failure is not None
            failure = await self._close(opened, failure)
            await asyncio.to_thread(self.lanes.close)
        report = self._report(failure)
        if self.ledger is not None and self.writer is not None:
            try:
                self.ledger.finish(report.status, report.to_dict(), settled=not aborted)
            except RunFailed as exc:  # the run could not be settled (its state is on a full disk): say so
                context.mark_failed(context.redactor.text(str(exc)))
                report = self._report(failure)
            finally:
                self.writer.close()
        host.hooks.after_sync(context=context, report=report)
        return report

    async def _run_graph(self) -> None:
        async with asyncio.TaskGroup() as group:
            for name in self.nodes:
                group.create_task(self._run_component(name))

    def _acts(self, node: Component[Any]) -> bool:
        """Whether ``node`` really runs: always, except sinks with no ``plan`` method in plan mode."""
        return not (self.plan and isinstance(node, Sink) and not node.has_plan)

    def _work(self, node: Component[Any]) -> Any:
        """The method that handles a batch: ``process`` (a sink's ``write``), in plan mode ``plan``, or None
        for a sink without one."""
        if self.plan and isinstance(node, Mapper) and node.has_plan:
            return node.plan
        if not self._acts(node):
            return None
        if isinstance(node, Sink) and type(node).process is Sink.process:
            return node.write  # what Sink.process calls: whether it is a coroutine decides where it runs
        return node.process  # type: ignore[attr-defined]

    def _offloaded(self, name: str, method: Callable[..., Any]) -> bool:
        """Whether ``method`` of component ``name`` runs on the component's own thread: plain functions of
        sources and sinks do (they read and write files and databases); coroutines run on the event loop, and
        so do mappers' plain functions, which transform records in memory."""
        if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
            return False
        return self.spec.components[name].kind in ("source", "sink")

    async def _open(self, name: str, node: Component[Any]) -> None:
        """Open a component; an unexpected error (a full disk, a refused connection) names the component."""
        try:
            await self._call(name, node.open)
        except CrmsyncError:
            raise
        except Exception as exc:
            raise RunFailed(f"{name} failed to open: {type(exc).__name__}: {exc}") from exc

    async def _call(self, name: str, method: Callable[..., Any], *args: Any) -> Any:
        """Call a component's method where it belongs (see :meth:`_offloaded`) and await its result."""
        if self._offloaded(name, method):
            return await _maybe_await(await self.lanes.run(name, method, *args))
        return await _maybe_await(method(*args))

    def _work_offloaded(self, name: str, work: Callable[..., Any]) -> bool:
        """Whether a source's or sink's work method (``read``, ``write``) runs on its thread: see ``io_thread``."""
        return self._offloaded(name, work) and self.spec.components[name].cls_as(Component).io_thread

    async def _state(self, function: Callable[..., T], *args: Any) -> T:
        """Run a ledger call on the state store's thread."""
        assert self.writer is not None, "state calls need a state store"
        return await self.writer.run(function, *args)

    def _instantiate(self, spec: ComponentSpec) -> Component[Any]:
        if spec.kind == "source":
            source = spec.cls_as(Source)(spec.name, spec.options, self.context, key=spec.key)
            if self.ledger is not None:
                source.fingerprint_rows = fingerprints
            source.hashes_content = self._keys_read()
            return source
        return spec.cls_as(Component)(spec.name, spec.options, self.context)

    def _keys_read(self) -> bool:
        """Whether anything in the run reads record keys: the state, a lifecycle hook handed records, or a mapper
        or sink (see :meth:`Component.reads_keys`). When nothing does, unkeyed sources skip the content hash."""
        hooks = self.context.host.hooks
        if self.ledger is not None or hooks.observes_batches or hooks.observes_errors:
            return True
        return any(spec.reads_keys for spec in self.spec.components.values())

    async def _close(self, opened: list[Component[Any]], failure: str | None) -> str | None:
        """Close every opened component in two phases: all prepare (the part of finishing that can fail), then
        all close, with ``success`` only if every one prepared; a sink that fails there takes the run with it,
        and every output stays as the run before left it."""
        success = self._failure(failure) is None  # a failed run leaves earlier output files as they were
        if success:
            for node in reversed(opened):
                try:
                    await self._call(node.name, node.prepare)
                except Exception as exc:
                    self.close_failures.append(f"{node.name} failed to close: {type(exc).__name__}: {exc}")
                    success = False
                    break
        # Those whose close can still refuse go first: a refusal then reaches the others before they publish.
        for node in sorted(reversed(opened), key=lambda node: not node.commit_may_fail):
            try:
                await self._call(node.name, node.close, success)
            except Exception as exc:  # reported only when nothing failed before: that would name the cause
                self.close_failures.append(f"{node.name} failed to close: {type(exc).__name__}: {exc}")
                success = False  # the components not closed yet keep their earlier outputs
        for connection in self.context.connections.values():
            try:
                await connection.close()
            except Exception as exc:
                log.warning("connection %s failed to close: %s", connection.name, self.context.redactor.text(str(exc)))
        return failure

    async def _run_component(self, name: str) -> None:
        spec, node = self.spec.components[name], self.nodes[name]
        if isinstance(node, Source):
            await self._run_source(node)
        else:
            await self._run_consumer(spec, node)
        for (producer, _output), queues in self.subscribers.items():
            if producer == name:
                for queue in queues:
                    await queue.put(END)
        if name not in self.error_side:
            self._error_producers_left -= 1
            if self._error_producers_left == 0:
                for queue in self.error_queues:
                    await queue.put(END)

    async def _run_source(self, node: Source[Any]) -> None:
        stats, read = self.context.stats, 0
        async for chunk in self._read(node):
            if self.stopped:
                break
            stats.input_records += len(chunk)
            records = [item for item in chunk if item.__class__ is Record]
            failed = [] if len(records) == len(chunk) else [item for item in chunk if isinstance(item, Failed)]
            if len(records) + len(failed) != len(chunk):  # a plugin bug: never drop records silently
                odd = next(item for item in chunk if item.__class__ is not Record and not isinstance(item, Failed))
                raise RunFailed(f"source {node.name} yielded a {type(odd).__name__}, not a Record or Failed")
            if self.ledger is not None:
                read += len(chunk)
                last = chunk[-1]
                position = (last.record if isinstance(last, Failed) else last).position
                if self.ledger.source_read(node.name, position, read):
                    await self._state(self.ledger.write_positions, self.ledger.take_positions())
                # Without look-ups (a first run) stamping is CPU work only: no hop to the state thread.
                if self.ledger.looks_up:
                    chunk = await self._state(self.ledger.stamp, chunk)
                else:
                    chunk = self.ledger.stamp(chunk)
                if failed:
                    records = [item for item in chunk if item.__class__ is Record]
                    failed = [item for item in chunk if isinstance(item, Failed)]
                else:  # stamping keeps records records (and drops those delivered already)
                    records = chunk  # type: ignore[assignment]
            out = Emitter()
            out.failed = failed
            out.routed["default"] = records
            await self._deliver(node.name, out)

    async def _run_consumer(self, spec: ComponentSpec, node: Component[Any]) -> None:
        queue = self.queues[spec.name]
        size = spec.batch_size or node.batch_size  # type: ignore[attr-defined]
        work = self._work(node)
        # Plain-function calls run one at a time anyway (on the loop or the component's thread); more slots would
        # only let a sink's next write slip in before the previous one's checkpoint was committed.
        calls_at_once = spec.concurrency or node.concurrency  # type: ignore[attr-defined]
        limit = asyncio.Semaphore(calls_at_once if inspect.iscoroutinefunction(work) else 1)
        ends_left = len(spec.inputs)
        buffer: list[Record] = []
        async with asyncio.TaskGroup() as calls:

            async def submit(batch: list[Record]) -> None:
                # Waiting for a free call slot stops this loop from taking more input: the queue fills up and
                # the producer waits in turn, back to the source, which then stops reading.
                await limit.acquire()
                calls.create_task(self._process(spec, node, batch, limit))

            while ends_left:
                item = await queue.get()
                if item is END:
                    ends_left -= 1
                    continue
                buffer.extend(item)
                if len(buffer) >= size:
                    cut = len(buffer) - len(buffer) % size
                    for start in range(0, cut, size):
                        await submit(buffer[start : start + size])
                    buffer = buffer[cut:]
            if buffer:
                await submit(buffer)
        if self.groups.get(spec.name):
            await self._commit_group(spec.name, node)
        if isinstance(node, Mapper) and node.has_finish and not self.plan:
            await self._handle_finish(spec.name, node)

    async def _handle_finish(self, name: str, node: Mapper[Any]) -> None:
        """Let a mapper emit its late results once its input ended; a failure is the component's failure."""
        out = Emitter()
        try:
            await _maybe_await(node.finish(out))
        except RunFailed:
            raise
        except Exception as exc:
            self._component_failed(name, exc, "failed to finish")
        await self._deliver(name, out)

    async def _process(
        self, spec: ComponentSpec, node: Component[Any], batch: list[Record], limit: asyncio.Semaphore
    ) -> None:
        """Handle one batch and hand its results on, holding one of the component's call slots throughout.

        The slot is released only once every output and the error stream took the results: a component in
        front of a slow one waits instead of piling up finished batches (and paying for more API calls).
        """
        try:
            await self._handle(spec, node, batch)
        finally:
            limit.release()

    async def _handle(self, spec: ComponentSpec, node: Component[Any], batch: list[Record]) -> None:
        out = Emitter()
        tracked = spec.kind == "sink" and spec.name not in self.run_only
        if self.ledger is not None and tracked and not spec.outputs and self.ledger.looks_up_deliveries(spec.name):
            batch = await self._state(self.ledger.unseen, spec.name, batch)
        commits = self.ledger is not None and tracked and not self.plan
        try:
            work = self._work(node)
            if commits and spec.name not in self.groups and _rolls_back(node, work):
                self.groups[spec.name] = CommitGroup()
            if work is not None and self._work_offloaded(spec.name, work):
                await self.lanes.run(spec.name, self._write_durably, spec.name, node, work, batch, out, commits)
            else:
                if work is not None:
                    await _maybe_await(work(batch, out))
                if spec.name in self.groups:  # on the loop: the sink's thread is needed only when the group is due
                    self.groups[spec.name].add(_written(batch, out))
                elif commits:
                    await self.lanes.run(spec.name, self._commit_delivered, spec.name, node, batch, out)
        except RunFailed:
            raise
        except Exception as exc:
            out = self._batch_failed(spec.name, exc, batch, set_aside=spec.kind == "sink")
        if spec.kind == "sink":
            self.context.stats.delivered[spec.name] += len(batch) - len(out.failed) - len(out.deferred)
        await self._deliver(spec.name, out)
        if spec.name in self.groups and self.groups[spec.name].due():
            await self._commit_group(spec.name, node)

    def _component_failed(self, name: str, exc: Exception, what: str = "failed") -> str:
        """Record ``exc`` as the failure of component ``name`` (the run then fails); returns the masked reason."""
        reason = self.context.redactor.text(f"{name} {what}: {type(exc).__name__}: {exc}")
        log.error("%s", reason)
        self.component_failures.setdefault(name, reason)
        return reason

    def _batch_failed(self, name: str, exc: Exception, records: list[Record], set_aside: bool) -> Emitter:
        """``name`` failed on ``records``: each is rejected with the reason, or, for a sink's OSError (a full
        disk or a lost mount is no fault of the records), set aside while new API work stops, since its results
        could not be kept."""
        reason = self._component_failed(name, exc)
        out = Emitter()
        if set_aside and isinstance(exc, OSError):
            self.context.halt(reason)
            for record in records:
                out.defer(record, reason)
        else:
            for record in records:
                out.fail(record, reason)
        return out

    async def _commit_group(self, name: str, node: Component[Any]) -> None:
        """Commit what a sink wrote since its last commit (see connector_core.commit_groups). When its
        checkpoint fails (a full disk), every record of the group was written but is not durable: each is set
        aside (an OSError) or rejected, as the failed batch would have been, and no longer counts as delivered. The
        group kept their keys and provenance, not their data: the error stream names them without it."""
        kept = self.groups[name].take()
        try:
            await self.lanes.run(name, self._commit_records, name, node, kept.pairs)
        except RunFailed:
            raise
        except Exception as exc:
            out = self._batch_failed(name, exc, kept.stand_ins(), set_aside=True)
            self.context.stats.delivered[name] -= len(kept.pairs)
            await self._deliver(name, out)

    def _write_durably(
        self,
        name: str,
        node: Component[Any],
        write: Callable[..., Any],
        batch: list[Record],
        out: Emitter,
        commits: bool,
    ) -> None:
        """On a sink's thread: write a batch and, with state, commit it. One unit, so the batches of a sink with
        concurrency > 1 cannot interleave between a write and the checkpoint committed with it."""
        self._on_loop(write(batch, out))
        if commits:
            self._commit_delivered(name, node, batch, out)

    def _commit_delivered(self, name: str, node: Component[Any], batch: list[Record], out: Emitter) -> None:
        """On a sink's thread, after its write: make the batch durable (``checkpoint``) and commit its deliveries
        with the token. Each sink's commits thus follow the order in which its writes became durable. A sink
        that commits in groups adds the batch to its group (committed by :meth:`_commit_group`)."""
        assert self.ledger is not None
        if name in self.groups:
            self.groups[name].add(_written(batch, out))
            return
        self._commit_records(name, node, delivery_pairs(_written(batch, out)))

    def _commit_records(self, name: str, node: Component[Any], pairs: list[tuple[str, str]]) -> None:
        """On a sink's thread: make everything it wrote durable and commit its ``(key, fingerprint)`` pairs with
        the token."""
        assert self.ledger is not None
        self.ledger.delivered(name, pairs, self._on_loop(node.checkpoint()))  # type: ignore[attr-defined]

    def _on_loop(self, value: Any) -> Any:
        """On a component's thread: ``value``, or what it resolves to when a plain method returned an awaitable
        (it runs on the event loop, which is free: it awaits this thread asynchronously)."""
        if inspect.isawaitable(value):
            return asyncio.run_coroutine_threadsafe(_awaited(value), self._loop).result()
        return value

    async def _read(self, node: Source[Any]) -> AsyncIterator[list[Record | Failed]]:
        """The source's records in batches; a plain-function source is read on its own thread."""
        size = self.spec.settings.source_batch_size
        offloaded = self._work_offloaded(node.name, node.read)
        items = await self.lanes.run(node.name, node.read) if offloaded else node.read()
        if isinstance(items, AsyncIterable):
            async for chunk in _async_chunks(items, size):
                yield chunk
            return
        iterator = iter(items)
        while chunk := await self.lanes.run(node.name, _take, iterator, size) if offloaded else _take(iterator, size):
            yield chunk

    async def _deliver(self, name: str, out: Emitter) -> None:
        stats, host = self.context.stats, self.context.host
        outputs = self.spec.components[name].outputs
        for output, records in out.routed.items():
            if output not in outputs:
                for record in records:
                    out.fail(record, f"{name} emitted to undeclared output {output!r}")
                continue
            if not records:
                continue
            stats.streams[stream_name(name, output)] += len(records)
            if output in self.spec.components[name].cls_as(Component).deferred_outputs:
                reason = f"set aside by {stream_name(name, output)}; retried next run"
                if not self.subscribers.get((name, output)):
                    # No sink lists them: the error stream does (marked transient), or a stateless run loses them.
                    await self._route_errors(name, [Failed(record, reason) for record in records], transient=True)
                    continue
                if self.ledger is not None:
                    await self._keep_rejects(name, records, [reason] * len(records), transient=True)
            if host.hooks.observes_batches:
                host.hooks.after_batch(context=self.context, component=name, output=output, records=records)
            for queue in self.subscribers.get((name, output), ()):
                await queue.put(records)
        if out.failed:
            await self._route_errors(name, out.failed)
        if out.deferred:
            await self._route_errors(name, out.deferred, transient=True)

    async def _route_errors(self, name: str, failed: list[Failed], transient: bool = False) -> None:
        """Send rejected records to the error stream; ``transient`` ones are set aside for the next run instead
        (marked so in ``_error``, kept out of the error rate, and retried without using up an attempt)."""
        context = self.context
        stats, host, redactor = context.stats, context.host, context.redactor
        error_records, reasons = [], []
        observed = host.hooks.observes_errors
        for item in failed:
            record, reason = item.record, redactor.text(item.reason)
            reasons.append(reason)
            detail = {"component": name, "reason": reason, "source": record.source, "position": record.position}
            if transient:
                detail["transient"] = True
                stats.set_aside += 1
            else:
                stats.record_error(detail, record.key)
                if observed:
                    host.hooks.on_record_error(context=context, component=name, record=record, reason=reason)
            error_records.append(record.with_data({**record.data, "_error": detail}))
        # The state keeps each record as it came, beside the reason, source and position its `_error` repeats.
        records = [item.record for item in failed]
        if transient:
            if self.ledger is not None:
                await self._keep_rejects(name, records, reasons, transient=True)
            await self._to_error_stream(name, error_records)
            return
        limit = self.max_error_rate
        if limit is not None and stats.input_records >= MIN_RECORDS_FOR_RATE and not context.halted:
            rate = stats.error_count / stats.input_records
            if rate > limit:
                context.halt(f"error rate {rate:.2%} exceeds max_error_rate {limit:.2%}")
        if self.spec.settings.stop_on_error:
            first = error_records[0].data["_error"]
            raise RunFailed(f"stop_on_error: {name} rejected {error_records[0].provenance}: {first['reason']}")
        if self.ledger is not None:
            await self._keep_rejects(name, records, reasons)
        await self._to_error_stream(name, error_records)

    async def _keep_rejects(
        self, name: str, records: list[Record], reasons: list[str], transient: bool = False
    ) -> None:
        """Hand rejected (or set-aside) records to the ledger; write what it keeps once there are enough."""
        assert self.ledger is not None
        if self.ledger.rejected(name, records, reasons, transient):
            await self._state(self.ledger.write_rejects, self.ledger.take_rejects())

    async def _to_error_stream(self, name: str, error_records: list[Record]) -> None:
        if name in self.error_side:
            for record in error_records:
                log.error("error sink %s could not write %s: %s", name, record.provenance, record.data["_error"])
            return
        self.context.stats.streams[ERRORS_STREAM] += len(error_records)
        for queue in self.error_queues:
            await queue.put(error_records)

    def _failure(self, failure: str | None) -> str | None:
        """Why the run fails — failed components, reasons given with :meth:`RunContext.mark_failed` and
        ``failure`` (it was aborted), else components that failed to close, else an error rate over the
        limit — or None when it succeeds."""
        stats = self.context.stats
        # What went wrong first comes first: a sink's full disk, then the state write that failed after it.
        reasons = [*self.component_failures.values(), *self.context.failures, *([failure] if failure else [])]
        reasons = reasons or self.close_failures
        if reasons:
            failure = "; ".join(dict.fromkeys(reasons))
        rate = stats.error_count / stats.input_records if stats.input_records else 0.0
        if failure is None and self.max_error_rate is not None and rate > self.max_error_rate:
            failure = f"error rate {rate:.2%} exceeds max_error_rate {self.max_error_rate:.2%}"
        if failure is None and self.max_error_rate is None and stats.input_records and rate >= 1:
            # The default policy: some rejects are a normal run, a run that delivered nothing is not.
            failure = f"all {stats.input_records} input records were rejected (set max_error_rate: 1 to allow it)"
        return failure

    def _report(self, failure: str | None) -> RunReport:
        stats, redactor = self.context.stats, self.context.redactor
        failure = self._failure(failure)
        if failure is None and stats.set_aside:
            # The outputs are complete for what was delivered (so they are published), but the job is not done:
            # a scheduled run must not look green while Apollo was down.
            failure = (
                f"{stats.set_aside} records were set aside after transient failures "
                "(in the error stream, marked transient); a run with state retries them"
            )
        rate = stats.error_count / stats.input_records if stats.input_records else 0.0
        if failure is not None:  # close errors and mark_failed reasons are plugin text: mask them too
            failure = redactor.text(failure)
        extra = {name: build() for name, build in stats.sections.items()}
        if self.ledger is not None:
            extra["state"] = {
                "run_id": self.ledger.run_id,
                "skipped_unchanged": self.ledger.skipped,
                "already_delivered": dict(self.ledger.already_delivered),
            }
        return RunReport(
            status="stopped" if self.stopped else "failed" if failure else "success",
            job=self.spec.job,
            started_at=stats.started_at,
            duration_s=round(time.monotonic() - stats.started, 3),
            input_records=stats.input_records,
            streams=dict(stats.streams),
            delivered=dict(stats.delivered),
            errors={
                "count": stats.error_count,
                "rate": round(rate, 4),
                "set_aside": stats.set_aside,
                "first": redactor.data(stats.first_errors),
            },
            failure=failure,
            extra=redactor.data(extra),
        )


def _written(batch: list[Record], out: Emitter) -> list[Record]:
    """The records of ``batch`` a sink wrote: those it did not fail or set aside."""
    if not out.failed and not out.deferred:
        return batch
    failed = {id(item.record) for item in (*out.failed, *out.deferred)}
    return [record for record in batch if id(record) not in failed]


def _rolls_back(node: Component[Any], work: Any) -> bool:
    """Whether ``node`` is a sink that can commit in groups: plain-function writes, and a checkpoint of its own
    (a token it can cut its output back to after a crash). See connector_core.commit_groups."""
    if not isinstance(node, Sink) or work is None or inspect.iscoroutinefunction(work):
        return False
    checkpoint = type(node).checkpoint
    return checkpoint is not Sink.checkpoint and not inspect.iscoroutinefunction(checkpoint)


async def _async_chunks(items: Any, size: int) -> AsyncIterator[list[Any]]:
    """Batches of ``size`` from an async iterable."""
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _take(iterator: Iterator[Any], size: int) -> list[Any]:
    """The next ``size`` items (fewer at the end): one hop to a source's thread per batch, not per record."""
    return list(islice(iterator, size))


async def _awaited(value: Awaitable[T]) -> T:
    return await value


def _first(error: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


#: Methods of a component the engine calls; any of them a coroutine means the run has work waiting on the loop.
_ENGINE_CALLS = ("open", "read", "process", "write", "plan", "finish", "checkpoint", "prepare", "close")


def _loop_only(spec: SyncSpec) -> bool:
    """Whether the whole run can work on the event loop's thread: no connection (an API client), no coroutine
    work and no source or sink wanting a thread of its own (``io_thread``). Nothing on the loop then waits
    for I/O, so the state calls and the sinks' commits run there too: on threads they would only trade the
    GIL with the loop, a hand-off per call (on a 2-core VM a first run with state spent ~20% of its CPU so)."""
    if spec.connections:
        return False
    for component in spec.components.values():
        cls = component.cls_as(Component)
        if component.kind != "mapper" and cls.io_thread:
            return False
        for method in filter(None, (getattr(cls, name, None) for name in _ENGINE_CALLS)):
            if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
                return False
    return True


def _downstream(components: dict[str, ComponentSpec], roots: set[str]) -> set[str]:
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for name, spec in components.items():
            if name not in found and any(parse_stream(ref)[0] in found for ref in spec.inputs):
                found.add(name)
                changed = True
    return found


def run_sync(spec: SyncSpec, host: PluginHost, **options: Any) -> RunReport:
    """Run (or, with ``plan=True``, estimate) a job from synchronous code; ``options`` as for :class:`Engine`."""
    return asyncio.run(Engine(spec, host, **options).run())

"""Pieces the file sources and sinks share: input checks, metadata columns and the atomic sink base."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO, TypeVar

import attrs

from connector_core.components import LocalFile, Sink
from connector_core.errors import RunFailed
from connector_core.ledger import lists_this_run_only

from .atomic import AtomicFile, JournaledFile, merge

log = logging.getLogger("crmsync.files")

if TYPE_CHECKING:
    from connector_core.components import Emitter
    from connector_core.context import RunContext
    from connector_core.records import Record

#: Columns the ``metadata`` option adds, so every output row traces back to its input.
METADATA_FIELDS: tuple[str, ...] = ("_key", "_source", "_position")


def require_file(path: Path, component: str) -> None:
    """Fail the run up front, naming the path, when an input file is missing (better than a traceback later)."""
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise RunFailed(f"{component}: input file {path} {problem}")


def with_metadata(record: Record) -> dict[str, Any]:
    """The record's data plus its key and provenance under :data:`METADATA_FIELDS`."""
    return {**record.data, "_key": record.key, "_source": record.source, "_position": record.position}


@attrs.frozen
class FileSinkOptions:
    """Options every file sink takes."""

    path: Path
    """The output file (relative paths resolve against the spec's folder); parent folders are created."""
    metadata: bool = False
    """Add ``_key``, ``_source`` and ``_position`` to every row so outputs trace back to inputs."""


#: The options class of a file sink: ``FileSinkOptions`` or a subclass adding format-specific options.
FileSinkOptionsT = TypeVar("FileSinkOptionsT", bound=FileSinkOptions)


class FileSink(Sink[FileSinkOptionsT]):
    """Base of sinks that write one file per run, atomically.

    :meth:`open` starts a hidden partial file beside the target; subclasses append to :attr:`handle` and add to
    :attr:`written`; :meth:`close` renames the partial file onto the target.

    A failed run (``close(success=False)``) leaves the previous file exactly as it was. Without state its
    records are kept hidden beside the target (``.<name>.failed``) and written again by the next run; with
    state the part file of its committed batches stays beside the target and the next run merges it first (see
    :class:`JournaledFile`). Files fed by the error stream or by set-aside outputs are the run's own account
    and are written, failed or not (unless their own write failed).
    """

    Options: ClassVar[type] = FileSinkOptions

    @classmethod
    def output_file(cls, options: FileSinkOptions) -> LocalFile:
        return LocalFile("path", options.path.resolve())

    @classmethod
    def reads_keys(cls, options: FileSinkOptions) -> bool:
        return options.metadata  # the `_key` column; the rows alone need none

    # Encoding rows into a 1 MiB buffer is CPU work; the fsyncs are in checkpoint() and close(), off the loop.
    io_thread: ClassVar[bool] = False

    def __init__(self, name: str, options: FileSinkOptionsT, context: RunContext | None) -> None:
        # A None context is fine (file sinks never use it), which lets tests drive a sink without an engine.
        super().__init__(name, options, context)  # type: ignore[arg-type]
        self.target = AtomicFile(options.path, self.output_encoding())
        #: The open partial file, set by :meth:`open`.
        self.handle: TextIO
        #: Records handed to the file so far in this run.
        self.written = 0
        #: The first write error (a full disk): what the file holds after it is unknown, so nothing more is
        #: written and the run's output is not kept.
        self.broken: OSError | None = None

    def output_encoding(self) -> str:
        """The text encoding of the output file; UTF-8 unless a subclass offers a choice."""
        return "utf-8"

    def open(self) -> None:
        state = self.context.state if self.context is not None else None
        self.journal: JournaledFile | None = None
        # Files of the error stream and of set-aside records list this run's (the state keeps their history):
        # a record a later run settles must not stay in them. They are the run's own account, failed or not.
        self.reports_run = self.context is not None and lists_this_run_only(self.context.spec, self.name)
        if state is None or self.reports_run:
            self.handle = self.target.open()
            return
        # The job keeps state: the file accumulates every run's records, each exactly once (see JournaledFile).
        # Without a checkpoint the state starts over, and so does the file: nothing it holds is recorded.
        previous = state.sink_checkpoint(self.name)
        if previous and not previous.get("merged"):
            previous = merge(previous)
            state.save_checkpoint(self.name, previous)
        if previous:
            self._check_left_as(previous)
        fresh = previous is None
        self.journal = JournaledFile(self.options.path, self.output_encoding(), state.run_id, fresh=fresh)
        self.handle = self.journal.open()

    def _check_left_as(self, checkpoint: dict[str, Any]) -> None:
        """Stop when the output is not as the last run left it: appending to a file edited outside crmsync would
        mix its records with someone else's. A missing file (a CI runner's fresh folder, or deleted) is started
        over, with a warning: its earlier records are wherever that file went."""
        path = self.options.path
        if "offset" not in checkpoint or "base" not in checkpoint:  # not a file checkpoint: nothing to compare
            return
        expected = int(checkpoint["offset"]) + (0 if checkpoint.get("fresh") else int(checkpoint["base"]))
        if not path.exists():
            if expected:
                log.warning(
                    "%s: %s is missing (written on another machine, or deleted): it will hold this run's records "
                    "only; the %d bytes earlier runs wrote are not rewritten",
                    self.name,
                    path,
                    expected,
                )
            return
        size = path.stat().st_size
        if size != expected:
            raise RunFailed(
                f"{self.name}: {path} changed outside crmsync since the last run ({size:,} bytes; it left "
                f"{expected:,}); restore it, or start its deliveries over with `crmsync state reset SPEC --delivered`"
            )

    @property
    def appending(self) -> bool:
        """True when this run adds to a file earlier runs wrote (a CSV header is then already there)."""
        return self.journal is not None and self.journal.base > 0

    @contextlib.contextmanager
    def _breaking(self) -> Iterator[None]:
        """A write to the file that fails (a full disk) leaves its content unknown: remembered as ``broken``."""
        try:
            yield
        except OSError as exc:
            self.broken = exc
            raise

    def process(self, batch: list[Record], out: Emitter) -> None:
        if self.broken is not None:
            raise OSError(self.broken.errno, f"{self.options.path} failed earlier in this run: {self.broken.strerror}")
        with self._breaking():
            self.write(batch, out)

    def checkpoint(self) -> Any:
        with self._breaking():
            return self.journal.checkpoint() if self.journal is not None else None

    def prepare(self) -> None:
        if self.broken is not None:  # the file's content is unknown: the run must not keep it
            raise self.broken
        with self._breaking():
            if self.journal is not None:
                self.journal.prepare()
            else:
                self.target.prepare()

    def close(self, success: bool) -> None:
        if self.journal is not None:
            if success:
                self.context.state.save_checkpoint(self.name, self.journal.commit())  # type: ignore[union-attr]
                return
            self.journal.abandon()
            kept = "the next run adds those it delivered"
        elif (success or self.reports_run) and self.broken is None:
            # A failed run's rejects and set-aside records are listed too: they say why it failed.
            self.target.commit()
            return
        else:
            kept = self._set_aside()
        if self.written and self.context is not None:
            self.context.log.warning(
                "%s: the run failed; %s is left as it was (%d record(s) of this run: %s)",
                self.name,
                self.options.path,
                self.written,
                kept,
            )

    def _set_aside(self) -> str:
        """Keep a failed run's records beside the target, unless the file's own write failed (its content is
        then unknown); says where they are."""
        if self.written and self.broken is None:
            try:
                return f"kept in {self.target.set_aside()}"
            except OSError as exc:  # the disk is full: the earlier file matters more than this run's records
                self.target.discard()
                return f"not kept ({exc.strerror})"
        self.target.discard()
        return "not kept"

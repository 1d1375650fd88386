"""Pieces the file sources and sinks share: input checks, metadata columns and the atomic sink base."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import attrs

from connector_core.components import Sink
from connector_core.errors import RunFailed
from connector_core.spec.model import ERRORS_STREAM

from .atomic import AtomicFile, JournaledFile, merge

if TYPE_CHECKING:
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


class FileSink(Sink):
    """Base of sinks that write one file per run, atomically.

    :meth:`open` starts a hidden partial file beside the target; subclasses append to :attr:`handle` and add to
    :attr:`written`; :meth:`close` renames the partial file onto the target.

    On ``close(success=False)`` the records written so far are still committed: the engine has already
    counted them as delivered, and a file that silently lacks them would contradict the run report. A failed
    run that wrote nothing leaves the previous file in place rather than replacing it with an empty one.
    """

    Options: ClassVar[type] = FileSinkOptions
    # Encoding rows into a 1 MiB buffer is CPU work; the fsyncs are in checkpoint() and close(), off the loop.
    io_thread: ClassVar[bool] = False

    def __init__(self, name: str, options: FileSinkOptions, context: RunContext | None) -> None:
        # A None context is fine (file sinks never use it), which lets tests drive a sink without an engine.
        super().__init__(name, options, context)  # type: ignore[arg-type]
        self.options: FileSinkOptions = options
        self.target = AtomicFile(options.path, self.output_encoding())
        #: The open partial file, set by :meth:`open`.
        self.handle: TextIO
        #: Records handed to the file so far in this run.
        self.written = 0

    def output_encoding(self) -> str:
        """The text encoding of the output file; UTF-8 unless a subclass offers a choice."""
        return "utf-8"

    def open(self) -> None:
        state = self.context.state if self.context is not None else None
        self.journal: JournaledFile | None = None
        # Files of the error stream and of set-aside records list this run's (the state keeps their history):
        # a record a later run settles must not stay in them.
        if state is None or self._lists_this_run_only():
            self.handle = self.target.open()
            return
        # The job keeps state: the file accumulates every run's records, each exactly once (see JournaledFile).
        previous = state.sink_checkpoint(self.name)
        if previous and not previous.get("merged"):
            state.save_checkpoint(self.name, merge(previous))
        self.journal = JournaledFile(self.options.path, self.output_encoding(), state.run_id)
        self.handle = self.journal.open()

    def _lists_this_run_only(self) -> bool:
        spec = self.context.spec
        for ref in spec.components[self.name].inputs:
            producer, _, output = ref.partition(".")
            if ref == ERRORS_STREAM or output in spec.components[producer].cls.deferred_outputs:
                return True
        return False

    @property
    def appending(self) -> bool:
        """True when this run adds to a file earlier runs wrote (a CSV header is then already there)."""
        return self.journal is not None and self.journal.base > 0

    def checkpoint(self) -> Any:
        return self.journal.checkpoint() if self.journal is not None else None

    def close(self, success: bool) -> None:
        if self.journal is not None:
            self.context.state.save_checkpoint(self.name, self.journal.commit())  # type: ignore[union-attr]
        elif success or self.written:
            self.target.commit()
        else:
            self.target.discard()

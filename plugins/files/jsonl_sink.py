"""The ``jsonl`` sink: one JSON object per line, written atomically per run."""

from __future__ import annotations

from typing import ClassVar

from connector_core.components import Emitter
from connector_core.json_encoding import json_lines
from connector_core.records import Record

from .base import FileSink, FileSinkOptions, with_metadata

#: Lines encoded and handed to the file at once.
LINES_AT_ONCE = 100


class JsonlSink(FileSink[FileSinkOptions]):
    """Writes each record's data as one line of JSON (UTF-8, non-ASCII kept as is, unknown types as strings).

    The file appears (or is replaced) when the run ends; see :class:`~crmsync_plugins.files.base.FileSink`.
    """

    Options: ClassVar[type] = FileSinkOptions

    def write(self, batch: list[Record], out: Emitter) -> None:
        if self.options.metadata:
            values = [with_metadata(record) for record in batch]
        else:
            values = [record.data for record in batch]
        # A write per hundred lines: far cheaper than one per line, and the text of a whole batch (~0.4 MB) would
        # be a fresh allocation for malloc to map and page in again for every batch.
        for start in range(0, len(values), LINES_AT_ONCE):
            self.handle.write(json_lines(values[start : start + LINES_AT_ONCE]))
        self.written += len(batch)

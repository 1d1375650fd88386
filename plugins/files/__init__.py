"""Built-in file plugins: CSV, JSONL and SQLite sources and sinks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core import hookimpl

from .csv_sink import CsvSink
from .csv_source import CsvSource
from .jsonl_sink import JsonlSink
from .jsonl_source import JsonlSource
from .sqlite_sink import SqliteSink
from .sqlite_source import SqliteSource

if TYPE_CHECKING:
    from connector_core.registry import ComponentRegistry


@hookimpl
def register_sources(registry: ComponentRegistry) -> None:
    """The ``csv``, ``jsonl`` and ``sqlite`` sources."""
    registry.add("csv", CsvSource)
    registry.add("jsonl", JsonlSource)
    registry.add("sqlite", SqliteSource)


@hookimpl
def register_sinks(registry: ComponentRegistry) -> None:
    """The ``csv``, ``jsonl`` and ``sqlite`` sinks."""
    registry.add("csv", CsvSink)
    registry.add("jsonl", JsonlSink)
    registry.add("sqlite", SqliteSink)

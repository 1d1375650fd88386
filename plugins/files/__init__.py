"""Built-in file plugins: CSV, JSONL and SQLite sources and sinks.

The component modules are imported when a registry is first filled, not with the plugin: listing the plugins
for ``crmsync --help`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core import hookimpl

if TYPE_CHECKING:
    from connector_core.registry import ComponentRegistry


@hookimpl
def register_sources(registry: ComponentRegistry) -> None:
    """The ``csv``, ``jsonl`` and ``sqlite`` sources."""
    from .csv_source import CsvSource
    from .jsonl_source import JsonlSource
    from .sqlite_source import SqliteSource

    registry.add("csv", CsvSource)
    registry.add("jsonl", JsonlSource)
    registry.add("sqlite", SqliteSource)


@hookimpl
def register_sinks(registry: ComponentRegistry) -> None:
    """The ``csv``, ``jsonl`` and ``sqlite`` sinks."""
    from .csv_sink import CsvSink
    from .jsonl_sink import JsonlSink
    from .sqlite_sink import SqliteSink

    registry.add("csv", CsvSink)
    registry.add("jsonl", JsonlSink)
    registry.add("sqlite", SqliteSink)

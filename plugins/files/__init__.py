"""Built-in file plugins: CSV, JSONL and SQLite sources and sinks.

The components are registered by place (``registry.add_lazy``): a component's module is imported when a spec
uses it, not with the plugin nor when a registry is filled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core import hookimpl

if TYPE_CHECKING:
    from connector_core.registry import ComponentRegistry


@hookimpl
def register_sources(registry: ComponentRegistry) -> None:
    """The ``csv``, ``jsonl`` and ``sqlite`` sources."""
    registry.add_lazy("csv", f"{__name__}.csv_source:CsvSource")
    registry.add_lazy("jsonl", f"{__name__}.jsonl_source:JsonlSource")
    registry.add_lazy("sqlite", f"{__name__}.sqlite_source:SqliteSource")


@hookimpl
def register_sinks(registry: ComponentRegistry) -> None:
    """The ``csv``, ``jsonl`` and ``sqlite`` sinks."""
    registry.add_lazy("csv", f"{__name__}.csv_sink:CsvSink")
    registry.add_lazy("jsonl", f"{__name__}.jsonl_sink:JsonlSink")
    registry.add_lazy("sqlite", f"{__name__}.sqlite_sink:SqliteSink")

"""Durable job state: what was delivered, rejects to retry, API write intents, the enrichment cache, run history.

:class:`StateStore` is the interface the engine and plugins use; :class:`SqliteStateStore` the default
implementation, imported on first use (a command that never opens a state does not load SQLite).
"""

from typing import Any

from connector_core.state.store import JobLocked, JobState, StateStore

__all__ = ["JobLocked", "JobState", "SqliteStateStore", "StateStore"]


def __getattr__(name: str) -> Any:
    if name == "SqliteStateStore":
        from connector_core.state.sqlite import SqliteStateStore

        return SqliteStateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Durable job state: what was delivered, rejects to retry, API write intents, the enrichment cache, run history.

:class:`StateStore` is the interface the engine and plugins use; :class:`SqliteStateStore` the default
implementation (a Postgres store can follow without touching the engine).
"""

from connector_core.state.sqlite import SqliteStateStore
from connector_core.state.store import JobLocked, JobState, StateStore

__all__ = ["JobLocked", "JobState", "SqliteStateStore", "StateStore"]

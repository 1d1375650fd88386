"""Open the state store a command asked for: a SQLite file or a PostgreSQL URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core.state.postgres import is_url

if TYPE_CHECKING:
    from connector_core.spec.model import SyncSpec
    from connector_core.state.store import StateStore


def state_target(spec: SyncSpec, override: str | None = None) -> str:
    """Where the job's state lives: ``override`` (``--state``), the spec's ``state.url`` or ``state.path``, or
    ``.crmsync/state.db`` beside the spec."""
    if override:
        return override
    settings = spec.state_settings
    return settings.url or str(spec.state_path())


def open_store(target: str) -> StateStore:
    """A store for ``target``: PostgreSQL for a ``postgresql://`` URL, else SQLite at that path."""
    if is_url(target):
        from connector_core.state.postgres import PostgresStateStore

        return PostgresStateStore(target)
    from pathlib import Path

    from connector_core.state.sqlite import SqliteStateStore

    return SqliteStateStore(Path(target))

"""The validated sync spec: frozen attrs classes the engine runs from."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any, Literal

import attrs

#: The stream every rejected record goes to; only sinks may read it.
ERRORS_STREAM = "errors"


@attrs.frozen
class JobSettings:
    """Run-wide settings, under ``settings:`` in the spec."""

    #: Fail the run (exit 1) when more than this fraction of input records end in the error stream.
    max_error_rate: float | None = None
    #: How many of its reader's batches a stream holds (counted in records); bounds memory, applies back-pressure.
    queue_batches: int = 4
    #: Stop at the first record error instead of going on.
    stop_on_error: bool = False
    #: Records per source batch.
    source_batch_size: int = 1000


@attrs.frozen
class StateSettings:
    """Durable state, under ``state:`` in the spec (or enabled with ``--state``)."""

    #: The SQLite database; default ``.crmsync/state.db`` beside the spec.
    path: Path | None = None
    #: A rejected record is retried by later runs until it has failed this many times.
    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    #: How long an enrichment result is reused, in days.
    cache_ttl_days: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))


@attrs.frozen
class RawSpec:
    """The top level of a spec file as written; components are checked against their plugins afterwards."""

    version: Literal[1]
    job: str
    settings: JobSettings = JobSettings()
    state: StateSettings | None = None
    #: Environment variables whose values are not secrets (never redacted), e.g. a base URL.
    public_env: list[str] = attrs.Factory(list)
    connections: dict[str, dict[str, Any]] = attrs.Factory(dict)
    sources: dict[str, dict[str, Any]] = attrs.Factory(dict)
    mappers: dict[str, dict[str, Any]] = attrs.Factory(dict)
    sinks: dict[str, dict[str, Any]] = attrs.Factory(dict)


@attrs.frozen
class ComponentSpec:
    """One component of the job graph, its plugin class resolved and its options structured."""

    name: str
    kind: Literal["source", "mapper", "sink", "connection"]
    type: str
    cls: builtins.type[Any]  # `type` alone would name the field above
    options: Any
    inputs: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    batch_size: int | None = None
    concurrency: int | None = None
    #: Where it was declared, e.g. ``$.sinks.out`` (for messages).
    path: str = ""

    @property
    def outputs(self) -> tuple[str, ...]:
        """The streams this component can emit."""
        return getattr(self.cls, "outputs", ())


@attrs.frozen
class SyncSpec:
    """A loaded, validated job."""

    job: str
    path: Path
    settings: JobSettings
    connections: dict[str, ComponentSpec]
    components: dict[str, ComponentSpec]
    #: Values interpolated from the environment, redacted from every log line, report and error.
    secrets: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    #: ``None`` when the spec does not ask for durable state.
    state: StateSettings | None = None

    @property
    def base_dir(self) -> Path:
        """The spec file's folder; relative paths in the spec resolve against it."""
        return self.path.parent

    @property
    def state_settings(self) -> StateSettings:
        """The state settings, defaults when the spec has none (state enabled from the command line)."""
        return self.state or StateSettings()

    def state_path(self, override: Path | None = None) -> Path:
        """Where the state database lives: ``override``, the spec's ``state.path``, or ``.crmsync/state.db``."""
        return override or self.state_settings.path or self.base_dir / ".crmsync" / "state.db"

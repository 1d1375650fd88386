"""The validated sync spec: frozen attrs classes the engine runs from."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

if TYPE_CHECKING:
    from connector_core.components import ComponentClass, LocalFile

#: A base class :meth:`ComponentSpec.cls_as` narrows a registered class to.
BaseT = TypeVar("BaseT")

#: The stream every rejected record goes to; only sinks may read it.
ERRORS_STREAM = "errors"

#: An option type for one plain value (text, number, true/false), never a list or a mapping; a YAML date
#: (``2024-01-01``) arrives as its text. Use ``Scalar | None`` for an optional one.
Scalar = str | int | float | bool


@attrs.frozen
class JobSettings:
    """Run-wide settings, under ``settings:`` in the spec."""

    #: Fail the run (exit 1) when more than this fraction of input records end in the error stream.
    max_error_rate: float | None = None
    #: Batches buffered between two components; bounds memory and applies back-pressure.
    queue_batches: int = 4
    #: Stop at the first record error instead of going on.
    stop_on_error: bool = False
    #: Records per source batch. A batch crosses every stage while its records are still in the CPU's cache:
    #: at 1,000 (and 500 a mapper's batch) a 300k-row file job spent 15-20% more CPU than at 250, its records
    #: evicted (a core's L2 cache holds ~1 MB, ~1,000 CSV rows) before the next stage read them.
    source_batch_size: int = 250


@attrs.frozen
class StateSettings:
    """Durable state, under ``state:`` in the spec: on by default; ``state: false`` (or ``--no-state``) turns
    it off for pure conversions."""

    #: The SQLite database; default ``.crmsync/state.db`` beside the spec.
    path: Path | None = None
    #: A PostgreSQL database instead of the file, e.g. ``${CRMSYNC_STATE_URL}`` (shared by a team's runners).
    url: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.matches_re(r"postgres(ql)?://.+"))
    )
    #: The run lease expires this many seconds after its last renewal (renewed every third of it): a run killed
    #: on a vanished CI runner blocks the job for at most this long.
    lock_ttl_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
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
    #: ``state: false`` structures to None (no state); absent means the defaults.
    state: StateSettings | None = StateSettings()
    #: Plugin modules in ``.py`` files, relative to the spec, loaded for this job only.
    plugins: list[Path] = attrs.Factory(list)

    #: Environment variables whose values are not secrets (never redacted), e.g. a base URL.
    public_env: list[str] = attrs.Factory(list)
    # Each component's body is checked by the loader against its plugin (a body that is no mapping included).
    connections: dict[str, Any] = attrs.Factory(dict)
    sources: dict[str, Any] = attrs.Factory(dict)
    mappers: dict[str, Any] = attrs.Factory(dict)
    sinks: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class ComponentSpec:
    """One component of the job graph, its plugin class resolved and its options structured."""

    name: str
    kind: Literal["source", "mapper", "sink", "connection"]
    type: str
    cls: ComponentClass
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

    def cls_as(self, base: builtins.type[BaseT]) -> builtins.type[BaseT]:
        """:attr:`cls`, typed as the ``base`` it subclasses (each registry admits only subclasses of its base)."""
        if not issubclass(self.cls, base):
            raise TypeError(f"{self.path}: {self.type!r} is not a {base.__name__}")
        return self.cls

    @property
    def output_file(self) -> LocalFile | None:
        """The local file this component writes: a sink's :meth:`~connector_core.components.Sink.output_file`."""
        from connector_core.components import Sink

        return self.cls_as(Sink).output_file(self.options) if self.kind == "sink" else None

    @property
    def input_file(self) -> LocalFile | None:
        """The local file this component reads: a source's :meth:`~connector_core.components.Source.input_file`."""
        from connector_core.components import Source

        return self.cls_as(Source).input_file(self.options) if self.kind == "source" else None

    @property
    def reads_keys(self) -> bool:
        """Whether this mapper or sink reads record keys: its class's
        :meth:`~connector_core.components.Component.reads_keys` (sources make keys; connections get no records)."""
        from connector_core.components import Component

        return self.kind in ("mapper", "sink") and self.cls_as(Component).reads_keys(self.options)


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
    #: ``None`` when the spec turns durable state off (``state: false``).
    state: StateSettings | None = StateSettings()

    @property
    def base_dir(self) -> Path:
        """The spec file's folder; relative paths in the spec resolve against it."""
        return self.path.parent

    @property
    def state_settings(self) -> StateSettings:
        """The state settings, defaults when the spec turned state off (and ``--state`` turned it on again)."""
        return self.state or StateSettings()

    def state_path(self, override: Path | None = None) -> Path:
        """Where the state database lives: ``override``, the spec's ``state.path``, or ``.crmsync/state.db``."""
        return override or self.state_settings.path or self.base_dir / ".crmsync" / "state.db"

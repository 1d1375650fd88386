"""What every component of a run can reach: the spec, shared connections, counters and the redactor."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from connector_core.errors import CrmsyncError
from connector_core.redact import Redactor
from connector_core.report import RunStats

if TYPE_CHECKING:
    from connector_core.components import Connection
    from connector_core.plugin_manager import PluginHost
    from connector_core.spec.model import SyncSpec
    from connector_core.state.store import JobState


class RunContext:
    """One run's shared state, handed to every component and lifecycle hook."""

    def __init__(self, spec: SyncSpec, host: PluginHost) -> None:
        self.spec = spec
        self.host = host
        self.job = spec.job
        self.stats = RunStats()
        self.redactor = Redactor(spec.secrets)
        self.log = logging.getLogger(f"crmsync.job.{spec.job}")
        self.connections: dict[str, Connection[Any]] = {}
        #: The job's durable state (``None`` unless the spec or ``--state`` enables it).
        self.state: JobState | None = None
        #: Why new remote work stopped (see :meth:`halt`), or None.
        self.halted: str | None = None
        #: Reasons the run is failing although it goes on (e.g. credits ran out: the rest is skipped).
        self.failures: list[str] = []

    def connection(self, name: str) -> Any:
        """The opened connection declared as ``name`` under ``connections:``."""
        try:
            return self.connections[name]
        except KeyError:
            raise CrmsyncError(f"connection {name!r} is not open in this run") from None

    def mark_failed(self, reason: str) -> None:
        """Let the run finish its flow but end as failed (exit 1) with ``reason``."""
        if reason not in self.failures:
            self.failures.append(reason)

    def halt(self, reason: str) -> None:
        """Stop new remote work: components check :attr:`halted` and set records aside instead of sending
        them. The run still drains what is in flight, then ends as failed."""
        if self.halted is None:
            self.halted = reason
            self.log.error("stopping new API work: %s", reason)
        self.mark_failed(reason)

    def add_report_section(self, name: str, build: Any) -> None:
        """Add a section to the run report; ``build()`` is called once when the run ends."""
        self.stats.sections[name] = build

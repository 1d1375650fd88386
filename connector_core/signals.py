"""Graceful stop on SIGTERM and SIGINT (what CI runners send when a run is cancelled or times out).

The first signal stops reading the sources and starts no new remote work; calls already in flight get
``grace_s`` seconds to finish and be committed, then the run ends with its report written and its lease
released. A second signal, or the grace period running out, cancels what is still in flight at once (the
ledger's write intents make that safe to resume). The exit code is then 128 + the signal: 130 or 143.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # asyncio and attrs are imported where a run needs them: the CLI reads DEFAULT_GRACE_S for `crmsync --help`.
    from connector_core.engine import Engine
    from connector_core.report import RunReport

log = logging.getLogger("crmsync")

#: How long in-flight calls may take after the first signal. GitHub Actions sends SIGTERM 7.5 s after the
#: SIGINT of a cancellation, then SIGKILL 2.5 s later: a graceful stop must fit well inside that.
DEFAULT_GRACE_S = 5.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Runs an engine with SIGINT/SIGTERM handlers installed; :attr:`signum` is the first signal received."""

    def __init__(self, engine: Engine, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.engine = engine
        self.grace_s = grace_s
        self.signum: int | None = None

    async def run(self) -> RunReport:
        """``await engine.run()``, stopping it gracefully on the first signal and at once on the second."""
        import asyncio

        import attrs

        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self._received, signum)
        try:
            report = await self.engine.run()
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
        if self.signum is None:
            return report
        return attrs.evolve(report, extra={**report.extra, "stopped_by": signal.Signals(self.signum).name})

    def _received(self, signum: int) -> None:
        import asyncio

        name = signal.Signals(signum).name
        if self.signum is not None:
            log.warning("%s again: stopping at once", name)
            self.engine.abort(f"stopped at once by a second signal ({name})")
            return
        self.signum = signum
        log.warning(
            "%s: stopping; no new records are read, calls in flight get %.1fs to finish (send it again to stop now)",
            name,
            self.grace_s,
        )
        self.engine.stop(f"stopped by {name}")
        asyncio.get_running_loop().call_later(
            self.grace_s, self.engine.abort, f"stopped by {name}; calls still in flight after {self.grace_s:.1f}s"
        )


def exit_code(report: RunReport) -> int:
    """0 success, 1 failed, or ``128 + signal`` for a run a signal stopped (130 SIGINT, 143 SIGTERM)."""
    stopped_by = report.extra.get("stopped_by")
    if stopped_by:
        return 128 + signal.Signals[stopped_by].value
    return 0 if report.status == "success" else 1

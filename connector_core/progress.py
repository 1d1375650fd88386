"""Run progress: a live line on a terminal, a plain log line now and then when not (cron, CI)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from connector_core.report import RunStats

log = logging.getLogger("crmsync.progress")


class Progress:
    """Reports records read, delivered and failed while a run goes on."""

    def __init__(self, stats: RunStats, tty: bool | None = None, interval_s: float | None = None) -> None:
        self.stats = stats
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.interval_s = interval_s if interval_s is not None else (0.25 if self.tty else 10.0)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reporting on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        """Stop reporting and clear the live line."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            if self.tty:
                sys.stderr.write("\r\x1b[2K")
                sys.stderr.flush()

    def line(self) -> str:
        """One line describing where the run is."""
        stats = self.stats
        elapsed = max(time.monotonic() - stats.started, 1e-9)
        delivered = sum(stats.delivered.values())
        return (
            f"read {stats.input_records:,} ({stats.input_records / elapsed:,.0f}/s), "
            f"delivered {delivered:,}, errors {stats.error_count:,}, {elapsed:.0f}s"
        )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.tty:
                sys.stderr.write("\r\x1b[2K" + self.line())
                sys.stderr.flush()
            else:
                log.info("progress: %s", self.line())

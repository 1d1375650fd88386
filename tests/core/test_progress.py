"""Progress reporting: plain log lines when stderr is not a terminal, a live line when it is."""

from __future__ import annotations

import asyncio
import functools
import logging

import pytest

from connector_core import engine
from connector_core.progress import Progress
from connector_core.report import RunStats

from .conftest import Jobs


async def run_progress(progress: Progress, seconds: float) -> None:
    progress.start()
    await asyncio.sleep(seconds)
    progress.stop()


def test_plain_progress_lines_when_not_a_tty(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crmsync.progress")
    stats = RunStats()
    stats.input_records = 1234
    stats.delivered["out"] = 1000
    stats.error_count = 5
    asyncio.run(run_progress(Progress(stats, tty=False, interval_s=0.01), 0.1))
    lines = [record.getMessage() for record in caplog.records if record.name == "crmsync.progress"]
    assert len(lines) >= 2
    assert all(line.startswith("progress: read 1,234 (") for line in lines)
    assert "delivered 1,000, errors 5" in lines[0]


def test_progress_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crmsync.progress")

    async def scenario() -> None:
        await run_progress(Progress(RunStats(), tty=False, interval_s=0.01), 0.05)
        caplog.clear()
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert "progress:" not in caplog.text


def test_live_line_on_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    stats = RunStats()
    stats.input_records = 7
    asyncio.run(run_progress(Progress(stats, tty=True, interval_s=0.01), 0.05))
    err = capsys.readouterr().err
    assert "\r\x1b[2Kread 7 (" in err
    assert err.endswith("\r\x1b[2K"), "the live line is cleared at the end"


def test_default_interval_depends_on_the_terminal() -> None:
    assert Progress(RunStats(), tty=True).interval_s == 0.25
    assert Progress(RunStats(), tty=False).interval_s == 10.0


def test_engine_logs_progress_during_a_run(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine, "Progress", functools.partial(Progress, tty=False, interval_s=0.005))
    caplog.set_level(logging.INFO, logger="crmsync.progress")
    report = jobs.run("""
        version: 1
        job: progress
        settings: {source_batch_size: 10}
        sources:
          nums: {type: t.numbers, count: 100}
        sinks:
          out: {type: t.collect, inputs: [nums], batch_size: 10, sleep: 0.01}
    """)
    assert report.status == "success", report.failure
    lines = [record.getMessage() for record in caplog.records if record.name == "crmsync.progress"]
    assert len(lines) >= 3
    assert all(line.startswith("progress: read ") for line in lines)
    assert "delivered" in lines[-1]

"""Blocking work (a slow disk, its fsync, SQLite commits) never stalls the event loop the HTTP calls run on.

A ``t.heartbeat`` connection ticks every 5 ms on the loop and records its largest delay; the jobs put an
async, call-bound mapper in front of a sink or a state store that blocks for 100 ms at a time.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from connector_core import hookimpl
from connector_core.engine import Engine, _loop_only
from connector_core.plugin_manager import get_plugin_host
from connector_core.report import RunReport
from connector_core.spec.model import SyncSpec
from connector_core.state.sqlite import SqliteStateStore

from . import kit
from .conftest import Jobs

MAX_LAG_MS = 50
RECORDS = 400

JOB = f"""
    version: 1
    job: stalls
    connections:
      beat: {{type: t.heartbeat}}
    sources:
      nums: {{type: t.numbers, count: {RECORDS}, key: [i]}}
    mappers:
      enrich: {{type: t.probe, inputs: [nums], batch_size: 10, concurrency: 4, sleep: 0.01}}
    sinks:
"""


class SlowCommitStore(SqliteStateStore):
    """A state store whose commits take 100 ms (a slow fsync), remembering which threads called it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: set[int] = set()

    def commit_batch(self, *args: Any, **kwargs: Any) -> None:
        self.threads.add(threading.get_ident())
        time.sleep(0.1)
        super().commit_batch(*args, **kwargs)

    def completed(self, job: str, keys: list[str]) -> dict[str, str]:
        self.threads.add(threading.get_ident())
        return super().completed(job, keys)


def run(jobs: Jobs, sinks: str, store: SqliteStateStore) -> RunReport:
    spec = jobs.load(JOB + sinks)
    host = get_plugin_host(extra_plugins=[kit.KIT])

    async def main() -> RunReport:
        return await asyncio.wait_for(Engine(spec, host, state=store).run(), 60)

    return asyncio.run(main())


def test_a_slow_disk_sink_does_not_stall_the_loop(jobs: Jobs, tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    started = time.monotonic()
    report = run(jobs, "      disk: {type: t.blocking, inputs: [enrich], batch_size: 100, block: 0.1}\n", store)
    assert report.status == "success", report.failure
    assert len(kit.STORE["disk"]) == RECORDS
    assert kit.COUNTERS["max_lag_ms"] < MAX_LAG_MS
    # The sink's 4 batches x (write + fsync) = 0.8 s overlap the mapper's 40 calls x 10 ms / 4 = 0.1 s.
    assert time.monotonic() - started < 3


def test_slow_state_commits_do_not_stall_the_loop(jobs: Jobs, tmp_path: Path) -> None:
    store = SlowCommitStore(tmp_path / "state.db")
    report = run(jobs, "      out: {type: t.collect, inputs: [enrich], batch_size: 20}\n", store)
    assert report.status == "success", report.failure
    assert len(kit.STORE["out"]) == RECORDS
    assert kit.COUNTERS["max_lag_ms"] < MAX_LAG_MS
    # One thread owns the SQLite connection during the run, and it is not the event loop's.
    assert len(store.threads) == 1
    assert threading.get_ident() not in store.threads


def test_a_concurrent_blocking_sink_commits_each_checkpoint_with_its_own_batch(jobs: Jobs, tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    sinks = "      disk: {type: t.blocking, inputs: [enrich], batch_size: 50, concurrency: 4, block: 0.01}\n"
    report = run(jobs, sinks, store)
    assert report.status == "success", report.failure
    # Writes and checkpoints of different batches never interleave, and commits follow the order the writes
    # became durable: the last checkpoint committed covers every record, and every record is recorded.
    assert store.sink_checkpoint("stalls", "disk") == {"records": RECORDS}
    assert store.summary("stalls")["deliveries"] == {"disk": RECORDS}


class AsyncCheckpointSink(kit.Blocking):
    """A plain-function ``write`` (run on the sink's thread) with a coroutine ``checkpoint`` (run on the loop)."""

    async def checkpoint(self) -> dict[str, int]:  # type: ignore[override]
        await asyncio.sleep(0)
        return {"records": len(kit.STORE[self.name]), "loop": int(threading.get_ident() == MAIN_THREAD)}


MAIN_THREAD = threading.get_ident()


class AsyncCheckpointPlugin:
    @hookimpl
    def register_sinks(registry: Any) -> None:
        registry.add("t.acheckpoint", AsyncCheckpointSink)


def test_a_coroutine_checkpoint_of_a_plain_sink_runs_on_the_loop(jobs: Jobs, tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    spec = jobs.load(JOB + "      disk: {type: t.acheckpoint, inputs: [enrich], batch_size: 100, block: 0}\n",
                     plugins=[("acheckpoint", AsyncCheckpointPlugin)])  # fmt: skip
    host = get_plugin_host(extra_plugins=[kit.KIT, ("acheckpoint", AsyncCheckpointPlugin)])
    report = asyncio.run(asyncio.wait_for(Engine(spec, host, state=store).run(), 60))
    assert report.status == "success", report.failure
    assert store.sink_checkpoint("stalls", "disk") == {"records": RECORDS, "loop": 1}


def test_a_jsonl_sink_on_a_slow_fsync_disk_does_not_stall_the_loop(
    jobs: Jobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in JSONL sink with state fsyncs its part file after every batch: here each fsync takes 100 ms."""
    import crmsync_plugins.files

    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.1)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    files = ("files", crmsync_plugins.files)
    out = tmp_path / "out.jsonl"
    sink = f"      disk: {{type: jsonl, inputs: [enrich], batch_size: 100, path: {out}}}\n"
    spec = jobs.load(JOB + sink, plugins=[files])
    host = get_plugin_host(extra_plugins=[kit.KIT, files])
    store = SqliteStateStore(tmp_path / "state.db")
    report = asyncio.run(asyncio.wait_for(Engine(spec, host, state=store).run(), 60))
    assert report.status == "success", report.failure
    assert len(out.read_text().splitlines()) == RECORDS
    assert kit.COUNTERS["max_lag_ms"] < MAX_LAG_MS


FILE_JOB = """
    version: 1
    job: files
    sources:
      rows: {{type: jsonl, path: {source}, key: [i]}}
    sinks:
      {sink}
"""


def file_job(jobs: Jobs, tmp_path: Path, mapper: str = "", sink: str = "") -> tuple[SyncSpec, Any]:
    import crmsync_plugins.files

    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"i": {i}}}\n' for i in range(RECORDS)), encoding="utf-8")
    sink = sink or f"out: {{type: jsonl, inputs: [{'split' if mapper else 'rows'}], path: {tmp_path / 'out.jsonl'}}}"
    text = FILE_JOB.format(source=source, sink=sink) + (f"    mappers:\n      {mapper}\n" if mapper else "")
    plugins = [("files", crmsync_plugins.files), ("acheckpoint", AsyncCheckpointPlugin)]
    return jobs.load(text, plugins=plugins), get_plugin_host(extra_plugins=[kit.KIT, *plugins])


def test_a_job_with_nothing_waiting_on_the_loop_keeps_its_state_calls_there(jobs: Jobs, tmp_path: Path) -> None:
    """File in, file out: no HTTP call waits on the loop, so a hand-off to the state thread would buy nothing
    and cost a GIL trade per call. Everything runs on the loop's thread; outputs and state are as always."""
    spec, host = file_job(jobs, tmp_path)
    assert _loop_only(spec)
    store = SlowCommitStore(tmp_path / "state.db")
    threads_before = {thread.name for thread in threading.enumerate()}
    report = asyncio.run(Engine(spec, host, state=store).run())
    assert report.status == "success", report.failure
    assert store.threads == {threading.get_ident()}
    assert {thread.name for thread in threading.enumerate()} == threads_before
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == RECORDS
    assert store.summary("files")["deliveries"] == {"out": RECORDS}


@pytest.mark.parametrize(
    ("mapper", "sink", "why"),
    [
        ("split: {type: t.probe, inputs: [rows]}", "", "a coroutine mapper"),
        ("", "db: {type: sqlite, inputs: [rows], path: out.db, table: t}", "a sink on a thread of its own"),
        ("", "out: {type: t.acheckpoint, inputs: [rows]}", "a coroutine checkpoint"),
    ],
)
def test_a_job_with_work_on_the_loop_or_on_threads_keeps_the_state_thread(
    jobs: Jobs, tmp_path: Path, mapper: str, sink: str, why: str
) -> None:
    spec, _ = file_job(jobs, tmp_path, mapper, sink)
    assert not _loop_only(spec), why

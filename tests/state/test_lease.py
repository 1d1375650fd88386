"""The lease heartbeat: a live run keeps its lease past the TTL; a lost lease stops the run's commits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connector_core.errors import RunFailed
from connector_core.ledger import Ledger
from connector_core.state.lease import Heartbeat, new_owner
from connector_core.state.sqlite import SqliteStateStore
from connector_core.state.store import JobLocked


def test_a_renewed_lease_outlives_its_ttl_and_is_freed_at_the_end(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    ledger = Ledger(store, "job", max_attempts=3, lock_ttl_s=0.3)
    time.sleep(1.0)  # three TTLs: without the heartbeat the lease would have expired
    with pytest.raises(JobLocked, match="already running"):
        store.acquire_lock("job", {**new_owner(), "host": "elsewhere"}, 10)
    ledger.finish("success", {}, settled=True)
    assert store.lock("job") is None
    store.close()


def test_a_lost_lease_stops_commits(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    ledger = Ledger(store, "job", max_attempts=3, lock_ttl_s=0.3)
    store.release_lock("job")  # as `state unlock --force` would
    store.acquire_lock("job", {**new_owner(), "host": "elsewhere"}, 10)
    time.sleep(0.4)
    with pytest.raises(RunFailed, match="lease was lost"):
        ledger.delivered("out", [], None)
    ledger.finish("failed", {}, settled=False)
    assert store.lock("job")["host"] == "elsewhere", "the new owner's lease must survive the old run's end"
    store.close()


def test_renewals_failing_for_a_whole_ttl_count_as_lost() -> None:
    def broken() -> bool:
        raise OSError("network down")

    heartbeat = Heartbeat(broken, ttl_s=0.3)
    heartbeat.start()
    time.sleep(0.6)
    heartbeat.stop()
    assert heartbeat.lost is not None

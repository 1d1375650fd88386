"""Scheduled runs the way CI runs them, as real processes: a runner killed mid-run and another host taking the
lease over once it expired, graceful SIGTERM/SIGINT, and two ephemeral runners carrying state like the workflow.

Each runs against SQLite and against a real PostgreSQL server.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from connector_core.state.open import open_store
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

from ..apollo.conftest import people
from .ci_kit import can_set_hostname, check_exactly_once, command, job_folder, start, wait_for

JOB = "apollo-test"


@pytest.fixture(params=["sqlite", "postgres"])
def shared_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """State both runners reach: a PostgreSQL URL, or one SQLite file (as on a shared disk)."""
    if request.param == "sqlite":
        return str(tmp_path / "shared" / "state.db")
    return str(request.getfixturevalue("postgres_url"))


def delivered(target: str) -> int:
    store = open_store(target)
    try:
        return sum(store.summary(JOB)["deliveries"].values())
    finally:
        store.close()


def lease(target: str) -> dict | None:
    store = open_store(target)
    try:
        return store.lock(JOB)
    finally:
        store.close()


@pytest.mark.skipif(not can_set_hostname(), reason="needs root and `unshare --uts` to give runners their own host")
def test_a_killed_runner_s_lease_is_taken_over_by_another_host_after_ttl(tmp_path: Path, shared_state: str) -> None:
    rows = people(150)
    first_spec = job_folder(tmp_path / "runner-1", rows, "{lock_ttl_s: 2}")
    second_spec = job_folder(tmp_path / "runner-2", rows, "{lock_ttl_s: 2}")
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=100))) as server:
        first = start(command(first_spec, "--state", shared_state, host="runner-1"), server)
        wait_for(lambda: delivered(shared_state) > 0, what="the first runner to deliver")
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
        first.wait()
        held = lease(shared_state)
        assert held is not None and held["host"] == "runner-1"

        refused = start(command(second_spec, "--state", shared_state, host="runner-2"), server)
        _, stderr = refused.communicate(timeout=60)
        assert refused.returncode == 1, stderr
        assert "already running" in stderr and "runner-1" in stderr and "Traceback" not in stderr

        time.sleep(max(0.0, held["expires_at"] - time.time()) + 0.1)
        began = time.monotonic()
        report = ["--report", str(tmp_path / "r.json")]
        second = start(command(second_spec, "--state", shared_state, *report, host="runner-2"), server)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr
        print(f"resumed on the second runner in {time.monotonic() - began:.2f}s")
        assert "took over the lease" in stderr and "expired" in stderr
        assert json.loads((tmp_path / "r.json").read_text())["status"] == "success"
        # The enrichment cache lives in the shared state: only the call in flight at the kill is paid twice.
        assert server.sandbox.state()["credits"] <= len(rows) + 10
        check_exactly_once(
            [first_spec.parent, second_spec.parent], second_spec.parent, [r["email"] for r in rows], server
        )
        assert lease(shared_state) is None

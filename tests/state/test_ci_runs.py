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
    first_spec = job_folder(tmp_path / "runner-1", rows, "{lock_ttl_s: 6}")
    second_spec = job_folder(tmp_path / "runner-2", rows, "{lock_ttl_s: 6}")
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


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_gracefully_with_a_report_and_no_lease(
    tmp_path: Path, shared_state: str, signum: int, code: int
) -> None:
    rows = people(150)
    spec = job_folder(tmp_path / "runner", rows, "{lock_ttl_s: 60}")
    report_path = tmp_path / "report.json"
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=100))) as server:
        run = start(command(spec, "--state", shared_state, "--report", str(report_path)), server)
        wait_for(lambda: delivered(shared_state) > 0, what="the run to deliver")
        run.send_signal(signum)
        began = time.monotonic()
        _, stderr = run.communicate(timeout=30)
        assert run.returncode == code, stderr
        assert time.monotonic() - began < 5 + 2, "in-flight calls get the grace period, not more"
        assert "Traceback" not in stderr and "stopping" in stderr
        report = json.loads(report_path.read_text())
        assert report["status"] == "stopped" and report["stopped_by"] == signal.Signals(signum).name
        assert lease(shared_state) is None, "a stopped run must not leave a lease behind"

        again = start(command(spec, "--state", shared_state), server)
        _, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr
        assert "took over" not in stderr
        check_exactly_once([spec.parent], spec.parent, [r["email"] for r in rows], server)


def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    rows = people(60)
    spec = job_folder(tmp_path / "runner", rows, "{}")
    report_path = tmp_path / "report.json"
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=6000))) as server:  # every call hangs for 6 s
        run = start(command(spec, "--report", str(report_path), "--stop-grace-s", "30"), server)
        state = spec.parent / ".crmsync" / "state.db"
        wait_for(lambda: server.sandbox.state()["calls"] != {}, what="the first call")
        run.send_signal(signal.SIGTERM)
        # Two signals sent before the first is handled arrive as one (a loaded machine): wait for its line.
        assert run.stderr is not None
        handled = ""
        while "SIGTERM: stopping" not in handled and (line := run.stderr.readline()):
            handled += line
        began = time.monotonic()
        run.send_signal(signal.SIGTERM)
        _, rest = run.communicate(timeout=30)
        stderr = handled + rest
        assert run.returncode == 143, stderr
        assert time.monotonic() - began < 3.5, "the second signal must not wait for the call in flight"
        assert "again: stopping at once" in stderr and "Traceback" not in stderr
        assert json.loads(report_path.read_text())["status"] == "stopped"
        assert lease(str(state)) is None


def test_two_jobs_on_one_database_never_pay_twice_for_a_person(tmp_path: Path, postgres_url: str) -> None:
    rows = people(40)
    first = job_folder(tmp_path / "job-a", rows, "{}")
    second = job_folder(tmp_path / "job-b", rows, "{}")
    second.write_text(second.read_text().replace("job: apollo-test", "job: another-job", 1))
    with SandboxServer(ApolloSandbox()) as server:
        for spec in (first, second):
            run = start(command(spec, "--state", postgres_url), server)
            _, stderr = run.communicate(timeout=120)
            assert run.returncode == 0, stderr
        assert server.sandbox.state()["credits"] == len(rows), "the second job must enrich from the shared cache"
        assert server.sandbox.state()["calls"]["/api/v1/people/bulk_match"] == 4


def test_a_run_started_right_after_a_kill_takes_over_before_the_killed_one_is_reaped(
    tmp_path: Path, shared_state: str
) -> None:
    """A scheduler that SIGKILLs a run and starts the next before waiting for the first leaves a zombie holding
    the pid: the lease of a process that has exited is taken over at once, not after its TTL."""
    rows = people(150)
    spec = job_folder(tmp_path / "runner", rows, "{lock_ttl_s: 600}")
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=100))) as server:
        first = start(command(spec, "--state", shared_state), server)
        wait_for(lambda: delivered(shared_state) > 0, what="the first run to deliver")
        first.send_signal(signal.SIGKILL)
        wait_for(lambda: zombie(first.pid), what="the killed run to exit")
        second = start(command(spec, "--state", shared_state), server)
        _, stderr = second.communicate(timeout=120)
        assert zombie(first.pid), "the killed run must still be unreaped while the next one starts"
        first.wait()
        assert second.returncode == 0, stderr
        assert "took over the lock" in stderr and "process is gone" in stderr
        check_exactly_once([spec.parent], spec.parent, [r["email"] for r in rows], server)
        assert lease(shared_state) is None


def zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and is waiting to be reaped."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"

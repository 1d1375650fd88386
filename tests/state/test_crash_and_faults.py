"""Kill -9 at random points and resume; a storm of faults. Nothing lost, nothing duplicated.

The full-size version (20 trials, 3,000 records) is bench/bench_crash.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from connector_core.testing import read_jsonl
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

from ..apollo.conftest import env, people, write_job, write_leads
from .jobs import write_as_it_goes

OUTPUTS = ("created", "existing", "missing", "skipped", "errors")


def start(spec: Path, server: SandboxServer, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector_core", "-q", "run", str(spec), *extra],
        env={**os.environ, **env(server)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def check_exactly_once(folder: Path, expected_keys: list[str], server: SandboxServer) -> None:
    seen: Counter[str] = Counter()
    for name in OUTPUTS:
        lines = (folder / "out" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == len(set(lines)), f"duplicate line in {name}.jsonl"
        seen.update(record["_key"] for record in read_jsonl(folder / "out" / f"{name}.jsonl"))
    assert seen == Counter(expected_keys), "every input record must end in exactly one terminal stream"
    emails = [c["email"] for c in server.sandbox.state()["contacts"] if c.get("email")]
    assert len(emails) == len(set(emails)), "a contact was created twice"


@pytest.mark.parametrize(
    ("seed", "store"),
    [(11, "sqlite"), (22, "sqlite"), (33, "sqlite"), (44, "sqlite"), (55, "postgres"), (66, "postgres")],
)
def test_sigkill_and_resume(tmp_path: Path, seed: int, store: str, request: pytest.FixtureRequest) -> None:
    extra = ("--state", request.getfixturevalue("postgres_url")) if store == "postgres" else ()
    rng = random.Random(seed)
    rows = people(300)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, enrich="concurrency: 1", contacts="batch_size: 50")
    crashes, kills_at = 0, []
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=15))) as server:
        for _ in range(2):
            process = start(spec, server, *extra)
            delay = rng.uniform(0.3, 1.6)
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                crashes += 1
                kills_at.append(round(delay, 2))
            process.wait()
        final = start(spec, server, *extra)
        assert final.wait(120) == 0, f"seed {seed}: resume failed (kills at {kills_at})"
        print(f"seed {seed}: killed at {kills_at} s")
        check_exactly_once(tmp_path, [r["email"] for r in rows], server)
        credits = server.sandbox.state()["credits"]
        matched = len(read_jsonl(tmp_path / "out" / "created.jsonl")) + len(
            read_jsonl(tmp_path / "out" / "existing.jsonl")
        )
        # One bulk_match call in flight at a time: a crash can waste at most that call's 10 people.
        assert credits <= matched + 10 * crashes, f"seed {seed}: kills at {kills_at}, credits {credits}"


def test_fault_storm_completes_without_loss_or_duplicates(tmp_path: Path) -> None:
    rows = people(120)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, contacts="batch_size: 20", attempts=8)
    storm = SandboxConfig(
        fail_rate=0.15,
        throttle_rate=0.05,
        reset_rate=0.15,
        latency_ms=5,
        latency_jitter_ms=40,
        random_seed=7,
    )
    with SandboxServer(ApolloSandbox(storm)) as server:
        for _ in range(3):  # records whose retries ran out are retried by the next run
            start(spec, server).wait(120)
            if not read_jsonl(tmp_path / "out" / "errors.jsonl"):  # this run's rejects
                break
        state = server.sandbox.state()
        assert state["resets"] > 0 and state["rate_limited"] > 0
        errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
        assert not errors, errors[:3]
        check_exactly_once(tmp_path, [r["email"] for r in rows], server)


@pytest.mark.parametrize("seed", [5, 6])
def test_sigkill_and_resume_lists_every_reject(tmp_path: Path, seed: int) -> None:
    """Rejects of killed runs are rejected again by the resume (attempts left) and listed in its errors file."""
    rng = random.Random(seed)
    rows = [{"id": f"lead-{n}", **row} for n, row in enumerate(people(160))]
    for row in rows[::8]:
        row["email"] = ""  # rejected by the `checked` mapper
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, enrich="concurrency: 1", contacts="batch_size: 20")
    checked = "  checked:\n    type: fields\n    inputs: [leads]\n    fields: {id: {}, email: {required: true}}\n"
    text = spec.read_text().replace("key: email", "key: id").replace("inputs: [leads]", "inputs: [checked]")
    spec.write_text(text.replace("mappers:\n", "mappers:\n" + checked))
    write_as_it_goes(spec)
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=15))) as server:
        for _ in range(2):  # state.max_attempts is 3: the resume is every reject's third attempt at most
            process = start(spec, server)
            time.sleep(rng.uniform(0.2, 1.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
        assert start(spec, server).wait(120) == 0
        rejected = sorted(r["_key"] for r in read_jsonl(tmp_path / "out" / "errors.jsonl"))
        assert rejected == sorted(r["id"] for r in rows if not r["email"])
        check_exactly_once(tmp_path, [r["id"] for r in rows], server)

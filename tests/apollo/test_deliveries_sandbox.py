"""End to end: the example job against the real ``crmsync sandbox apollo --delivery-delay-s``, poll path.

Skipped until the sandbox has the delivery knob (it is built on another branch); it runs once both are merged.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector_core.testing import read_jsonl, run_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CRMSYNC = [sys.executable, "-m", "connector_core"]


def _sandbox_delivers() -> bool:
    shown = subprocess.run([*CRMSYNC, "sandbox", "apollo", "--help"], capture_output=True, text=True)
    return "--delivery-delay-s" in shown.stdout


@pytest.fixture
def delivering_sandbox() -> Iterator[str]:
    if not _sandbox_delivers():
        pytest.skip("`crmsync sandbox apollo` has no --delivery-delay-s yet (the sandbox half of issue 9)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [*CRMSYNC, "sandbox", "apollo", "--port", str(port), "--delivery-delay-s", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def test_the_example_collects_phones_by_polling_and_a_rerun_pays_nothing(
    tmp_path: Path, delivering_sandbox: str
) -> None:
    for name in ("apollo-phones.yaml", "apollo-phones-leads.jsonl"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    env = {
        "APOLLO_BASE_URL": delivering_sandbox,
        "APOLLO_API_KEY": "sk-sandbox",
        "APOLLO_WEBHOOK_URL": "https://unreachable.invalid/apollo/webhook/token",
    }
    spec, state = tmp_path / "apollo-phones.yaml", tmp_path / "state.db"
    report = run_job(spec, env, state=state)
    assert report.status == "success", report.failure
    matched = read_jsonl(tmp_path / "out" / "matched.jsonl")
    phones = read_jsonl(tmp_path / "out" / "phones.jsonl")
    assert matched
    assert sorted(row["email"] for row in phones) == sorted(row["email"] for row in matched)
    assert all(isinstance(row["phone_numbers"], list) for row in phones)

    again = run_job(spec, env, state=state)
    assert again.status == "success", again.failure
    assert again.to_dict()["api"]["calls"].get("/api/v1/people/bulk_match", 0) == 0
    assert sorted(row["email"] for row in read_jsonl(tmp_path / "out" / "phones.jsonl")) == sorted(
        row["email"] for row in matched
    )

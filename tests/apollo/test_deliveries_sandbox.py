"""End to end: delivery jobs against the real ``crmsync sandbox apollo --delivery-delay-s``, poll path."""

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


@pytest.fixture
def delivering_sandbox() -> Iterator[str]:
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


WATERFALL_JOB = """
version: 1
job: waterfall
public_env: [APOLLO_BASE_URL]
connections:
  apollo: {type: apollo, base_url: "${APOLLO_BASE_URL}", api_key: "${APOLLO_API_KEY}"}
sources:
  leads: {type: jsonl, path: apollo-phones-leads.jsonl, key: email}
mappers:
  enrich:
    type: apollo.bulk_match
    connection: apollo
    inputs: [leads]
    run_waterfall_email: true
    run_waterfall_phone: true
    webhook_url: "${APOLLO_WEBHOOK_URL}"
    delivery_wait_s: 30
sinks:
  matched: {type: jsonl, inputs: [enrich.matched], path: out/matched.jsonl}
  waterfall: {type: jsonl, inputs: [enrich.waterfall], path: out/waterfall.jsonl}
  missing: {type: jsonl, inputs: [enrich.missing], path: out/missing.jsonl}
  rejects: {type: jsonl, inputs: [errors], path: out/errors.jsonl}
"""


@pytest.mark.parametrize("state", [False, True])
def test_a_waterfall_job_emits_one_delivery_per_matched_person(
    tmp_path: Path, delivering_sandbox: str, state: bool
) -> None:
    shutil.copy(EXAMPLES / "apollo-phones-leads.jsonl", tmp_path / "apollo-phones-leads.jsonl")
    spec = tmp_path / "waterfall.yaml"
    spec.write_text(WATERFALL_JOB, encoding="utf-8")
    env = {
        "APOLLO_BASE_URL": delivering_sandbox,
        "APOLLO_API_KEY": "sk-sandbox",
        "APOLLO_WEBHOOK_URL": "https://unreachable.invalid/apollo/webhook/token",
    }
    report = run_job(spec, env, state=tmp_path / "state.db" if state else None)
    assert report.status == "success", report.failure
    matched = read_jsonl(tmp_path / "out" / "matched.jsonl")
    delivered = read_jsonl(tmp_path / "out" / "waterfall.jsonl")
    assert matched and not read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert sorted(row["email"] for row in delivered) == sorted(row["email"] for row in matched)
    assert {row["apollo_delivery_status"] for row in delivered} <= {"delivered", "not_found"}
    assert any(row["apollo_delivery_status"] == "delivered" for row in delivered)
    for row in delivered:
        assert isinstance(row["phone_numbers"], list) and isinstance(row["emails"], list)
    # The credits the payloads counted replaced the worst case held while they were pending.
    api = report.to_dict()["api"]
    assert api["credits_at_risk"] == 0 and api["credits_confirmed"] > 0

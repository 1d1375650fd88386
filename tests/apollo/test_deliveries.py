"""Phone deliveries of ``apollo.bulk_match``: recorded in state, collected by polling or from the webhook
receiver, emitted joined to the input records once per matched person per request. Real HTTP on loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_core.state.open import open_store
from connector_core.testing import read_jsonl, run_job, write_jsonl, write_spec
from crmsync_plugins.apollo.deliveries import RECEIVED
from crmsync_plugins.apollo.webhook.receiver import DeliveryStore, WebhookServer
from crmsync_plugins.apollo.webhook.token import job_token, webhook_url

from .fake_deliveries import FakeApollo, phones_of

JOB = """
version: 1
job: phones
public_env: [APOLLO_BASE_URL]
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: sk-test-key
    backoff_s: 0.01
    rate_limits:
      people/bulk_match: {{per_minute: 1000, per_hour: null, per_day: null}}
      webhook_result: {{per_minute: 1000, per_hour: null, per_day: null}}
sources:
  leads: {{type: jsonl, path: leads.jsonl, key: email}}
mappers:
  enrich:
    type: apollo.bulk_match
    connection: apollo
    inputs: [leads]
    reveal_phone_number: true
    webhook_url: {webhook}
    delivery_wait_s: {wait}
sinks:
  matched: {{type: jsonl, inputs: [enrich.matched], path: out/matched.jsonl}}
  phones: {{type: jsonl, inputs: [enrich.phones], path: out/phones.jsonl}}
  missing: {{type: jsonl, inputs: [enrich.missing], path: out/missing.jsonl}}
  rejects: {{type: jsonl, inputs: [errors], path: out/errors.jsonl, metadata: true}}
"""
LEADS = [{"email": f"lead{n}@example.com", "first_name": f"Lead{n}", "company": "Example"} for n in range(12)] + [
    {"email": "nophone@example.com", "first_name": "Quiet"},
    {"email": "ghost@nowhere.invalid", "first_name": "Ghost"},
]
MATCHED = [lead for lead in LEADS if "nowhere" not in lead["email"]]


def job(folder: Path, wait: float = 5, webhook: str = "https://hooks.invalid/apollo/webhook/t") -> Path:
    write_jsonl(folder / "leads.jsonl", LEADS)
    return write_spec(folder, JOB.format(wait=wait, webhook=webhook))


def environ(apollo: FakeApollo) -> dict[str, str]:
    return {"APOLLO_BASE_URL": apollo.base_url}


def assert_phones_joined(folder: Path) -> None:
    """One record per matched person: the input record's fields plus its delivered numbers."""
    phones = read_jsonl(folder / "out" / "phones.jsonl")
    assert sorted(row["email"] for row in phones) == sorted(lead["email"] for lead in MATCHED)
    for row in phones:
        lead = next(lead for lead in LEADS if lead["email"] == row["email"])
        assert {key: row[key] for key in lead} == lead
        assert row["phone_numbers"] == phones_of(row["email"])
        assert row["apollo_delivery_status"] == ("delivered" if row["phone_numbers"] else "not_found")


def test_poll_path_delivers_each_matched_person_once_and_a_rerun_pays_nothing(tmp_path: Path) -> None:
    with FakeApollo(ready_after_s=0.5) as apollo:
        spec, state = job(tmp_path), tmp_path / "state.db"
        report = run_job(spec, environ(apollo), state=state)
        assert report.status == "success", report.failure
        assert_phones_joined(tmp_path)
        assert apollo.enrichment_calls == 2  # 13 people to ask, 10 a call
        section = report.to_dict()["deliveries enrich"]
        assert section["delivered_requests"] == 2
        assert section["phones_emitted"] == len(MATCHED)
        found = sum(1 for lead in MATCHED if phones_of(lead["email"]))
        assert float(report.to_dict()["api"]["credits"]) >= 8 * found  # deliveries count too

        again = run_job(spec, environ(apollo), state=state)
        assert again.status == "success", again.failure
        assert apollo.enrichment_calls == 2
        assert_phones_joined(tmp_path)  # nothing doubled by the second run


def test_without_state_the_run_waits_and_says_what_is_still_pending(tmp_path: Path) -> None:
    with FakeApollo(ready_after_s=0.3) as apollo:
        assert run_job(job(tmp_path), environ(apollo)).status == "success"
        assert_phones_joined(tmp_path)
    with FakeApollo(answer="never") as apollo:
        report = run_job(job(tmp_path, wait=0.5), environ(apollo))
        phones = read_jsonl(tmp_path / "out" / "phones.jsonl")
        assert sorted(row["email"] for row in phones) == sorted(lead["email"] for lead in MATCHED)
        assert all(row["apollo_delivery_status"] == "pending" and row["phone_numbers"] == [] for row in phones)
        assert report.to_dict()["deliveries enrich"]["pending_people"] == len(MATCHED)


def test_what_is_still_pending_is_collected_by_the_next_run_without_new_input(tmp_path: Path) -> None:
    with FakeApollo(ready_after_s=1.5) as apollo:
        spec, state = job(tmp_path, wait=0), tmp_path / "state.db"
        assert run_job(spec, environ(apollo), state=state).status == "success"
        assert read_jsonl(tmp_path / "out" / "phones.jsonl") == []
        time.sleep(1.6)
        write_jsonl(tmp_path / "leads.jsonl", [])
        assert run_job(spec, environ(apollo), state=state).status == "success"
        assert apollo.enrichment_calls == 2
        assert_phones_joined(tmp_path)


@pytest.mark.parametrize("answer", ["request_id_expired", "request_id_unknown", "invalid_request_id"])
def test_a_final_answer_ends_the_request_in_the_error_stream_once(tmp_path: Path, answer: str) -> None:
    with FakeApollo(answer=answer) as apollo:
        spec, state = job(tmp_path), tmp_path / "state.db"
        run_job(spec, environ(apollo), state=state)
        errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
        assert sorted(row["email"] for row in errors) == sorted(lead["email"] for lead in MATCHED)
        assert all(answer in row["_error"]["reason"] for row in errors)
        polls = apollo.polls
        run_job(spec, environ(apollo), state=state)
        assert apollo.polls == polls  # ended: never polled again


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[WebhookServer, str]]:
    """The webhook receiver of the test job, on loopback, storing into ``tmp_path/state.db``."""
    store = open_store(str(tmp_path / "state.db"))
    token = job_token(store, "phones")
    server = WebhookServer(("127.0.0.1", 0), DeliveryStore(store, "phones"), token, max_body=64 * 1024)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server, webhook_url(base, token)
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def received(tmp_path: Path) -> dict[str, Any]:
    store = open_store(str(tmp_path / "state.db"))
    try:
        return store.all_objects("phones", RECEIVED)
    finally:
        store.close()


def test_push_path_emits_what_the_receiver_stored(tmp_path: Path, receiver: tuple[WebhookServer, str]) -> None:
    _, url = receiver
    with FakeApollo(ready_after_s=0.2, push=True, answer="never") as apollo:  # polling would never get it
        report = run_job(job(tmp_path, wait=10, webhook=url), environ(apollo), state=tmp_path / "state.db")
        assert report.status == "success", report.failure
    assert_phones_joined(tmp_path)
    assert len(received(tmp_path)) == 2


def test_receiver_refuses_forged_tokens_oversized_and_malformed_bodies(
    tmp_path: Path, receiver: tuple[WebhookServer, str]
) -> None:
    _, url = receiver
    payload = {"people": [{"id": "p-1", "phone_numbers": []}]}
    forged = url[:-4] + ("aaaa" if not url.endswith("aaaa") else "bbbb")
    assert httpx.post(forged, json=payload).status_code == 401
    assert httpx.post(url.rsplit("/", 1)[0] + "/", json=payload).status_code == 401
    assert httpx.post(url, content=b"x" * (64 * 1024 + 1)).status_code == 413
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, content=b"[1, 2]").status_code == 400
    assert received(tmp_path) == {}
    assert httpx.post(url, json=payload).status_code == 200  # still serving after the bad ones
    assert httpx.post(url, json=payload).json() == {"status": "already stored"}
    assert len(received(tmp_path)) == 1


def test_receiver_keeps_200_concurrent_deliveries(tmp_path: Path, receiver: tuple[WebhookServer, str]) -> None:
    _, url = receiver

    def deliver(n: int) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(url, json={"people": [{"id": f"p-{n}", "phone_numbers": []}]}).status_code

    results: list[int] = []
    threads = [threading.Thread(target=lambda n=n: results.append(deliver(n))) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 200
    stored = received(tmp_path)
    assert sorted(item["payload"]["people"][0]["id"] for item in stored.values()) == sorted(
        f"p-{n}" for n in range(200)
    )


def test_webhook_cli_prints_a_stable_url_and_never_logs_the_token(tmp_path: Path) -> None:
    spec = job(tmp_path)
    argv = [sys.executable, "-m", "connector_core", "webhook", "url", str(spec), "--state", str(tmp_path / "s.db")]
    first = subprocess.run([*argv, "--public-url", "https://hooks.example.com/"], capture_output=True, text=True)
    second = subprocess.run([*argv, "--public-url", "https://hooks.example.com"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith("https://hooks.example.com/apollo/webhook/")
    assert len(first.stdout.strip().rsplit("/", 1)[1]) >= 40


def pending_requests(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
            row = db.execute("SELECT COUNT(*) FROM object_entries WHERE component = 'enrich.deliveries'").fetchone()
            return int(row[0])
    except sqlite3.Error:
        return 0


def test_sigkill_between_request_and_delivery_then_resume_delivers_without_paying_again(tmp_path: Path) -> None:
    with FakeApollo(ready_after_s=4) as apollo:
        spec, state = job(tmp_path, wait=60), tmp_path / "state.db"
        env = {**os.environ, **environ(apollo)}
        run = subprocess.Popen(
            [sys.executable, "-m", "connector_core", "run", str(spec), "--state", str(state)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while pending_requests(state) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pending_requests(state) == 2
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert apollo.enrichment_calls == 2
        time.sleep(0.5)
        resumed = subprocess.run(
            [sys.executable, "-m", "connector_core", "run", str(spec), "--state", str(state)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert apollo.enrichment_calls == 2  # the delivery was collected, not bought again
        assert_phones_joined(tmp_path)
        matched = read_jsonl(tmp_path / "out" / "matched.jsonl")
        assert sorted(row["email"] for row in matched) == sorted(lead["email"] for lead in MATCHED)
        assert json.dumps(matched).count("sk-test-key") == 0


def test_pending_phone_credits_count_against_max_credits(tmp_path: Path) -> None:
    spec = job(tmp_path)
    text = spec.read_text().replace("    delivery_wait_s: 5\n", "    delivery_wait_s: 5\n    max_credits: 100\n")
    spec.write_text(text.replace("    inputs: [leads]\n", "    inputs: [leads]\n    concurrency: 1\n", 1))
    with FakeApollo(ready_after_s=0.3) as apollo:
        report = run_job(spec, environ(apollo))
    # 10 people matched (10 credits) + 10 mobile numbers owed (80 at risk): 4 more people (36) would pass 100.
    assert apollo.enrichment_calls == 1
    assert report.streams["enrich.skipped"] == 4
    api = report.to_dict()["api"]
    assert api["credits_at_risk"] == 0  # the delivery said what it cost
    assert api["credits"] == 10 + 8 * sum(1 for lead in LEADS[:10] if phones_of(lead["email"]))


def test_webhook_serve_cli_stores_into_the_jobs_state(tmp_path: Path) -> None:
    spec, state = job(tmp_path), str(tmp_path / "state.db")
    crmsync = [sys.executable, "-m", "connector_core", "webhook"]
    serve = subprocess.Popen(
        [*crmsync, "serve", str(spec), "--state", state, "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert serve.stdout is not None
        address = serve.stdout.readline().split(" receiving on ", 1)[1].split()[0]
        shown = subprocess.run(
            [*crmsync, "url", str(spec), "--state", state, "--public-url", address], capture_output=True, text=True
        )
        url = shown.stdout.strip()
        assert httpx.post(url, json={"people": [{"id": "p-1", "phone_numbers": []}]}).status_code == 200
        assert httpx.post(url + "x", json={}).status_code == 401
    finally:
        serve.terminate()
        serve.wait(10)
    assert len(received(tmp_path)) == 1


def test_person_results_read_both_documented_payload_shapes() -> None:
    from crmsync_plugins.apollo.deliveries import person_results

    number = {"raw_number": "+1 555", "type_cd": "mobile"}
    phone = {"status": "success", "people": [{"id": "a", "status": "success", "phone_numbers": [number]}, {"x": 1}]}
    assert person_results("phone", phone) == {"a": {"phone_numbers": [number]}}
    waterfall = {
        "request_id": -7,
        "people": [
            {"id": 1, "waterfall": {"emails": [{"email": "a@b.c"}], "phone_numbers": [number]}},
            {"id": "b", "emails": [{"email": "b@b.c"}], "phone_numbers": []},
        ],
    }
    assert person_results("waterfall", waterfall) == {
        "1": {"phone_numbers": [number], "emails": [{"email": "a@b.c"}]},
        "b": {"phone_numbers": [], "emails": [{"email": "b@b.c"}]},
    }
    assert person_results("phone", {"people": "odd"}) == {}

"""Asynchronous deliveries: phone reveals and waterfall results POSTed to webhook_url, and webhook_result.

Deliveries go over real HTTP on loopback: the sandbox's server, and a receiver in a thread of this test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer, sandbox_transport

BULK = "/api/v1/people/bulk_match"


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST body; the first ``fail_first`` get a 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.times.append(time.monotonic())
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= 1
                    if not failing:
                        receiver.bodies.append(body)
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks/apollo/token-abc"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.bodies) >= count:
                    return list(self.bodies)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} deliveries, got {len(self.bodies)}")

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.stop()


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[ApolloSandbox, httpx.Client]]]:
    """``serve(**config)``: a sandbox with that config behind a real HTTP server, and a client on it."""
    started: list[tuple[ApolloSandbox, SandboxServer, httpx.Client]] = []

    def build(**config: Any) -> tuple[ApolloSandbox, httpx.Client]:
        sandbox = ApolloSandbox(SandboxConfig(**config))
        server = SandboxServer(sandbox).start()
        client = httpx.Client(base_url=server.base_url, headers={"X-Api-Key": "test-key"})
        started.append((sandbox, server, client))
        return sandbox, client

    yield build
    for sandbox, server, client in started:
        client.close()
        server.stop()
        sandbox.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/secret-token"


def mixed_people(sandbox: ApolloSandbox, count: int = 2) -> list[dict[str, Any]]:
    """``count`` people with a mobile number and ``count`` without."""

    def has_mobile(person: dict[str, Any]) -> bool:
        return any(n["type"] == "mobile" for n in person.get("phone_numbers") or [])

    people = sandbox.people.people
    return [p for p in people if has_mobile(p)][:count] + [p for p in people if not has_mobile(p)][:count]


def enrich(client: httpx.Client, people: list[dict[str, Any]], **flags: str) -> dict[str, Any]:
    response = client.post(BULK, params=flags, json={"details": [{"id": p["id"]} for p in people]})
    assert response.status_code == 200, response.text
    return dict(response.json())


def mobiles(person: dict[str, Any]) -> list[str]:
    return [n["sanitized_number"] for n in person.get("phone_numbers") or [] if n["type"] == "mobile"]


def test_phone_numbers_are_posted_after_the_delay(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]], receiver: Receiver
) -> None:
    sandbox, client = serve(delivery_delay_s=0.5)
    people = mixed_people(sandbox)
    sent = time.monotonic()
    answer = enrich(client, people, reveal_phone_number="true", webhook_url=receiver.url)
    phone_id = answer["phone_enrichment"]["request_id"]
    assert answer["phone_enrichment"]["status"] == "pending" and isinstance(phone_id, str)
    assert answer["credits_consumed"] == len(people)  # mobiles are charged on delivery

    [payload] = receiver.wait_for(1)
    assert receiver.times[0] - sent >= 0.5
    assert payload["status"] == "completed" and payload["request_id"] == phone_id
    assert [p["id"] for p in payload["people"]] == [m["id"] for m in answer["matches"]]
    by_id = {p["id"]: p for p in payload["people"]}
    for person in people:
        delivered = by_id[person["id"]]
        assert [n["sanitized_number"] for n in delivered["phone_numbers"]] == mobiles(person)
        assert delivered["status"] == ("success" if mobiles(person) else "no_phone_found")
        for number in delivered["phone_numbers"]:
            assert number["type_cd"] == "mobile" and number["raw_number"] and number["confidence_cd"]
    assert payload["total_requested_enrichments"] == 4
    assert payload["unique_enriched_records"] == 2 and payload["missing_records"] == 2
    assert payload["credits_consumed"] == 2 * 8
    assert sandbox.credits == 4 + 2 * 8


def test_waterfall_results_are_posted_under_the_top_level_request_id(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]], receiver: Receiver
) -> None:
    sandbox, client = serve(delivery_delay_s=0.2)
    people = mixed_people(sandbox)
    flags = {"run_waterfall_email": "true", "run_waterfall_phone": "true", "webhook_url": receiver.url}
    answer = enrich(client, people, **flags)
    assert answer["waterfall"]["status"] == "accepted" and isinstance(answer["request_id"], int)

    [payload] = receiver.wait_for(1)
    assert payload["request_id"] == answer["request_id"]
    assert payload["target_fields"] == ["email", "phone"]
    assert [p["id"] for p in payload["people"]] == [p["id"] for p in people]
    for person, delivered in zip(people, payload["people"], strict=True):
        assert [e["email"] for e in delivered["waterfall"]["emails"]] == [person["email"]]
        assert [n["sanitized_number"] for n in delivered["waterfall"]["phone_numbers"]] == mobiles(person)
        assert delivered["emails"] == delivered["waterfall"]["emails"]
        assert delivered["phone_numbers"] == delivered["waterfall"]["phone_numbers"]
    assert payload["email_records_enriched"] == 4 and payload["mobile_records_enriched"] == 2
    assert payload["records_enriched"] == 4 and payload["enrichment_not_found"] == 0
    assert payload["credits_consumed"] == 4 * 1 + 2 * 8
    assert payload["request_initiated"] < payload["request_completed"]


def test_every_call_that_asks_gets_its_own_request_ids(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]],
) -> None:
    sandbox, client = serve(delivery_delay_s=60)
    people = mixed_people(sandbox, 1)
    flags = {"reveal_phone_number": "true", "run_waterfall_email": "true", "webhook_url": closed_port_url()}
    first, second = enrich(client, people, **flags), enrich(client, people, **flags)
    ids = {
        first["phone_enrichment"]["request_id"],
        str(first["request_id"]),
        second["phone_enrichment"]["request_id"],
        str(second["request_id"]),
    }
    assert len(ids) == 4
    state = client.get("/_sandbox/state").json()["deliveries"]
    assert {d["request_id"] for d in state} == ids
    assert sorted(d["kind"] for d in state) == ["phone", "phone", "waterfall", "waterfall"]
    assert all(d["person_ids"] == [p["id"] for p in people] and not d["ready"] for d in state)
    assert "secret-token" not in json.dumps(state)  # the receiver's secret stays out of the state


def test_no_match_means_no_phone_request(serve: Callable[..., tuple[ApolloSandbox, httpx.Client]]) -> None:
    _, client = serve(delivery_delay_s=0)
    response = client.post(
        BULK,
        params={"reveal_phone_number": "true", "webhook_url": closed_port_url()},
        json={"details": [{"email": "nobody@nowhere.example"}]},
    )
    phone = response.json()["phone_enrichment"]
    assert phone["status"] == "skipped"
    assert client.get(f"/api/v1/webhook_result/{phone['request_id']}").json() == {"error": "request_id_unknown"}


def test_people_match_delivers_phones_too(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]], receiver: Receiver
) -> None:
    sandbox, client = serve(delivery_delay_s=0.1)
    [person] = mixed_people(sandbox, 1)[:1]
    answer = client.post(
        "/api/v1/people/match",
        params={"reveal_phone_number": "true", "webhook_url": receiver.url},
        json={"id": person["id"]},
    ).json()
    [payload] = receiver.wait_for(1)
    assert payload["request_id"] == answer["phone_enrichment"]["request_id"]
    assert [p["id"] for p in payload["people"]] == [person["id"]]


@pytest.mark.parametrize("extra", [0, 2])
def test_duplicate_deliveries_post_each_payload_extra_times(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]], receiver: Receiver, extra: int
) -> None:
    sandbox, client = serve(delivery_delay_s=0.1, duplicate_deliveries=extra)
    enrich(client, mixed_people(sandbox, 1), reveal_phone_number="true", webhook_url=receiver.url)
    bodies = receiver.wait_for(extra + 1)
    time.sleep(0.3)  # nothing more comes
    assert len(receiver.bodies) == extra + 1 and all(body == bodies[0] for body in bodies)
    [delivery] = client.get("/_sandbox/state").json()["deliveries"]
    assert delivery["deliveries"] == extra + 1 and delivery["webhook_status"] == "delivered"
    assert sandbox.credits == 2 + 8  # duplicates are not charged again


def test_a_failing_receiver_is_retried_until_it_accepts(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]],
) -> None:
    hook = Receiver(fail_first=2)
    try:
        sandbox, client = serve(delivery_delay_s=0, webhook_retries=3, webhook_retry_backoff_s=0.05)
        enrich(client, mixed_people(sandbox, 1), reveal_phone_number="true", webhook_url=hook.url)
        hook.wait_for(1)
        assert len(hook.times) == 3
        assert hook.times[2] - hook.times[1] >= 0.1  # the backoff doubles: 0.05, then 0.1
    finally:
        hook.stop()
    [delivery] = client.get("/_sandbox/state").json()["deliveries"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]
    assert delivery["webhook_status"] == "delivered"


def test_an_unreachable_webhook_is_retried_then_the_result_stays_pollable(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]],
) -> None:
    sandbox, client = serve(delivery_delay_s=0, webhook_retries=2, webhook_retry_backoff_s=0.05)
    answer = enrich(client, mixed_people(sandbox, 1), reveal_phone_number="true", webhook_url=closed_port_url())
    phone_id = answer["phone_enrichment"]["request_id"]
    deadline = time.monotonic() + 10
    while (result := client.get(f"/api/v1/webhook_result/{phone_id}").json()).get("webhook_status") != "failed":
        assert time.monotonic() < deadline, result
        time.sleep(0.05)
    assert result["request_type"] == "phone" and result["last_dispatched_at"]
    assert "unreachable" in result["failure_reason"] and "secret-token" not in result["failure_reason"]
    assert result["webhook_result"]["request_id"] == phone_id
    assert [p["id"] for p in result["webhook_result"]["people"]] == [m["id"] for m in answer["matches"]]
    [delivery] = client.get("/_sandbox/state").json()["deliveries"]
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(0, None), (1, None), (2, None)]


class WallClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def timed() -> Iterator[tuple[ApolloSandbox, httpx.Client, WallClock]]:
    """An in-process sandbox on a hand-moved wall clock (delay 90 s, results kept 1 hour)."""
    wall = WallClock()
    config = SandboxConfig(delivery_delay_s=90, result_ttl_s=3600, webhook_retries=0)
    sandbox = ApolloSandbox(config, wall_clock=wall)
    client = httpx.Client(
        transport=sandbox_transport(sandbox), base_url="https://api.apollo.io", headers={"X-Api-Key": "k"}
    )
    yield sandbox, client, wall
    client.close()
    sandbox.close()


def test_webhook_result_pending_ready_then_expired(timed: tuple[ApolloSandbox, httpx.Client, WallClock]) -> None:
    sandbox, client, wall = timed
    people = mixed_people(sandbox, 1)
    answer = enrich(client, people, run_waterfall_phone="true", webhook_url=closed_port_url())
    url = f"/api/v1/webhook_result/{answer['request_id']}"

    wall.now += 30.2
    pending = client.get(url)
    assert pending.status_code == 404
    assert pending.json() == {"error": "result_pending", "retry_after_seconds": 60}
    assert pending.headers["Retry-After"] == "60"

    credits_before = sandbox.credits
    wall.now += 60
    ready = client.get(url)
    assert ready.status_code == 200
    body = ready.json()
    assert body["request_type"] == "waterfall" and body["webhook_status"] in ("pending", "failed")
    assert set(body) == {"webhook_status", "request_type", "last_dispatched_at", "failure_reason", "webhook_result"}
    assert body["webhook_result"]["request_id"] == answer["request_id"]
    assert sandbox.credits == credits_before + 8  # the delivered mobile; polling itself is free
    assert client.get(url).status_code == 200 and sandbox.credits == credits_before + 8

    wall.now += 3600
    expired = client.get(url)
    assert (expired.status_code, expired.json()) == (410, {"error": "request_id_expired"})


@pytest.mark.parametrize(
    ("request_id", "status", "error"),
    [
        ("123456789", 404, "request_id_unknown"),
        ("-42", 404, "request_id_unknown"),
        ("abc", 400, "invalid_request_id"),
        ("12.5", 400, "invalid_request_id"),
        ("99999999999999999999", 400, "invalid_request_id"),
        ("9223372036854775808", 400, "invalid_request_id"),
    ],
)
def test_webhook_result_final_errors(
    timed: tuple[ApolloSandbox, httpx.Client, WallClock], request_id: str, status: int, error: str
) -> None:
    _, client, _ = timed
    response = client.get(f"/api/v1/webhook_result/{request_id}")
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_webhook_result_needs_the_key_and_serves_the_gateway_layout(
    timed: tuple[ApolloSandbox, httpx.Client, WallClock],
) -> None:
    sandbox, client, wall = timed
    answer = enrich(client, mixed_people(sandbox, 1), reveal_phone_number="true", webhook_url=closed_port_url())
    phone_id = answer["phone_enrichment"]["request_id"]
    wall.now += 90
    assert client.get(f"/api/v1/webhook_result/{phone_id}", headers={"X-Api-Key": ""}).status_code == 401
    with httpx.Client(
        transport=sandbox_transport(sandbox), base_url="https://api.aisa.one", headers={"Authorization": "Bearer t"}
    ) as gateway:
        assert gateway.get(f"/apis/v1/apollo/webhook_result/{phone_id}").json()["request_type"] == "phone"


def test_reset_forgets_deliveries(timed: tuple[ApolloSandbox, httpx.Client, WallClock]) -> None:
    sandbox, client, _ = timed
    answer = enrich(client, mixed_people(sandbox, 1), reveal_phone_number="true", webhook_url=closed_port_url())
    sandbox.reset()
    assert sandbox.state()["deliveries"] == []
    phone_id = answer["phone_enrichment"]["request_id"]
    assert client.get(f"/api/v1/webhook_result/{phone_id}").json() == {"error": "request_id_unknown"}


def _env() -> dict[str, str]:
    paths = [p for p in sys.path if p and Path(p).is_dir()]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def test_the_cli_delivers_with_its_knobs(receiver: Receiver) -> None:
    code = (
        "from crmsync_plugins.apollo.sandbox import main; "
        "main(['--port', '0', '--delivery-delay-s', '0.3', '--duplicate-deliveries', '1', '--webhook-retries', '0'])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert proc.stdout is not None
        found = re.fullmatch(r"Apollo sandbox listening on (http://\S+)\n", proc.stdout.readline())
        assert found
        with httpx.Client(base_url=found.group(1), headers={"X-Api-Key": "k"}) as client:
            answer = client.post(
                BULK,
                params={"reveal_phone_number": "true", "webhook_url": receiver.url},
                json={"details": [{"email": "tim@apollo.io"}]},
            ).json()
            first, second = receiver.wait_for(2)
            assert first == second and first["request_id"] == answer["phone_enrichment"]["request_id"]
            result = client.get(f"/api/v1/webhook_result/{first['request_id']}").json()
            assert result["webhook_status"] == "delivered" and result["webhook_result"] == first
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--delivery-delay-s", "-1"],
        ["--duplicate-deliveries", "x"],
        ["--result-ttl-s", "0"],
        ["--webhook-retries", "-2"],
    ],
)
def test_bad_delivery_knobs_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from crmsync_plugins.apollo.sandbox import main

    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", *argv])
    assert exited.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_a_restarted_sandbox_does_not_reuse_request_ids() -> None:
    ids = set()
    for _ in range(2):
        sandbox = ApolloSandbox(SandboxConfig(random_seed=7, delivery_delay_s=60))
        with httpx.Client(
            transport=sandbox_transport(sandbox), base_url="https://api.apollo.io", headers={"X-Api-Key": "k"}
        ) as client:
            answer = enrich(client, mixed_people(sandbox, 1), reveal_phone_number="true", webhook_url=closed_port_url())
        ids.add(answer["phone_enrichment"]["request_id"])
        sandbox.close()
    assert len(ids) == 2


def test_email_waterfall_reports_people_it_found_nothing_for(
    serve: Callable[..., tuple[ApolloSandbox, httpx.Client]], receiver: Receiver
) -> None:
    sandbox, client = serve(delivery_delay_s=0)
    people = sandbox.people.people
    unknown = next(p for p in people if p.get("email_status") == "unavailable")
    known = next(p for p in people if p.get("email") and p.get("email_status") == "verified")
    enrich(client, [known, unknown], run_waterfall_email="true", webhook_url=receiver.url)
    [payload] = receiver.wait_for(1)
    assert payload["target_fields"] == ["email"]
    found, missing = payload["people"]
    assert (found["id"], [e["email"] for e in found["emails"]]) == (known["id"], [known["email"]])
    assert (missing["id"], missing["emails"], missing["phone_numbers"]) == (unknown["id"], [], [])
    assert found["phone_numbers"] == []  # phones were not asked for
    assert (payload["records_enriched"], payload["enrichment_not_found"], payload["credits_consumed"]) == (1, 1, 1)

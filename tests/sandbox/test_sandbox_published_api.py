"""The sandbox answers as Apollo's published API does, and survives what load tests throw at it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxServer


def test_waterfall_matches_are_slim(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    person = next(p for p in sandbox.seed.people if p.get("email"))
    params = {"run_waterfall_email": "true", "webhook_url": "https://hooks.example/x"}
    body = client.post(
        "/api/v1/people/bulk_match", params=params, json={"details": [{"email": person["email"]}]}
    ).json()
    [match] = body["matches"]
    assert match["id"] == person["id"] and "email" not in match and "organization" not in match
    assert body["waterfall"]["status"] == "accepted" and isinstance(body["request_id"], int)
    assert not {"credits_consumed", "missing_records", "unique_enriched_records"} & set(body)


def test_credit_balance_ends_in_the_documented_422(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    sandbox = make_sandbox(credit_balance=2)
    client = client_for(sandbox)
    emails = [p["email"] for p in sandbox.seed.people if p.get("email")][:3]
    first = client.post("/api/v1/people/bulk_match", json={"details": [{"email": e} for e in emails[:2]]})
    assert first.status_code == 200 and sandbox.credits == 2
    refused = client.post("/api/v1/people/bulk_match", json={"details": [{"email": emails[2]}]})
    assert refused.status_code == 422 and refused.json() == {"error": "Insufficient credits. Please upgrade your plan."}
    free = client.post("/api/v1/contacts/bulk_create", json={"contacts": [{"email": "a@b.example"}]})
    assert free.status_code == 200  # creating contacts costs no credits


def test_contacts_without_an_array_get_apollos_422(client: httpx.Client) -> None:
    response = client.post("/api/v1/contacts/bulk_create", json={"run_dedupe": True})
    assert response.status_code == 422
    assert response.json() == {
        "error": 'Please provide an array of contact attributes in the "contact_attributes" parameter.'
    }


def test_organizations_take_domains_as_query_parameters(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/organizations/bulk_enrich", params={"domains[]": ["apollo.io", "https://www.Apollo.io/x"]}
    )
    body = response.json()
    assert response.status_code == 200 and body["unique_domains"] == 1
    assert [o["primary_domain"] for o in body["organizations"]] == ["apollo.io"]
    assert body["credits_consumed"] == 1 and sandbox.credits == 1
    missing = client.post("/api/v1/organizations/bulk_enrich")
    assert missing.status_code == 400 and missing.json()["error_message"] == "invalid request, missing domains"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_html(sandbox: ApolloSandbox, client: httpx.Client, status: int) -> None:
    sandbox.script_faults([str(status)])
    response = client.post("/api/v1/people/bulk_match", json={"details": []})
    assert response.status_code == status and response.headers["Content-Type"] == "text/html"


def test_random_failures_draw_from_the_configured_statuses(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    client = client_for(make_sandbox(fail_rate=1.0, fail_statuses=(502, 503, 504)))
    statuses = {client.post("/api/v1/people/bulk_match", json={"details": []}).status_code for _ in range(40)}
    assert statuses == {502, 503, 504}


def test_retry_after_in_seconds_or_as_an_http_date(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    sandbox.script_faults(["429:3600", "429:date:7200"])
    seconds = client.post("/api/v1/people/bulk_match", json={"details": []})
    dated = client.post("/api/v1/people/bulk_match", json={"details": []})
    assert seconds.headers["Retry-After"] == "3600"
    ahead = parsedate_to_datetime(dated.headers["Retry-After"]).timestamp() - time.time()
    assert 7000 < ahead <= 7200


def test_malformed_200_is_applied_and_charged(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    email = next(p["email"] for p in sandbox.seed.people if p.get("email"))
    sandbox.script_faults(["malformed"])
    response = client.post("/api/v1/people/bulk_match", json={"details": [{"email": email}]})
    assert response.status_code == 200 and response.json()["matches"] == "oops" and sandbox.credits == 1


def test_a_latency_spike_stalls_one_call(sandbox: ApolloSandbox) -> None:
    sandbox.script_faults(["slow:300"])
    with SandboxServer(sandbox) as server, httpx.Client(base_url=server.base_url, headers={"X-Api-Key": "k"}) as client:
        started = time.monotonic()
        client.post("/api/v1/people/bulk_match", json={"details": []})
        spiked = time.monotonic() - started
        started = time.monotonic()
        client.post("/api/v1/people/bulk_match", json={"details": []})
        normal = time.monotonic() - started
    assert spiked >= 0.3 > normal


def test_200_concurrent_connections_are_all_served() -> None:
    from crmsync_plugins.apollo.sandbox.server import _HTTPServer

    # Whether a short backlog resets connections depends on the kernel (SYN retries hide it here), so the
    # backlog itself is checked as well as the burst.
    assert _HTTPServer.request_queue_size >= 200
    with SandboxServer(ApolloSandbox()) as server:
        results: list[int] = []
        lock = threading.Lock()

        def call() -> None:
            with socket.create_connection((server.host, server.port), timeout=30) as sock:
                body = b'{"details": []}'
                sock.sendall(
                    b"POST /api/v1/people/bulk_match HTTP/1.1\r\nHost: x\r\nX-Api-Key: k\r\nConnection: close\r\n"
                    b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                reply = sock.makefile("rb").readline()
            with lock:
                results.append(int(reply.split()[1]))

        threads = [threading.Thread(target=call) for _ in range(200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert results.count(200) == 200


def _raw(server: SandboxServer, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        return sock.makefile("rb").read()


def test_body_size_limit_holds_for_chunked_bodies_and_negative_lengths(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync_plugins.apollo.sandbox import server as server_module

    monkeypatch.setattr(server_module, "_MAX_BODY", 1000)
    start = b"POST /api/v1/people/bulk_match HTTP/1.1\r\nHost: x\r\nX-Api-Key: k\r\n"
    chunk = b"400\r\n" + b"x" * 0x400 + b"\r\n"
    with SandboxServer(ApolloSandbox()) as server:
        chunked = _raw(server, start + b"Transfer-Encoding: chunked\r\n\r\n", chunk * 3 + b"0\r\n\r\n")
        negative = _raw(server, start + b"Content-Length: -5\r\n\r\n")
        small = _raw(
            server,
            start + b"Transfer-Encoding: chunked\r\n\r\n",
            b"f\r\n" + json.dumps({"details": []}).encode()[:15] + b"\r\n0\r\n\r\n",
        )
        assert server.sandbox.calls == {"/api/v1/people/bulk_match": 1}  # only the small body reached Apollo
    assert chunked.startswith(b"HTTP/1.1 413")
    assert negative.startswith(b"HTTP/1.1 400")
    assert small.startswith(b"HTTP/1.1 200")

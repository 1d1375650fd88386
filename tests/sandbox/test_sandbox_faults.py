"""Scripted and random fault injection, latency, and the admin endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import (
    ApolloSandbox,
    SandboxConfig,
    SandboxConnectionReset,
    sandbox_transport,
)

BULK = "/api/v1/people/bulk_match"
CREATE = "/api/v1/contacts/bulk_create"
BODY = {"details": [{"email": "tim@apollo.io"}]}


def one_contact(email: str) -> dict[str, object]:
    return {"contacts": [{"first_name": "F", "last_name": "L", "email": email}], "run_dedupe": True}


def test_scripted_faults_in_order(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    sandbox.script_faults(["500", "429", "429:nohdr", "401", "402", "403", "422", "ok", "503"])
    responses = [client.post(BULK, json=BODY) for _ in range(10)]
    assert [r.status_code for r in responses] == [500, 429, 429, 401, 402, 403, 422, 200, 503, 200]
    assert responses[0].json() == {"error": "Internal server error"}
    assert responses[1].headers["Retry-After"] == "1"
    assert "api/v1/people/bulk_match" in responses[1].json()["message"]
    assert "Retry-After" not in responses[2].headers
    assert responses[3].headers["Content-Type"].startswith("text/plain")
    assert responses[4].json() == {"error": "Insufficient credits. Please upgrade your plan."}
    assert responses[5].json()["error_code"] == "API_INACCESSIBLE"
    assert responses[6].json()["error_code"] == "UNKNOWN_ERROR"
    # Faults are decided before any work: only the two served calls cost credits.
    assert sandbox.credits == 2
    assert sandbox.state()["rate_limited"] == 2


def test_scripted_401_on_gateway_uses_gateway_shape(
    sandbox: ApolloSandbox, client_for: Callable[..., httpx.Client]
) -> None:
    sandbox.script_faults(["401"])
    response = client_for(sandbox, gateway=True).post("/apis/v1/apollo/people/bulk_match", json=BODY)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_reset_before_apply_raises_and_writes_nothing(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    before = len(sandbox.contacts)
    sandbox.script_faults(["reset"])
    with pytest.raises(httpx.ReadError):
        client.post(CREATE, json=one_contact("lost@example.com"))
    assert len(sandbox.contacts) == before
    assert sandbox.state()["resets"] == 1


def test_reset_after_apply_keeps_the_write(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    sandbox.script_faults(["reset:after"])
    with pytest.raises(httpx.ReadError):
        client.post(CREATE, json=one_contact("kept@example.com"))
    assert [c["email"] for c in sandbox.contacts].count("kept@example.com") == 1
    # The client's retry now finds the contact it never heard about.
    retry = client.post(CREATE, json=one_contact("kept@example.com")).json()
    assert retry["created_contacts"] == [] and len(retry["existing_contacts"]) == 1


def test_handler_raises_reset_sentinel(sandbox: ApolloSandbox) -> None:
    sandbox.script_faults(["reset:after"])
    with pytest.raises(SandboxConnectionReset) as caught:
        sandbox.handle("POST", BULK, {}, {"X-Api-Key": "k"}, b'{"details": []}')
    assert caught.value.applied is True


def test_invalid_fault_token() -> None:
    with pytest.raises(ValueError):
        ApolloSandbox().script_faults(["500", "teapot"])


def test_random_fail_and_throttle(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    failing = client_for(make_sandbox(fail_rate=1.0))
    assert failing.post(BULK, json=BODY).json() == {"error": "Internal server error"}
    throttled = client_for(make_sandbox(throttle_rate=1.0)).post(BULK, json=BODY)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"


def test_random_faults_are_deterministic(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    def run(sb: ApolloSandbox) -> list[int | str]:
        client = client_for(sb)
        outcomes: list[int | str] = []
        for _ in range(40):
            try:
                outcomes.append(client.post(BULK, json=BODY).status_code)
            except httpx.ReadError:
                outcomes.append("reset")
        return outcomes

    settings = {"fail_rate": 0.2, "throttle_rate": 0.2, "reset_rate": 0.2, "random_seed": 7}
    first = run(make_sandbox(**settings))
    assert first == run(make_sandbox(**settings))
    assert {500, 429, 200, "reset"} <= set(first)
    sb = make_sandbox(**settings)
    run(sb)
    sb.reset()  # a reset sandbox replays the same sequence
    assert run(sb) == first


@pytest.mark.parametrize(("fraction", "expected"), [(1.0, 1), (0.0, 0)])
def test_random_resets_before_or_after_apply(
    make_sandbox: Callable[..., ApolloSandbox],
    client_for: Callable[..., httpx.Client],
    fraction: float,
    expected: int,
) -> None:
    sb = make_sandbox(reset_rate=1.0, reset_after_apply_fraction=fraction)
    client = client_for(sb)
    with pytest.raises(httpx.ReadError):
        client.post(CREATE, json=one_contact("maybe@example.com"))
    assert [c["email"] for c in sb.contacts].count("maybe@example.com") == expected


def test_latency_uses_injected_sleep() -> None:
    slept: list[float] = []
    sb = ApolloSandbox(SandboxConfig(latency_ms=50, latency_jitter_ms=10, random_seed=3), sleep=slept.append)
    for _ in range(5):
        sb.handle("POST", BULK, {}, {"X-Api-Key": "k"}, b'{"details": []}')
    sb.handle("GET", "/_sandbox/state")  # admin calls are never delayed
    assert len(slept) == 5
    assert all(0.050 <= s <= 0.060 for s in slept)


def test_async_client_and_latency() -> None:
    sb = ApolloSandbox(SandboxConfig(latency_ms=100))

    async def scenario() -> tuple[list[int], float]:
        transport = sandbox_transport(sb)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.apollo.io") as client:
            started = time.perf_counter()
            calls = [client.post(BULK, json=BODY, headers={"X-Api-Key": "k"}) for _ in range(5)]
            responses = await asyncio.gather(*calls)
            return [r.status_code for r in responses], time.perf_counter() - started

    statuses, elapsed = asyncio.run(scenario())
    assert statuses == [200] * 5
    assert 0.1 <= elapsed < 0.4  # the five sleeps overlapped on the event loop (in sequence: 0.5 s)


def test_async_reset_raises_read_error(sandbox: ApolloSandbox) -> None:
    sandbox.script_faults(["reset"])

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=sandbox_transport(sandbox), base_url="https://x") as client:
            await client.post(BULK, json=BODY, headers={"X-Api-Key": "k"})

    with pytest.raises(httpx.ReadError):
        asyncio.run(scenario())


def test_admin_state_reset_and_faults(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    seeded = len(sandbox.contacts)
    client.post(CREATE, json=one_contact("new@example.com"))
    client.post(BULK, json=BODY)
    state = client.get("/_sandbox/state").json()
    assert len(state["contacts"]) == seeded + 1
    assert {"id", "email", "first_name", "last_name", "organization_name", "label_names"} <= set(state["contacts"][0])
    assert state["calls"] == {CREATE: 1, BULK: 1}
    assert state["requests"] == 2 and state["credits"] == 1 and state["rate_limited"] == 0

    scripted = client.post("/_sandbox/faults", json={"faults": ["500"]})
    assert scripted.json() == {"pending_faults": ["500"]}
    assert client.post("/_sandbox/faults", json={"faults": ["bogus"]}).status_code == 400
    assert client.post(BULK, json=BODY).status_code == 500

    assert client.post("/_sandbox/reset").status_code == 200
    state = client.get("/_sandbox/state").json()
    assert len(state["contacts"]) == seeded
    assert state["calls"] == {} and state["credits"] == 0 and state["requests"] == 0

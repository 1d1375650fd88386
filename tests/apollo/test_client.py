"""The Apollo client over httpx.MockTransport: retries, backoff, 429 handling, auth failures, layouts."""

import asyncio
import gc
import json
from collections.abc import Callable

import httpx
import pytest

from crmsync_plugins.apollo.client import ApolloClient
from crmsync_plugins.apollo.errors import ApolloAuthError, ApolloRejected, ApolloUnavailable, OutOfCredits
from crmsync_plugins.apollo.settings import ApolloSettings

KEY = "sk-canary-client-7f3a"


def scripted(responses: list[Callable[[httpx.Request], httpx.Response] | httpx.Response]) -> tuple[list, object]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = responses[min(len(seen), len(responses)) - 1]
        return step(request) if callable(step) else step

    return seen, httpx.MockTransport(handler)


def post(responses: list, **settings: object) -> tuple[object, list[httpx.Request], list[float], ApolloClient]:
    seen, transport = scripted(responses)
    delays: list[float] = []
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock[0] += seconds

    client = ApolloClient(
        ApolloSettings(api_key=KEY, **settings), transport=transport, clock=lambda: clock[0], sleep=sleep
    )

    async def go() -> object:
        try:
            return await client.post("people/bulk_match", {"details": [{"email": "a@b.co"}]})
        except Exception as exc:
            return exc
        finally:
            await client.aclose()

    return asyncio.run(go()), seen, delays, client


OK = httpx.Response(200, json={"status": "success", "matches": []})


def test_direct_layout_uses_x_api_key_and_api_v1_paths() -> None:
    result, seen, _, _ = post([OK])
    assert result == {"status": "success", "matches": []}
    assert seen[0].url == "https://api.apollo.io/api/v1/people/bulk_match"
    assert seen[0].headers["x-api-key"] == KEY
    assert "authorization" not in seen[0].headers
    assert KEY not in str(seen[0].url) and KEY not in seen[0].content.decode()


def test_gateway_layout_uses_bearer_and_apollo_paths() -> None:
    _, seen, _, _ = post([OK], base_url="https://api.aisa.one/apis/v1")
    assert seen[0].url == "https://api.aisa.one/apis/v1/apollo/people/bulk_match"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in seen[0].headers


def test_429_with_retry_after_waits_that_long_then_succeeds() -> None:
    result, seen, delays, client = post([httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "x"}), OK])
    assert result["status"] == "success" and len(seen) == 2
    assert 3.0 in delays and client.stats.wait_s == 3.0
    assert client.stats.rate_limited == 1 and client.stats.retries == 1


def test_429_without_retry_after_backs_off() -> None:
    result, _, delays, _ = post([httpx.Response(429, json={"message": "per hour"}), OK], backoff_s=0.5)
    assert result["status"] == "success"
    assert any(0.25 <= d <= 0.5 for d in delays)


def test_5xx_then_success_with_growing_backoff() -> None:
    result, seen, delays, _ = post([httpx.Response(500), httpx.Response(502), OK], backoff_s=1.0)
    assert result["status"] == "success" and len(seen) == 3
    retry_delays = [d for d in delays if d > 0]
    assert 0.5 <= retry_delays[0] <= 1.0 and 1.0 <= retry_delays[1] <= 2.0


def test_exhausted_retries_raise_unavailable_with_the_reason() -> None:
    result, seen, _, _ = post([httpx.Response(503, json={"error": "down for maintenance"})], max_attempts=3)
    assert isinstance(result, ApolloUnavailable)
    assert "down for maintenance" in str(result) and "3 attempts" in str(result)
    assert len(seen) == 3


def test_dropped_connection_is_retried() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    result, seen, _, _ = post([reset, OK])
    assert result["status"] == "success" and len(seen) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_stops_everything(status: int) -> None:
    result, seen, _, client = post([httpx.Response(status, text="Invalid API key. Please check")])
    assert isinstance(result, ApolloAuthError) and len(seen) == 1
    assert "Invalid API key" in str(result) and KEY not in str(result)

    async def again() -> None:
        await client.post("people/bulk_match", {})

    with pytest.raises(ApolloAuthError):
        asyncio.run(again())


def test_422_is_not_retried() -> None:
    result, seen, _, _ = post([httpx.Response(422, json={"error": "Parameters misconfigured. bad email"})])
    assert isinstance(result, ApolloRejected) and len(seen) == 1
    assert "Parameters misconfigured" in str(result)


def test_402_means_out_of_credits() -> None:
    result, _, _, _ = post([httpx.Response(402, json={"error": "insufficient credits"})])
    assert isinstance(result, OutOfCredits)


def test_error_body_encoded_twice_is_read() -> None:
    body = json.dumps(json.dumps({"error_code": "X", "error_message": "nested message"}))
    result, _, _, _ = post([httpx.Response(400, text=body)])
    assert "nested message" in str(result)


def test_uncertain_failure_rewrites_the_retry_body() -> None:
    seen_bodies: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen_bodies.append(json.loads(request.content))
        return httpx.Response(500) if len(seen_bodies) == 1 else OK

    _, transport = scripted([record])

    async def go() -> None:
        client = ApolloClient(ApolloSettings(api_key=KEY), transport=transport, sleep=lambda s: asyncio.sleep(0))
        await client.post(
            "contacts/bulk_create", {"run_dedupe": False}, on_uncertain_retry=lambda b: {**b, "run_dedupe": True}
        )
        await client.aclose()

    asyncio.run(go())
    assert [body["run_dedupe"] for body in seen_bodies] == [False, True]


def test_wait_time_adds_up_across_concurrent_calls() -> None:
    from crmsync_plugins.apollo.budget import RateLimit

    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    async def go() -> float:
        settings = ApolloSettings(api_key=KEY, rate_limits={"people/bulk_match": RateLimit(per_minute=3)})
        client = ApolloClient(settings, transport=scripted([OK])[1], clock=lambda: clock[0], sleep=sleep)
        await asyncio.gather(*(client.post("people/bulk_match", {}) for _ in range(7)))
        await client.aclose()
        return client.stats.wait_s

    # 7 calls at 3 a minute: the 4th waits for the second window, the 7th for the third.
    assert asyncio.run(go()) == pytest.approx(2 * 60.25)


def test_an_answer_is_freed_as_soon_as_it_is_read_without_waiting_for_the_garbage_collector() -> None:
    """httpx links a response and its stream both ways; left linked, every answer (a bulk call's ~100 KB) stayed
    in memory until the next collection, which a run paces out (connector_core.collector)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "matches": [None] * 10, "pad": "x" * 10_000})

    client = ApolloClient(ApolloSettings(api_key=KEY), transport=httpx.MockTransport(handler))

    async def go() -> None:
        for _ in range(20):
            await client.post("people/bulk_match", {"details": [{"email": "a@b.co"}]})
        await client.aclose()

    def responses() -> int:
        return sum(isinstance(thing, httpx.Response) for thing in gc.get_objects())

    gc.collect()
    before = responses()  # this module's own (OK above)
    gc.disable()
    try:
        asyncio.run(go())
        alive = responses() - before
    finally:
        gc.enable()
    assert alive == 0

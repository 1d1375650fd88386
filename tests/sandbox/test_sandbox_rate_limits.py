"""Fixed-window rate limits driven by a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from crmsync_plugins.apollo.sandbox import ApolloSandbox, RateLimits

BULK = "/api/v1/people/bulk_match"
BODY = {"details": [{"email": "tim@apollo.io"}]}


def test_minute_window_headers_429_and_reset(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client], clock
) -> None:
    sb = make_sandbox(rate_limit_per_minute=2)
    client = client_for(sb)
    clock.now = 6_000.0 + 15  # 45 s before the minute window rolls over

    first = client.post(BULK, json=BODY)
    assert first.headers["x-rate-limit-minute"] == "2"
    assert first.headers["x-minute-usage"] == "1"
    assert first.headers["x-minute-requests-left"] == "1"
    assert first.headers["x-rate-limit-hourly"] == ""  # unlimited windows send an empty value
    assert first.headers["x-hourly-usage"] == "1"
    assert "x-24-hour-requests-left" in first.headers
    second = client.post(BULK, json=BODY)
    assert second.headers["x-minute-requests-left"] == "0"

    refused = client.post(BULK, json=BODY)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "45"
    assert refused.json() == {
        "message": "The maximum number of api calls allowed for api/v1/people/bulk_match is 2 times per minute. "
        "Please upgrade your plan from https://app.apollo.io/#/settings/plans/upgrade."
    }
    assert refused.headers["x-minute-usage"] == "2"  # a refused call is not counted
    clock.advance(44.5)
    assert client.post(BULK, json=BODY).headers["Retry-After"] == "1"  # never 0

    clock.advance(0.5)
    again = client.post(BULK, json=BODY)
    assert again.status_code == 200
    assert again.headers["x-minute-usage"] == "1"
    assert again.headers["x-hourly-usage"] == "3"
    state = sb.state()
    assert state["rate_limited"] == 2
    assert state["calls"] == {BULK: 5}
    assert state["credits"] == 3  # refused calls cost nothing


def test_hour_window_names_the_hour(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client], clock
) -> None:
    client = client_for(make_sandbox(rate_limit_per_minute=100, rate_limit_per_hour=1))
    clock.now = 3_600.0 * 10
    assert client.post(BULK, json=BODY).status_code == 200
    refused = client.post(BULK, json=BODY)
    assert refused.status_code == 429
    assert "1 times per hour" in refused.json()["message"]
    assert refused.headers["Retry-After"] == "3600"


def test_day_window(make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client], clock) -> None:
    client = client_for(make_sandbox(rate_limit_per_day=1))
    clock.now = 86_400.0 * 3 + 86_000
    client.post(BULK, json=BODY)
    refused = client.post(BULK, json=BODY)
    assert "times per day" in refused.json()["message"]
    assert refused.headers["Retry-After"] == "400"


def test_no_retry_after_header(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    client = client_for(make_sandbox(rate_limit_per_minute=1, retry_after_header=False))
    client.post(BULK, json=BODY)
    refused = client.post(BULK, json=BODY)
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers
    assert refused.headers["x-minute-requests-left"] == "0"


def test_limits_are_per_endpoint_and_shared_by_layouts(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    sb = make_sandbox(
        rate_limit_per_minute=1, endpoint_rate_limits={"contacts/bulk_create": RateLimits(per_minute=None)}
    )
    direct, gateway = client_for(sb), client_for(sb, gateway=True)
    assert direct.post(BULK, json=BODY).status_code == 200
    # The gateway spends the same account's quota.
    assert gateway.post("/apis/v1/apollo/people/bulk_match", json=BODY).status_code == 429
    assert direct.post("/api/v1/organizations/bulk_enrich", json={"domains": ["apollo.io"]}).status_code == 200
    for _ in range(3):
        assert direct.post("/api/v1/contacts/bulk_create", json={"contacts": []}).status_code == 200


def test_auth_failures_carry_no_rate_headers(make_sandbox: Callable[..., ApolloSandbox]) -> None:
    response = make_sandbox(rate_limit_per_minute=5).handle("POST", BULK, body=b"{}")
    assert response.status == 401
    assert "x-minute-usage" not in response.headers


def test_reset_clears_windows(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    sb = make_sandbox(rate_limit_per_minute=1)
    client = client_for(sb)
    client.post(BULK, json=BODY)
    assert client.post(BULK, json=BODY).status_code == 429
    sb.reset()
    assert client.post(BULK, json=BODY).status_code == 200

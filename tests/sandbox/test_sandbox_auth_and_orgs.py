"""Both deployments' paths and auth styles, call counting, and organizations/bulk_enrich."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox

RATE_HEADERS = ("x-rate-limit-minute", "x-minute-usage", "x-hourly-usage", "x-24-hour-usage")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("people/bulk_match", {"details": [{"email": "tim@apollo.io"}]}),
        ("contacts/bulk_create", {"contacts": [{"first_name": "A", "last_name": "B"}]}),
        ("organizations/bulk_enrich", {"domains": ["apollo.io"]}),
    ],
)
def test_both_layouts_serve_each_operation(
    sandbox: ApolloSandbox, client_for: Callable[..., httpx.Client], path: str, body: dict[str, object]
) -> None:
    direct = client_for(sandbox).post(f"/api/v1/{path}", json=body)
    gateway = client_for(sandbox, gateway=True).post(f"/apis/v1/apollo/{path}", json=body)
    assert direct.status_code == gateway.status_code == 200
    assert direct.json().keys() == gateway.json().keys()
    assert sandbox.calls == {f"/api/v1/{path}": 1, f"/apis/v1/apollo/{path}": 1}


def test_bearer_key_on_direct_layout_is_refused(sandbox: ApolloSandbox) -> None:
    response = sandbox.handle(
        "POST", "/api/v1/people/bulk_match", {}, {"Authorization": "Bearer test-key"}, b'{"details": []}'
    )
    assert response.status == 401
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.body.decode().startswith("Invalid API key.")
    assert not any(name.lower().startswith("x-") for name in response.headers)


def test_missing_key_is_refused_on_both_layouts(sandbox: ApolloSandbox) -> None:
    assert sandbox.handle("POST", "/api/v1/people/bulk_match", body=b'{"details": []}').status == 401
    gateway = sandbox.handle("POST", "/apis/v1/apollo/people/bulk_match", body=b'{"details": []}')
    assert gateway.status == 401
    assert set(gateway.json()["error"]) == {"type", "code", "message", "request_id"}


def test_api_key_header_on_gateway_is_refused(sandbox: ApolloSandbox) -> None:
    response = sandbox.handle("POST", "/apis/v1/apollo/people/bulk_match", {}, {"X-Api-Key": "k"}, b"{}")
    assert response.status == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_configured_key_must_match(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    sb = make_sandbox(api_key="sk-right")
    body = {"details": [{"email": "tim@apollo.io"}]}
    assert client_for(sb, key="sk-wrong").post("/api/v1/people/bulk_match", json=body).status_code == 401
    wrong_gateway = client_for(sb, gateway=True, key="sk-wrong").post("/apis/v1/apollo/people/bulk_match", json=body)
    assert wrong_gateway.status_code == 401
    assert wrong_gateway.json()["error"]["code"] == "invalid_api_key"
    assert client_for(sb, key="sk-right").post("/api/v1/people/bulk_match", json=body).status_code == 200
    assert client_for(sb, gateway=True, key="sk-right").post("/apis/v1/apollo/people/bulk_match", json=body).is_success


def test_successful_calls_carry_rate_headers(client: httpx.Client) -> None:
    response = client.post("/api/v1/people/bulk_match", json={"details": []})
    assert response.status_code == 200
    for header in RATE_HEADERS:
        assert header in response.headers


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.post("/api/v1/people/teleport", json={}).status_code == 404
    assert client.get("/api/v1/people/bulk_match").status_code == 404


def test_bulk_enrich_organizations(client: httpx.Client) -> None:
    domains = [
        "apollo.io",
        "outreach.com",
        "https://www.microsoft.com/",
        "brightforge.io",
        "nowhere.example",
        "APOLLO.IO",
    ]
    response = client.post("/api/v1/organizations/bulk_enrich", json={"domains": domains})
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "success"
    assert body["total_requested_domains"] == 6
    assert body["unique_domains"] == 5
    assert body["unique_enriched_records"] == 4
    assert body["missing_records"] == 1
    names = [org["name"] for org in body["organizations"]]
    assert names == ["Apollo.io", "Outreach, Inc.", "Microsoft", "Brightforge Labs"]


def test_bulk_enrich_limit_and_validation(client: httpx.Client) -> None:
    too_many = client.post("/api/v1/organizations/bulk_enrich", json={"domains": [f"d{i}.com" for i in range(11)]})
    assert too_many.status_code == 400
    assert client.post("/api/v1/organizations/bulk_enrich", json={}).status_code == 400


def test_single_organization_enrich(client: httpx.Client) -> None:
    assert client.get("/api/v1/organizations/enrich", params={"domain": "apollo.io"}).json()["organization"]["name"]

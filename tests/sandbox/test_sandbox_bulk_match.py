"""people/bulk_match and people/match: identifiers, alignment, flags, credits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox

TIM_ID = "6453e9bd8f50d40001f1e348"
BULK = "/api/v1/people/bulk_match"


def match(client: httpx.Client, details: list[dict[str, Any]], **params: str) -> httpx.Response:
    return client.post(BULK, params=params, json={"details": details})


def _person_with_mobile(sandbox: ApolloSandbox, wanted: bool) -> dict[str, Any]:
    return next(
        p
        for p in sandbox.people.people
        if p.get("email") and any(n["type"] == "mobile" for n in p.get("phone_numbers", [])) == wanted
    )


@pytest.mark.parametrize(
    "detail",
    [
        {"id": TIM_ID},
        {"email": "  TIM@Apollo.io "},
        {"hashed_email": hashlib.md5(b"tim@apollo.io").hexdigest()},
        {"hashed_email": hashlib.sha256(b"tim@apollo.io").hexdigest().upper()},
        {"linkedin_url": "https://linkedin.com/in/tim-zheng-677ba010/"},
        {"name": "tim  zheng", "domain": "https://www.apollo.io/"},
        {"first_name": "Tim", "last_name": "Zheng", "organization_name": "Apollo"},
        {"first_name": "Tim", "last_name": "Zheng", "organization_name": "Braingenie"},  # a previous employer
    ],
    ids=["id", "email", "md5", "sha256", "linkedin", "name+domain", "name+org", "name+previous-org"],
)
def test_matches_tim_by_each_identifier(client: httpx.Client, detail: dict[str, Any]) -> None:
    response = match(client, [detail])
    assert response.status_code == 200
    body = response.json()
    assert [m["id"] for m in body["matches"]] == [TIM_ID]
    assert body["matches"][0]["organization"]["primary_domain"] == "apollo.io"


def test_documented_sha256_sample_matches_roy(client: httpx.Client) -> None:
    # The reference's sample hash for Roy is not sha256(roy@apollo.io): the stored hash must match too.
    digest = "97817c0c49994eb500ad0a5e7e2d8aed51977b26424d508f66e4e8887746a152"
    assert match(client, [{"hashed_email": digest}]).json()["matches"][0]["name"] == "Roy Chung"


def test_generated_person_matches_by_sha256(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    person = sandbox.people.people[10]
    digest = hashlib.sha256(person["email"].encode()).hexdigest()
    assert match(client, [{"hashed_email": digest}]).json()["matches"][0]["id"] == person["id"]


def test_name_without_company_does_not_match(client: httpx.Client) -> None:
    body = match(client, [{"first_name": "Tim", "last_name": "Zheng"}]).json()
    assert body["status"] == "success"
    assert body["matches"] == [None]
    assert body["missing_records"] == 1
    assert body["credits_consumed"] == 0


def test_matches_are_positional_with_nulls(client: httpx.Client) -> None:
    details = [{"email": "nobody@nowhere.example"}, {"email": "roy@apollo.io"}, {"id": "0" * 24}]
    body = match(client, details).json()
    assert body["matches"][0] is None and body["matches"][2] is None
    assert body["matches"][1]["name"] == "Roy Chung"
    assert body["error_code"] is None and body["error_message"] is None
    assert body["total_requested_enrichments"] == 3
    assert body["unique_enriched_records"] == 1
    assert body["missing_records"] == 2
    assert body["credits_consumed"] == 1
    assert isinstance(body["request_id"], int) and -(2**63) <= body["request_id"] < 2**63


def test_omit_missing_matches_drops_nulls(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    client = client_for(make_sandbox(omit_missing_matches=True))
    body = match(client, [{"email": "nobody@nowhere.example"}, {"email": "roy@apollo.io"}]).json()
    assert [m["name"] for m in body["matches"]] == ["Roy Chung"]
    assert body["missing_records"] == 1


def test_more_than_ten_details_is_refused(client: httpx.Client) -> None:
    response = match(client, [{"email": f"p{i}@x.com"} for i in range(11)])
    assert response.status_code == 400
    assert response.json() == {
        "status": "failed",
        "error_code": "RECORD_LIMIT_EXCEEDED",
        "error_message": "cannot enrich more than 10 in a single request",
    }


def test_missing_details_is_invalid_request(client: httpx.Client) -> None:
    response = client.post(BULK, json={})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("flag", ["reveal_phone_number", "run_waterfall_email", "run_waterfall_phone"])
def test_flags_needing_a_webhook_are_refused_without_one(client: httpx.Client, flag: str) -> None:
    response = match(client, [{"email": "tim@apollo.io"}], **{flag: "true"})
    assert response.status_code == 400
    assert "webhook_url" in response.json()["error_message"]


def test_reveal_phone_number_reports_pending_and_defers_the_mobile_charge(
    sandbox: ApolloSandbox, client: httpx.Client
) -> None:
    with_mobile, without_mobile = _person_with_mobile(sandbox, True), _person_with_mobile(sandbox, False)
    details = [{"id": with_mobile["id"]}, {"id": without_mobile["id"]}]
    body = match(client, details, reveal_phone_number="true", webhook_url="https://hooks.example/x").json()
    assert body["credits_consumed"] == 1 + 1  # the mobile's 8 are charged when it is delivered
    assert body["phone_enrichment"]["status"] == "pending"
    assert isinstance(body["phone_enrichment"]["request_id"], str)  # a string in Apollo's OpenAPI example
    # Mobile numbers only ever arrive at the webhook.
    assert all(n["type"] != "mobile" for m in body["matches"] for n in m["phone_numbers"])
    assert sandbox.credits == 2


def test_waterfall_response_shape(client: httpx.Client) -> None:
    response = match(
        client,
        [{"email": "tim@apollo.io"}],
        run_waterfall_email="true",
        webhook_url="https://hooks.example/w",
    )
    body = response.json()
    assert response.status_code == 200
    assert body["waterfall"]["status"] == "accepted"
    for absent in ("unique_enriched_records", "missing_records", "credits_consumed"):
        assert absent not in body
    assert "email" not in body["matches"][0] and "email_status" not in body["matches"][0]
    assert body["matches"][0]["name"] == "Tim Zheng"


def test_personal_emails_only_when_revealed(client: httpx.Client) -> None:
    hidden = match(client, [{"email": "roy@apollo.io"}]).json()["matches"][0]
    assert hidden["personal_emails"] == []
    # Flags are also accepted in the JSON body.
    shown = client.post(BULK, json={"details": [{"email": "roy@apollo.io"}], "reveal_personal_emails": True})
    assert shown.json()["matches"][0]["personal_emails"] == ["royychung@gmail.com"]


def test_credits_count_distinct_matches_only(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    body = match(client, [{"email": "tim@apollo.io"}, {"id": TIM_ID}, {"email": "ghost@nowhere.example"}]).json()
    assert body["unique_enriched_records"] == 1
    assert body["credits_consumed"] == 1
    match(client, [{"email": "roy@apollo.io"}])
    match(client, [{"email": "ghost@nowhere.example"}])
    assert sandbox.credits == 2
    assert sandbox.state()["credits"] == 2


def test_single_people_match(client: httpx.Client) -> None:
    found = client.post("/api/v1/people/match", params={"email": "tim@apollo.io"})
    assert found.json()["person"]["id"] == TIM_ID
    missing = client.post("/api/v1/people/match", json={"email": "ghost@nowhere.example"})
    assert missing.json()["person"] is None

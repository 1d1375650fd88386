"""contacts/bulk_create: creation, dedupe order, unchanged existing contacts, whole-batch validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox

CREATE = "/api/v1/contacts/bulk_create"
# Contacts of the default seed.
ARJUN_ID = "65ef1c2a9d1e4b0001a3c101"  # arjun@redwoodhospitality.com
SOPHIA_ID = "65ef1c2a9d1e4b0001a3c102"  # no email; Sophia Flores at "PINECREST OUTDOOR"
HENRY_ID = "65ef1c2a9d1e4b0001a3c103"  # stored as Hperez@Meridianlegal.Com
SOPHIA_M_ID = "65ef1c2a9d1e4b0001a3c104"  # hubspot_id 5501
DANA_ID = "65ef1c2a9d1e4b0001a3c105"  # salesforce_id 0035e00000AbCdE


def create(client: httpx.Client, contacts: list[dict[str, Any]], **top: Any) -> httpx.Response:
    return client.post(CREATE, json={"contacts": contacts, **top})


def seed_contact(sandbox: ApolloSandbox, contact_id: str) -> dict[str, Any]:
    return next(c for c in sandbox.contacts if c["id"] == contact_id)


def test_created_contacts_carry_labels_owner_and_ids(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    contact = {
        "first_name": "Nora",
        "last_name": "Quinn",
        "email": " Nora.Quinn@Example.com ",
        "title": "Engineer",
        "primary_title": "Principal Engineer",
        "organization_name": "Example Corp",
        "typed_custom_fields": {"60c39ed82bd02f01154c470a": "2024"},
        "phone": "+1 (415) 555-0100",
    }
    response = create(client, [contact], append_label_names=["crmsync", "demo"], owner_id="u1")
    assert response.status_code == 200
    body = response.json()
    assert body["existing_contacts"] == []
    (created,) = body["created_contacts"]
    assert len(created["id"]) == 24 and int(created["id"], 16) >= 0
    assert created["label_names"] == ["crmsync", "demo"]
    assert created["owner_id"] == "u1"
    assert created["email"] == "nora.quinn@example.com"
    assert created["title"] == "Principal Engineer"
    assert created["name"] == "Nora Quinn"
    assert created["typed_custom_fields"] == {"60c39ed82bd02f01154c470a": "2024"}
    assert created["phone_numbers"][0]["sanitized_number"] == "+14155550100"
    for field in (
        "account_id",
        "team_id",
        "contact_stage_id",
        "created_at",
        "updated_at",
        "organization_name",
    ):
        assert created[field]
    assert seed_contact(sandbox, created["id"]) == created


def test_without_dedupe_duplicates_are_created(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    before = len(sandbox.contacts)
    dup = {"first_name": "Arjun", "last_name": "Moore", "email": "arjun@redwoodhospitality.com"}
    body = create(client, [dup, dup]).json()
    assert len(body["created_contacts"]) == 2 and body["existing_contacts"] == []
    assert len(sandbox.contacts) == before + 2


def test_dedupe_returns_existing_unchanged(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    original = seed_contact(sandbox, ARJUN_ID)
    submitted = {
        "first_name": "Arjun",
        "last_name": "Moore",
        "email": "ARJUN@redwoodhospitality.com",
        "title": "CEO",
    }
    body = create(client, [submitted], run_dedupe=True, append_label_names=["new-label"]).json()
    assert body["created_contacts"] == []
    assert body["existing_contacts"] == [original]
    # Bulk create never updates a match: not its title, not its labels.
    assert seed_contact(sandbox, ARJUN_ID) == original
    assert original["label_names"] == ["Imported 2024"]


@pytest.mark.parametrize(
    ("submitted", "expected_id"),
    [
        ({"id": ARJUN_ID, "first_name": "Other", "last_name": "Person", "email": "x@y.com"}, ARJUN_ID),
        ({"first_name": "A", "last_name": "B", "hubspot_id": "5501"}, SOPHIA_M_ID),
        ({"first_name": "A", "last_name": "B", "salesforce_id": "0035e00000AbCdE"}, DANA_ID),
        ({"first_name": "A", "last_name": "B", "email": "hperez@meridianlegal.com"}, HENRY_ID),
        (
            {
                "first_name": "A",
                "last_name": "B",
                "contact_emails": [{"email": "dana@whitfieldconsulting.example"}],
            },
            DANA_ID,
        ),
        (
            {
                "first_name": "sophia",
                "last_name": "FLORES",
                "email": "s.f@else.com",
                "organization_name": "Pinecrest Outdoor",
            },
            SOPHIA_ID,
        ),
    ],
    ids=["id", "hubspot_id", "salesforce_id", "email-case", "contact_emails", "name+company"],
)
def test_dedupe_matches_each_key(client: httpx.Client, submitted: dict[str, Any], expected_id: str) -> None:
    body = create(client, [submitted], run_dedupe=True).json()
    assert [c["id"] for c in body["existing_contacts"]] == [expected_id]
    assert body["created_contacts"] == []


def test_dedupe_order_id_beats_email_beats_name(client: httpx.Client) -> None:
    # The id points at Arjun, the email at Henry, the name + company at Sophia: the id wins.
    everything = {
        "id": ARJUN_ID,
        "first_name": "Sophia",
        "last_name": "Flores",
        "organization_name": "Pinecrest Outdoor",
        "email": "hperez@meridianlegal.com",
    }
    assert create(client, [everything], run_dedupe=True).json()["existing_contacts"][0]["id"] == ARJUN_ID
    email_and_name = {key: value for key, value in everything.items() if key != "id"}
    assert create(client, [email_and_name], run_dedupe=True).json()["existing_contacts"][0]["id"] == HENRY_ID


def test_name_without_company_match_is_created(client: httpx.Client) -> None:
    body = create(
        client,
        [{"first_name": "Sophia", "last_name": "Flores", "organization_name": "Elsewhere"}],
        run_dedupe=True,
    )
    assert len(body.json()["created_contacts"]) == 1


def test_dedupe_within_one_batch(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    first = {"first_name": "Ivy", "last_name": "Stone", "email": "ivy@stone.example"}
    second = {"first_name": "Ivy", "last_name": "Stone", "email": " IVY@stone.example"}
    body = create(client, [first, second], run_dedupe=True, append_label_names=["batch"]).json()
    (created,) = body["created_contacts"]
    (existing,) = body["existing_contacts"]
    assert existing == created
    assert sum(c["email"] == "ivy@stone.example" for c in sandbox.contacts) == 1


def test_contacts_with_labels_alias(client: httpx.Client) -> None:
    response = client.post(CREATE, json={"contacts_with_labels": [{"first_name": "Al", "last_name": "Ias"}]})
    assert len(response.json()["created_contacts"]) == 1


def test_more_than_100_contacts_is_refused(sandbox: ApolloSandbox, client: httpx.Client) -> None:
    before = len(sandbox.contacts)
    response = create(client, [{"first_name": f"P{i}", "last_name": "X"} for i in range(101)])
    assert response.status_code == 422
    assert response.json() == {"error": "Please limit your array to 100 contacts or fewer."}
    assert len(sandbox.contacts) == before


@pytest.mark.parametrize("bad", ["bob at example.com", "bob@exa mple.com", "no-at-sign"])
def test_one_bad_email_rejects_the_whole_batch(sandbox: ApolloSandbox, client: httpx.Client, bad: str) -> None:
    before = len(sandbox.contacts)
    good = {"first_name": "Good", "last_name": "One", "email": "good@example.com"}
    response = create(client, [good, {"first_name": "Bad", "last_name": "One", "email": bad}, good])
    assert response.status_code == 422
    message = response.json()["error"]
    assert message.startswith("Parameters misconfigured.")
    assert bad in message
    assert len(sandbox.contacts) == before


def test_reject_marker_fails_the_batch(client: httpx.Client) -> None:
    response = create(client, [{"first_name": "__reject__", "last_name": "X"}])
    assert response.status_code == 422
    assert response.json()["error"].startswith("Parameters misconfigured.")


def test_unknown_owner_is_refused_when_team_is_configured(
    make_sandbox: Callable[..., ApolloSandbox], client_for: Callable[..., httpx.Client]
) -> None:
    client = client_for(make_sandbox(owner_ids=frozenset({"owner-1"})))
    assert create(client, [{"first_name": "A", "last_name": "B"}], owner_id="owner-1").status_code == 200
    assert create(client, [{"first_name": "A", "last_name": "B"}], owner_id="stranger").status_code == 422


def test_contacts_must_be_an_array(client: httpx.Client) -> None:
    assert client.post(CREATE, json={"contacts": "nope"}).status_code == 422
    assert client.post(CREATE, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422

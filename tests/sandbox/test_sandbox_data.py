"""The packaged seed, custom seeds, and the demo's example leads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import (
    DEFAULT_SEED,
    ApolloSandbox,
    SandboxConfig,
    example_leads,
    load_seed,
)

LEAD_KEYS = ["First Name", "Last Name", "Email", "Company", "Website", "Title"]


def test_default_seed_is_small_and_holds_the_reference_people() -> None:
    assert DEFAULT_SEED.stat().st_size < 150_000
    seed = load_seed()
    assert len(seed.people) == 302
    by_name = {p["name"]: p for p in seed.people[:2]}
    assert by_name["Tim Zheng"]["id"] == "6453e9bd8f50d40001f1e348"
    assert by_name["Tim Zheng"]["organization"]["primary_domain"] == "apollo.io"
    assert by_name["Roy Chung"]["email"] == "roy@apollo.io"
    assert len({p["id"] for p in seed.people}) == 302
    assert all(len(p["id"]) == 24 for p in seed.people)
    assert load_seed().people == seed.people  # generation is deterministic


def test_custom_seed_replaces_the_default(tmp_path: Path, client_for: Callable[..., httpx.Client]) -> None:
    seed_file = tmp_path / "seed.json"
    person = {
        "id": "a" * 24,
        "first_name": "Solo",
        "last_name": "Person",
        "name": "Solo Person",
        "email": "solo@p.io",
    }
    seed_file.write_text(json.dumps({"people": [person], "contacts": [{"first_name": "C", "email": "c@p.io"}]}))
    sandbox = ApolloSandbox(SandboxConfig(seed_path=seed_file))
    assert len(sandbox.people) == 1
    assert [c["email"] for c in sandbox.contacts] == ["c@p.io"]
    body = client_for(sandbox).post("/api/v1/people/bulk_match", json={"details": [{"email": "tim@apollo.io"}]})
    assert body.json()["matches"] == [None]


def test_malformed_seed_is_refused(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps({"people": [{"name": "no id"}]}))
    with pytest.raises(ValueError):
        load_seed(seed_file)


def test_example_leads_mix_matched_unmatched_and_existing(client_for: Callable[..., httpx.Client]) -> None:
    leads = example_leads()
    assert len(leads) == 25
    assert leads == example_leads()
    assert all(list(lead) == LEAD_KEYS for lead in leads)
    assert all(lead["Email"] and lead["Company"] for lead in leads)
    assert any(lead["Email"] != lead["Email"].strip().lower() for lead in leads)

    sandbox = ApolloSandbox()
    client = client_for(sandbox)
    matched = 0
    for start in range(0, len(leads), 10):
        batch = leads[start : start + 10]
        details = [{"email": lead["Email"], "organization_name": lead["Company"]} for lead in batch]
        body = client.post("/api/v1/people/bulk_match", json={"details": details}).json()
        matched += sum(m is not None for m in body["matches"])
    assert matched == 22  # 3 leads are unknown to the database

    contacts = [
        {
            "first_name": lead["First Name"],
            "last_name": lead["Last Name"],
            "email": lead["Email"].strip(),
            "organization_name": lead["Company"],
        }
        for lead in leads
    ]
    body = client.post("/api/v1/contacts/bulk_create", json={"contacts": contacts, "run_dedupe": True}).json()
    assert len(body["existing_contacts"]) == 3  # by email, by email in another case, by name + company
    assert len(body["created_contacts"]) + len(body["existing_contacts"]) == 25


@pytest.mark.parametrize("n", [0, 1, 3, 10, 100])
def test_example_leads_sizes(n: int) -> None:
    leads = example_leads(n)
    assert len(leads) == n
    assert len({lead["Email"].strip().lower() for lead in leads}) == n

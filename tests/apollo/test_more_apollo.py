"""Organization enrichment, lost-response replays and waterfall responses."""

from __future__ import annotations

from pathlib import Path

from connector_core.testing import read_jsonl, run_job

from .conftest import env, people, write_job, write_leads, write_orgs_job


def test_lost_response_replay_routes_our_new_contacts_to_created(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(5))
    # The bulk_match call goes through; bulk_create is applied but its response is lost (connection reset).
    sandbox.sandbox.script_faults(["ok", "reset:after"])
    report = run_job(write_job(tmp_path, contacts="run_dedupe: false"), env(sandbox))
    assert report.status == "success", report.failure
    created = read_jsonl(tmp_path / "out" / "created.jsonl")
    assert len(created) == 5 and not (tmp_path / "out" / "existing.jsonl").read_text()
    emails = [c["email"] for c in sandbox.sandbox.state()["contacts"]]
    assert len(emails) == len(set(emails))  # the replay created no duplicate
    assert sandbox.sandbox.state()["calls"]["/api/v1/contacts/bulk_create"] == 2


def test_waterfall_response_without_credit_counts(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(4))
    enrich = "run_waterfall_email: true\nwebhook_url: https://hooks.example/secret-token"
    report = run_job(write_job(tmp_path, enrich=enrich), env(sandbox))
    assert report.status == "success", report.failure
    assert report.streams["enrich.matched"] == 4
    api = report.extra["api"]
    # Apollo leaves the count out: nothing is confirmed, the worst case is reported as at risk, the call as unknown.
    # The answer leaves the count out (the call is reported as unknown); the delivered payload then says what the
    # waterfall cost, which replaces the worst case held at risk meanwhile.
    assert api["credits_confirmed"] == 4 and api["credits_at_risk"] == 0 and api["credits_unreported_calls"] == 1


def test_organizations_bulk_enrich_merges_known_domains(tmp_path: Path, sandbox) -> None:
    rows = [*people(12), {"domain": "unknown-company.invalid"}, {"domain": "APOLLO.IO"}]
    write_leads(tmp_path, rows)
    spec = write_orgs_job(tmp_path)
    report = run_job(spec, env(sandbox))
    assert report.status == "success", report.failure
    out = read_jsonl(tmp_path / "out.jsonl")
    assert len(out) == 14
    by_domain = {r["domain"]: r for r in out}
    assert by_domain["APOLLO.IO"]["organization_name"] == "Apollo.io"
    assert "organization_name" not in by_domain["unknown-company.invalid"]  # unmatched is not an error
    domains = {(r["domain"] or "").lower() for r in rows} - {""}
    calls = sandbox.sandbox.state()["calls"]["/api/v1/organizations/bulk_enrich"]
    assert calls == -(-len(domains) // 10)


def test_dedupe_by_name_and_email_domain_joins_the_existing_contact(tmp_path: Path, sandbox) -> None:
    first, second = people(2)
    # Same person under a second address at the same company, and no organization name to go by:
    # Apollo's dedupe matches name + company (by email domain) and answers with the first address.
    twin = {**first, "organization_name": None, "email": "other." + first["email"]}
    write_leads(tmp_path, [{**first, "organization_name": None}, second])
    assert run_job(write_job(tmp_path), env(sandbox)).status == "success"
    write_leads(tmp_path, [twin])
    report = run_job(write_job(tmp_path), env(sandbox))
    assert report.status == "success" and report.errors["count"] == 0
    existing = read_jsonl(tmp_path / "out" / "existing.jsonl")
    assert [r["email"] for r in existing] == [twin["email"]]
    assert existing[0]["apollo_contact"]["email"] == first["email"].lower()

"""contacts/bulk_create as Apollo really answers: whole-request 422s, bounded bisection, dedupe on identifiers the
request cannot be joined on, and twins within a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_core.testing import run_job
from crmsync_plugins.apollo.errors import is_batch_level
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

from .conftest import env, people, write_job, write_leads
from .replay import EXAMPLES, example, install
from .test_openapi_replay import ENV, many_leads, matched, outputs, router

BATCH_LEVEL_EXAMPLES = sorted(name for name in EXAMPLES["contacts/bulk_create"] if name.startswith("422"))


@pytest.mark.parametrize("name", BATCH_LEVEL_EXAMPLES)
def test_whole_request_422_examples_send_the_batch_to_errors_in_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    replay = install(monkeypatch, router(contacts=example("contacts/bulk_create", name)))
    write_leads(tmp_path, many_leads(100))
    report = run_job(write_job(tmp_path), ENV)
    errors = outputs(tmp_path)["errors"]
    assert len(replay.calls("contacts/bulk_create")) == 1
    assert len(errors) == 100 and report.errors["count"] == 100
    message = json.loads(EXAMPLES["contacts/bulk_create"][name]["body"])["error"]
    assert all(message in e["_error"]["reason"] for e in errors)


def test_a_bad_owner_id_is_one_call_not_a_bisection(tmp_path: Path) -> None:
    write_leads(tmp_path, people(30))
    with SandboxServer(ApolloSandbox(SandboxConfig(owner_ids=frozenset({"owner-1"})))) as server:
        report = run_job(write_job(tmp_path, contacts="owner_id: not-on-the-team"), env(server))
        calls = server.sandbox.calls
    assert calls["/api/v1/contacts/bulk_create"] == 1
    assert report.errors["count"] == 30 and "owner_id" in outputs(tmp_path)["errors"][0]["_error"]["reason"]


@pytest.mark.parametrize(
    ("message", "batch_level"),
    [
        ('Please provide an array of contact attributes in the "contact_attributes" parameter.', True),
        ("Please limit your array to 100 contacts or fewer.", True),
        ("Parameters misconfigured. owner_id 'x' is not a user of your team", True),
        ("Parameters misconfigured. contact_attributes[3].email is invalid: 'nope'", False),
        ("Email is invalid", False),
    ],
)
def test_batch_level_messages_are_told_from_record_level_ones(message: str, batch_level: bool) -> None:
    assert is_batch_level(message) is batch_level


def test_record_level_bisection_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every contact is bad: unbounded halving would cost 199 calls for 100 contacts."""
    rejected = httpx.Response(422, json={"error": "Parameters misconfigured. contact_attributes[0].email is invalid"})
    replay = install(monkeypatch, router(contacts=rejected))
    write_leads(tmp_path, many_leads(100))
    report = run_job(write_job(tmp_path, contacts="max_split_calls: 10"), ENV)
    assert len(replay.calls("contacts/bulk_create")) == 11
    assert report.errors["count"] == 100


def test_dedupe_on_an_additional_email_is_one_existing_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apollo matched the contact by an additional address and answers with the primary one."""

    def dedupe(request: httpx.Request) -> httpx.Response:
        [contact] = json.loads(request.content)["contacts"]
        known = {**contact, "id": "c-known", "email": "primary@elsewhere.example", "first_name": "Pat"}
        return httpx.Response(200, json={"created_contacts": [], "existing_contacts": [known]})

    install(monkeypatch, router(contacts=dedupe))
    write_leads(tmp_path, many_leads(1))
    report = run_job(write_job(tmp_path), ENV)
    out = outputs(tmp_path)
    assert [r["apollo_contact_id"] for r in out["existing"]] == ["c-known"]
    assert not out["errors"] and report.delivered["contacts"] == 1


def test_additional_email_dedupe_in_the_sandbox(tmp_path: Path) -> None:
    person = people(1)[0]
    sandbox = ApolloSandbox()
    sandbox.seed.contacts.append(
        {
            "id": "c-seeded",
            "first_name": "Someone",
            "last_name": "Else",
            "email": "primary@elsewhere.example",
            "contact_emails": [{"email": person["email"], "position": 1}],
        }
    )
    sandbox.reset()
    write_leads(tmp_path, [person])
    with SandboxServer(sandbox) as server:
        run_job(write_job(tmp_path), env(server))
    out = outputs(tmp_path)
    assert [r["apollo_contact_id"] for r in out["existing"]] == ["c-seeded"] and not out["errors"]


def test_a_twin_answered_once_shares_the_contact_as_existing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two records (different keys) with one email: Apollo creates one contact and lists it once."""

    def once(request: httpx.Request) -> httpx.Response:
        contacts = json.loads(request.content)["contacts"]
        return httpx.Response(200, json={"created_contacts": [{**contacts[0], "id": "c-1"}], "existing_contacts": []})

    install(monkeypatch, router(contacts=once))
    rows: list[dict[str, Any]] = [
        {"first_name": "Ann", "last_name": "Lee", "email": "ann@apollo.io", "id": n} for n in (1, 2)
    ]
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path).read_text().replace("key: email", "key: id")
    (tmp_path / "job.yaml").write_text(spec)
    report = run_job(tmp_path / "job.yaml", ENV)
    out = outputs(tmp_path)
    assert len(out["created"]) == 1 and len(out["existing"]) == 1 and not out["errors"]
    assert report.extra["api"]["contacts_created"] == 1


def test_created_in_this_run_is_existing_for_a_later_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay (dedupe on) reports a contact this run created as existing and recent: only its first record
    counts it as created."""
    made: dict[str, dict[str, Any]] = {}
    calls = [0]

    def dedupe(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 2:  # the twin's first attempt is lost: its retry runs with dedupe, as a replay
            return httpx.Response(500, json={"error": "An error occurred while creating contacts."})
        body: dict[str, list[dict[str, Any]]] = {"created_contacts": [], "existing_contacts": []}
        for contact in json.loads(request.content)["contacts"]:
            if contact["email"] in made:
                body["existing_contacts"].append(made[contact["email"]])
            else:
                made[contact["email"]] = {**contact, "id": f"c-{len(made)}", "created_at": "2999-01-01T00:00:00+00:00"}
                body["created_contacts"].append(made[contact["email"]])
        return httpx.Response(200, json=body)

    install(monkeypatch, router(match=matched, contacts=dedupe))
    rows = [{"first_name": "Ann", "last_name": "Lee", "email": "ann@apollo.io", "id": n} for n in range(3)]
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, contacts="batch_size: 1\nconcurrency: 1").read_text().replace("key: email", "key: id")
    (tmp_path / "job.yaml").write_text(spec)
    report = run_job(tmp_path / "job.yaml", ENV)
    out = outputs(tmp_path)
    assert len(out["created"]) == 1 and len(out["existing"]) == 2
    assert report.extra["api"]["contacts_created"] == 1


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (422, "HTTP 422: Insufficient credits. Please upgrade your plan.", True),
        (402, "HTTP 402: payment required", True),
        (403, "HTTP 403: insufficient_quota", True),  # the aisa.one gateway's code
        (422, "HTTP 422: Please limit your array to 100 contacts or fewer.", False),
        (422, "HTTP 422: no implicit conversion of Symbol into Integer", False),
        (429, "HTTP 429: insufficient credits", False),  # a 429 is a rate limit whatever it says
    ],
)
def test_out_of_credits_is_recognised_in_its_forms(status: int, message: str, expected: bool) -> None:
    from crmsync_plugins.apollo.errors import is_out_of_credits

    assert is_out_of_credits(status, message) is expected


def test_the_contacts_a_run_created_are_kept_only_while_a_lost_attempt_could_claim_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run creating a million contacts must not hold a million ids. An id is forgotten once no answer still to
    come could take its contact for a lost attempt's (created before the oldest call in flight and the oldest
    write never answered, minus clock_skew_s), and kept while one could: a twin reported as existing then still
    does not count as created."""
    from collections import deque
    from datetime import UTC, datetime

    from crmsync_plugins.apollo import contacts as contacts_module
    from crmsync_plugins.apollo.contacts import ContactsOptions, ContactsSink

    now = [1_700_000_000.0]
    monkeypatch.setattr(contacts_module.time, "time", lambda: now[0])
    sink = ContactsSink("contacts", ContactsOptions(connection="apollo", clock_skew_s=60), None)
    sink.created_ids, sink._created_by_answer, sink._in_flight, sink._oldest_lost = set(), deque(), [], None

    def created(batch: int) -> dict[str, Any]:
        at = datetime.fromtimestamp(now[0], UTC).isoformat()
        return {"created_contacts": [{"id": f"c{batch}-{n}", "created_at": at} for n in range(100)]}

    def outputs(response: dict[str, Any], created_since: float | None) -> list[str]:
        return [output for output, _ in sink._answers(response, created_since)]

    for batch in range(50):  # 100 contacts every 10 s: only the last 60 s (and the answer at hand) are kept
        now[0] += 10
        assert outputs(created(batch), None) == ["created"] * 100
        assert len(sink.created_ids) <= 800
    first = sink._created_by_answer[0][1][0]
    twin = {"existing_contacts": [{"id": first, "created_at": datetime.fromtimestamp(now[0] - 60, UTC).isoformat()}]}
    assert outputs(twin, now[0] - 65) == ["existing"]  # a retry of a call sent 5 s ago: still known as ours

    # A call in flight since long ago (its answer may be retried) or a write never answered (replayed when its
    # records come again) keeps every contact created since.
    for first_batch, holder in ((100, "_in_flight"), (200, "_oldest_lost")):
        setattr(sink, holder, [now[0]] if holder == "_in_flight" else now[0])
        kept = len(sink.created_ids)
        for batch in range(first_batch, first_batch + 30):
            now[0] += 10
            outputs(created(batch), None)
        assert len(sink.created_ids) == kept + 30 * 100
        old = sink._created_by_answer[0][1][0]
        assert outputs({"existing_contacts": [{"id": old, "created_at": "2999-01-01T00:00:00+00:00"}]}, 0.0) == [
            "existing"
        ]
        setattr(sink, holder, [] if holder == "_in_flight" else None)
        now[0] += 10
        outputs(created(first_batch + 99), None)
        assert len(sink.created_ids) <= 800

"""Apollo's own published examples (OpenAPI, tests/data/apollo) replayed through jobs: where every record goes,
how many calls are made and how the run ends."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_core.cli import main
from connector_core.testing import read_jsonl, run_job

from .conftest import CANARY_KEY, write_job, write_leads
from .replay import example, example_body, install

ENV = {"APOLLO_BASE_URL": "https://api.apollo.io", "APOLLO_API_KEY": CANARY_KEY}
MATCHES: list[dict[str, Any]] = example_body("people/bulk_match", "200 Result")["matches"]


def run_cli(monkeypatch: pytest.MonkeyPatch, spec: Path) -> int:
    """``crmsync run`` as a user types it; returns the exit code."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return main(["run", str(spec)])


def outputs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    names = ("created", "existing", "missing", "skipped", "errors")
    return {n: read_jsonl(p) if (p := folder / "out" / f"{n}.jsonl").exists() else [] for n in names}


def failed_run_outputs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The records a failed first run wrote: its errors and set-aside lists are visible, while its data outputs
    were left as they were (absent) and what it delivered sits in hidden files — ``.<name>.jsonl.failed``
    without state, the part ``.<name>.jsonl.run<N>.part`` the next run merges with state."""
    found = outputs(folder)
    for name in ("created", "existing", "missing"):
        assert not found[name], f"a failed run must leave {name}.jsonl as it was"
        hidden = sorted((folder / "out").glob(f".{name}.jsonl.*"))
        found[name] = [record for path in hidden for record in read_jsonl(path)]
    return found


def leads_of(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "first_name": p["first_name"],
            "last_name": p["last_name"],
            "email": p.get("email") or f"{p['first_name'].lower()}@apollo.io",
            "domain": "apollo.io",
        }
        for p in people
    ]


def many_leads(count: int) -> list[dict[str, Any]]:
    return [
        {"first_name": f"P{i}", "last_name": "Lead", "email": f"p{i}@apollo.io", "domain": "apollo.io"}
        for i in range(count)
    ]


def created(request: httpx.Request) -> httpx.Response:
    """contacts/bulk_create as Apollo answers a clean batch: every contact created."""
    contacts = json.loads(request.content)["contacts"]
    made = [
        {**contact, "id": f"c{index:022d}", "created_at": "2026-11-23T10:00:00Z"}
        for index, contact in enumerate(contacts)
    ]
    return httpx.Response(200, json={"created_contacts": made, "existing_contacts": []})


def person_for(detail: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "id": f"p{index:022d}",
        "first_name": detail["first_name"],
        "last_name": detail["last_name"],
        "email": detail["email"],
    }


def matched(request: httpx.Request) -> httpx.Response:
    details = json.loads(request.content)["details"]
    body = {
        "status": "success",
        "credits_consumed": len(details),
        "matches": [person_for(d, i) for i, d in enumerate(details)],
    }
    return httpx.Response(200, json=body)


def router(match: Any = matched, contacts: Any = created, organizations: Any = None) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        step = contacts if path.endswith("contacts/bulk_create") else match
        if path.endswith("organizations/bulk_enrich"):
            step = organizations
        return step(request) if callable(step) else step

    return respond


def test_success_example_matches_every_person_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = install(monkeypatch, router(match=example("people/bulk_match", "200 Result")))
    write_leads(tmp_path, leads_of(MATCHES))
    report = run_job(write_job(tmp_path), ENV)
    assert report.status == "success", report.failure
    out = outputs(tmp_path)
    assert len(out["created"]) == 3 and not out["missing"] and not out["errors"]
    assert {r["apollo_id"] for r in out["created"]} == {m["id"] for m in MATCHES}
    assert len(replay.calls("people/bulk_match")) == 1
    assert report.extra["api"]["credits_confirmed"] == 3 and report.extra["api"]["credits_at_risk"] == 0


def test_waterfall_example_joins_slim_matches_and_keeps_the_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waterfall = example_body("people/bulk_match", "200 Waterfall enrichment result")
    # Two people asked, the one Apollo did not find omitted (not a positional null), the found one slim.
    install(monkeypatch, router(match=httpx.Response(200, json=waterfall)))
    rows = [leads_of(waterfall["matches"])[0], {"first_name": "Nobody", "last_name": "Known", "email": "n@x.invalid"}]
    write_leads(tmp_path, rows)
    enrich = "run_waterfall_email: true\nwebhook_url: https://hooks.example/hook-secret-123"
    report = run_job(write_job(tmp_path, enrich=enrich), ENV)
    out = outputs(tmp_path)
    assert [r["email"] for r in out["missing"]] == ["n@x.invalid"]
    [record] = out["created"]
    assert record["apollo_id"] == waterfall["matches"][0]["id"]
    assert record["apollo_request_id"] == waterfall["request_id"]
    assert record["apollo_waterfall_status"] == "accepted"
    api = report.extra["api"]
    assert api["credits_confirmed"] == 0 and api["credits_at_risk"] == 1 and api["credits_unreported_calls"] == 1
    assert api["waterfall_accepted"] == 1


def test_waterfall_not_accepted_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waterfall = example_body("people/bulk_match", "200 Waterfall enrichment result")
    waterfall["waterfall"] = {"status": "rejected", "message": "Webhook URL unreachable"}
    install(monkeypatch, router(match=httpx.Response(200, json=waterfall)))
    write_leads(tmp_path, leads_of(waterfall["matches"]))
    enrich = "run_waterfall_email: true\nwebhook_url: https://hooks.example/hook-secret-123"
    with caplog.at_level(logging.WARNING):
        report = run_job(write_job(tmp_path, enrich=enrich), ENV)
    assert report.extra["api"]["waterfall_rejected"] == 1
    assert "no webhook will come" in caplog.text and "Webhook URL unreachable" in caplog.text


def test_positional_slim_matches_join_without_any_identifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waterfall matches carry neither email nor organization: a positional answer joins by position."""

    def slim(request: httpx.Request) -> httpx.Response:
        details = json.loads(request.content)["details"]
        matches = [{"id": f"p{i}", "title": "CEO"} if i % 3 else None for i, _ in enumerate(details)]
        return httpx.Response(200, json={"status": "success", "matches": matches, "waterfall": {"status": "accepted"}})

    install(monkeypatch, router(match=slim))
    write_leads(tmp_path, many_leads(10))
    enrich = "run_waterfall_email: true\nwebhook_url: https://hooks.example/hook-secret-123"
    run_job(write_job(tmp_path, enrich=enrich), ENV)
    out = outputs(tmp_path)
    assert sorted(r["email"] for r in out["missing"]) == [f"p{i}@apollo.io" for i in (0, 3, 6, 9)]
    assert {r["email"]: r["apollo_id"] for r in out["created"]} == {
        f"p{i}@apollo.io": f"p{i}" for i in range(10) if i % 3
    }


def test_401_text_example_stops_the_run_after_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = install(monkeypatch, router(match=example("people/bulk_match", "401 Check API key")))
    write_leads(tmp_path, many_leads(40))
    spec = write_job(tmp_path)
    assert run_cli(monkeypatch, spec) == 1
    assert len(replay.calls("people/bulk_match")) == 1


def test_422_unknown_error_example_sends_the_batch_to_errors_with_apollos_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = install(monkeypatch, router(match=example("people/bulk_match", "422 Result")))
    write_leads(tmp_path, many_leads(20))
    report = run_job(write_job(tmp_path), ENV)
    errors = outputs(tmp_path)["errors"]
    assert len(errors) == 20 and report.errors["count"] == 20
    assert all("no implicit conversion of Symbol into Integer" in e["_error"]["reason"] for e in errors)
    assert len(replay.calls("people/bulk_match")) == 2  # one per batch, never retried


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(422, json={"error": "Insufficient credits. Please upgrade your plan."}),
        httpx.Response(402, json={"error": "insufficient credits"}),
    ],
    ids=["422-documented", "402"],
)
def test_insufficient_credits_stop_paid_calls_after_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: httpx.Response
) -> None:
    answers = iter([None, answer])

    def respond(request: httpx.Request) -> httpx.Response:
        step = next(answers, answer)
        return matched(request) if step is None else step

    replay = install(monkeypatch, router(match=respond))
    write_leads(tmp_path, many_leads(60))
    spec = write_job(tmp_path, enrich="concurrency: 1")
    assert run_cli(monkeypatch, spec) == 1
    assert len(replay.calls("people/bulk_match")) == 2  # one paid call after the credits ended, none after it
    out = failed_run_outputs(tmp_path)
    assert len(out["created"]) == 10 and len(out["skipped"]) == 50 and not out["errors"]
    assert all("no credits left" in r["_skipped_reason"] for r in out["skipped"])


def test_insufficient_credits_with_concurrent_calls_starts_no_new_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = threading.Event()

    def respond(request: httpx.Request) -> httpx.Response:
        first.set()
        return httpx.Response(422, json={"error": "Insufficient credits. Please upgrade your plan."})

    replay = install(monkeypatch, router(match=respond))
    write_leads(tmp_path, many_leads(200))
    report = run_job(write_job(tmp_path, enrich="concurrency: 4"), ENV)
    assert report.status == "failed"
    assert len(replay.calls("people/bulk_match")) <= 4  # only calls already in flight
    out = outputs(tmp_path)
    assert len(out["skipped"]) == 200 and not out["errors"]


@pytest.mark.parametrize("retry_after", ["3600", "Wed, 21 Oct 2099 07:28:00 GMT"], ids=["seconds", "http-date"])
def test_429_longer_than_the_run_waits_pauses_the_endpoint_after_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retry_after: str
) -> None:
    throttled = example("people/bulk_match", "429 Too many requests")
    throttled.headers["Retry-After"] = retry_after
    replay = install(monkeypatch, router(match=throttled))
    write_leads(tmp_path, many_leads(50))
    spec = write_job(tmp_path, enrich="concurrency: 1")
    assert run_cli(monkeypatch, spec) == 1
    assert len(replay.calls("people/bulk_match")) == 1
    errors = outputs(tmp_path)["errors"]
    assert len(errors) == 50 and all(e["_error"]["transient"] for e in errors)
    assert "600 times per hour" in errors[0]["_error"]["reason"]


def test_429_without_retry_after_backs_off_and_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([example("people/bulk_match", "429 Too many requests")])
    replay = install(monkeypatch, router(match=lambda request: next(answers, None) or matched(request)))
    write_leads(tmp_path, many_leads(10))
    report = run_job(write_job(tmp_path), ENV)
    assert report.status == "success" and len(outputs(tmp_path)["created"]) == 10
    assert len(replay.calls("people/bulk_match")) == 2 and report.extra["api"]["rate_limited"] == 1


def test_500_example_is_retried_then_set_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = install(monkeypatch, router(contacts=example("contacts/bulk_create", "500 Server error")))
    write_leads(tmp_path, many_leads(5))
    report = run_job(write_job(tmp_path, attempts=3), ENV)
    errors = outputs(tmp_path)["errors"]
    assert len(replay.calls("contacts/bulk_create")) == 3
    assert len(errors) == 5 and report.errors["set_aside"] == 5 and report.errors["count"] == 0
    assert "An error occurred while creating contacts" in errors[0]["_error"]["reason"]


def test_200_with_status_failed_is_an_error_not_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"status": "failed", "error_code": "UNKNOWN_ERROR", "error_message": "enrichment backend timed out"}
    install(monkeypatch, router(match=httpx.Response(200, json=body)))
    write_leads(tmp_path, many_leads(3))
    run_job(write_job(tmp_path), ENV)
    out = outputs(tmp_path)
    assert not out["missing"] and len(out["errors"]) == 3
    assert "enrichment backend timed out" in out["errors"][0]["_error"]["reason"]


def test_malformed_200_never_hangs_a_run_sharing_an_in_flight_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same people in two concurrent batches share one call; its odd answer must wake both batches."""

    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "matches": "oops"})

    replay = install(monkeypatch, router(match=odd))
    write_leads(tmp_path, many_leads(10) * 3)  # the same ten people, three times
    reports: list[Any] = []
    runner = threading.Thread(target=lambda: reports.append(run_job(write_job(tmp_path, enrich="concurrency: 3"), ENV)))
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "the run hangs"
    errors = outputs(tmp_path)["errors"]
    assert len(errors) == 30 and "'matches' is not a list" in errors[0]["_error"]["reason"]
    assert len(replay.calls("people/bulk_match")) <= 3
    assert reports[0].extra["api"]["credits_at_risk"] > 0


def test_people_asked_by_concurrent_batches_share_one_call_and_each_gets_its_own_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three batches in flight ask about the same ten people in three orders: one call is paid for, and every
    record gets the person Apollo answered for it, wherever it sat in the call."""
    import functools

    from crmsync_plugins.apollo import client

    matches: list[httpx.Request] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("people/bulk_match"):
            return created(request)
        matches.append(request)
        await asyncio.sleep(0.05)  # the other batches start while this call is out
        return matched(request)

    transport = httpx.MockTransport(slow)
    monkeypatch.setattr(client, "ApolloClient", functools.partial(client.ApolloClient, transport=transport))
    people = many_leads(10)
    write_leads(tmp_path, people + people[::-1] + people[3:] + people[:3])
    report = run_job(write_job(tmp_path, enrich="concurrency: 3"), ENV)
    assert report.status == "success", report.failure
    assert len(matches) == 1  # one bulk_match call for the thirty records
    out = outputs(tmp_path)
    delivered = out["created"] + out["existing"]
    assert len(delivered) == 30
    for record in delivered:  # the call asked p0..p9 in order: Apollo's person for pN is its Nth match
        assert record["apollo_id"] == f"p{int(record['email'][1:].split('@')[0]):022d}"
        assert record["apollo_email"] == record["email"]

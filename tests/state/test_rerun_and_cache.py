"""Durable state over runs: unchanged input costs nothing, a changed record costs exactly its calls, the
enrichment cache pays once per person, and file outputs hold each record once."""

from __future__ import annotations

import json
from pathlib import Path

from connector_core.cli import main
from connector_core.testing import read_jsonl

from ..apollo.conftest import env, people, write_job, write_leads


def run(spec: Path, sandbox, *extra: str, monkeypatch) -> dict:
    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    report = spec.parent / "report.json"
    code = main(["-q", "run", str(spec), "--report", str(report), *extra])
    data = json.loads(report.read_text())
    data["exit_code"] = code
    return data


def terminal_keys(folder: Path) -> list[str]:
    keys = []
    for name in ("created", "existing", "missing", "skipped", "errors"):
        keys += [r["_key"] for r in read_jsonl(folder / "out" / f"{name}.jsonl")]
    return keys


def test_rerun_of_unchanged_input_costs_nothing(tmp_path: Path, sandbox, monkeypatch) -> None:
    rows = people(25)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True)
    first = run(spec, sandbox, monkeypatch=monkeypatch)
    assert first["exit_code"] == 0 and first["api"]["credits"] > 0
    calls_after_first = dict(sandbox.sandbox.state()["calls"])
    second = run(spec, sandbox, monkeypatch=monkeypatch)
    assert second["exit_code"] == 0
    assert sandbox.sandbox.state()["calls"] == calls_after_first  # 0 calls
    assert second["api"]["credits"] == 0 and second["api"]["calls"] == {}
    assert second["state"]["skipped_unchanged"] == 25
    assert sorted(terminal_keys(tmp_path)) == sorted(r["email"] for r in rows)  # each record once, kept


def test_one_changed_record_costs_exactly_its_calls(tmp_path: Path, sandbox, monkeypatch) -> None:
    rows = people(25)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True)
    run(spec, sandbox, monkeypatch=monkeypatch)
    replacement = people(1, start=40)[0]
    rows[7] = replacement  # a new person instead of an old one
    write_leads(tmp_path, rows)
    report = run(spec, sandbox, monkeypatch=monkeypatch)
    assert report["api"]["calls"] == {"/api/v1/people/bulk_match": 1, "/api/v1/contacts/bulk_create": 1}
    assert report["state"]["skipped_unchanged"] == 24
    assert report["streams"]["enrich.matched"] == 1
    keys = terminal_keys(tmp_path)
    assert len(keys) == len(set(keys)) == 26  # the replaced person's earlier output stays, once


def test_full_refresh_reuses_cache_and_known_contacts(tmp_path: Path, sandbox, monkeypatch) -> None:
    write_leads(tmp_path, people(12))
    spec = write_job(tmp_path, state=True)
    run(spec, sandbox, monkeypatch=monkeypatch)
    before = dict(sandbox.sandbox.state()["calls"])
    report = run(spec, sandbox, "--full-refresh", monkeypatch=monkeypatch)
    assert sandbox.sandbox.state()["calls"] == before  # cache + remembered contacts: no call
    assert report["api"]["cache_hits"] == 12 and report["api"]["contacts_replayed_from_state"] == 12
    assert report["streams"]["contacts.created"] + report["streams"].get("contacts.existing", 0) == 12


def test_duplicate_people_in_one_run_are_enriched_once(tmp_path: Path, sandbox, monkeypatch) -> None:
    person = people(1)[0]
    rows = [{**person, "email": person["email"]}, {**person, "email": person["email"].upper()}]
    rows = [*rows, *people(3, start=5)]
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, enrich="concurrency: 1\nbatch_size: 2")
    report = run(spec, sandbox, monkeypatch=monkeypatch)
    assert report["streams"]["enrich.matched"] == 5
    assert report["api"]["credits"] == 4  # four distinct people


def test_cache_expires_after_its_ttl(tmp_path: Path, sandbox, monkeypatch) -> None:
    write_leads(tmp_path, people(3))
    spec = write_job(tmp_path, state=True)
    spec.write_text(spec.read_text().replace("state: {path: state.db}", "state: {path: state.db, cache_ttl_days: 0}"))
    run(spec, sandbox, monkeypatch=monkeypatch)
    report = run(spec, sandbox, "--full-refresh", monkeypatch=monkeypatch)
    assert report["api"]["calls"]["/api/v1/people/bulk_match"] == 1


def test_max_credits_stops_the_run_and_the_rest_is_retried_next_run(tmp_path: Path, sandbox, monkeypatch) -> None:
    rows = people(35)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, enrich="max_credits: 20\nconcurrency: 1")
    first = run(spec, sandbox, monkeypatch=monkeypatch)
    assert first["exit_code"] == 1 and "max_credits" in first["failure"]
    assert first["streams"]["enrich.skipped"] == 15 and first["api"]["credits"] <= 20
    second = run(spec, sandbox, monkeypatch=monkeypatch)
    assert second["exit_code"] == 0, second["failure"]
    assert second["streams"]["enrich.matched"] == 15 and second["state"]["skipped_unchanged"] == 20
    assert sorted(terminal_keys(tmp_path)) == sorted(r["email"] for r in rows)  # each once, none left skipped


def test_error_rate_exceeded_mid_run_stops_new_api_work(tmp_path: Path, sandbox, monkeypatch) -> None:
    rows = people(150)
    for row in rows[::2]:
        row["first_name"] = "__reject__"  # the sandbox refuses these contacts
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, enrich="concurrency: 1", contacts="batch_size: 10\nconcurrency: 1")
    monkeypatch.setenv("APOLLO_BASE_URL", "x")
    report = run(spec, sandbox, "--max-error-rate", "0.05", monkeypatch=monkeypatch)
    assert report["exit_code"] == 1 and "max_error_rate" in report["failure"]
    streams = report["streams"]
    assert streams.get("contacts.skipped", 0) + streams.get("enrich.skipped", 0) > 0  # set aside, not sent
    assert report["errors"]["count"] < 75  # half the contacts are bad: most were never tried


def test_lost_create_response_is_replayed_by_the_next_run(tmp_path: Path, sandbox, monkeypatch) -> None:
    from connector_core.state.sqlite import SqliteStateStore

    write_leads(tmp_path, people(6))
    spec = write_job(tmp_path, state=True, contacts="run_dedupe: false", attempts=2)
    # bulk_match answers; bulk_create is applied but its response is lost, twice: retries run out.
    sandbox.sandbox.script_faults(["ok", "reset:after", "reset:before"])
    first = run(spec, sandbox, monkeypatch=monkeypatch)
    assert first["errors"]["count"] == 0 and first["errors"]["set_aside"] == 6  # transient: set aside
    store = SqliteStateStore(tmp_path / "state.db")
    assert len(store.open_intents("apollo-test", "contacts")) == 6
    second = run(spec, sandbox, monkeypatch=monkeypatch)
    assert second["exit_code"] == 0 and second["api"]["calls"] == {"/api/v1/contacts/bulk_create": 1}
    assert second["streams"]["contacts.created"] == 6  # ours, although Apollo now calls them existing
    emails = [c["email"] for c in sandbox.sandbox.state()["contacts"]]
    assert len(emails) == len(set(emails))
    assert store.open_intents("apollo-test", "contacts") == {}
    store.close()


def test_namesakes_at_one_company_are_enriched_separately(tmp_path: Path, sandbox, monkeypatch) -> None:
    person = people(1)[0]
    namesake = {**person, "email": "namesake." + person["email"]}
    write_leads(tmp_path, [person, namesake])
    spec = write_job(tmp_path, state=True, enrich="batch_size: 1")
    report = run(spec, sandbox, monkeypatch=monkeypatch)
    assert report["api"]["calls"]["/api/v1/people/bulk_match"] == 2  # one answer must not serve both
    assert report["streams"]["enrich.matched"] + report["streams"].get("enrich.missing", 0) == 2

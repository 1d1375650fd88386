"""End to end: YAML jobs against the Apollo sandbox over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.errors import SpecError
from connector_core.testing import load, read_jsonl, run_job

from .conftest import CANARY_KEY, env, people, stranger, write_job, write_leads


def outputs(folder: Path) -> dict[str, list[dict]]:
    return {
        name: read_jsonl(folder / "out" / f"{name}.jsonl") if (folder / "out" / f"{name}.jsonl").exists() else []
        for name in ("created", "existing", "missing", "skipped", "errors")
    }


def test_enrich_and_create_batches_and_routes_every_record(tmp_path: Path, sandbox) -> None:
    rows = people(25)
    rows[4], rows[13] = stranger(1), stranger(2)  # unmatched people in the middle of batches
    write_leads(tmp_path, rows)
    report = run_job(write_job(tmp_path), env(sandbox))
    assert report.status == "success", report.failure
    state = sandbox.sandbox.state()
    assert state["calls"] == {"/api/v1/people/bulk_match": 3, "/api/v1/contacts/bulk_create": 1}
    out = outputs(tmp_path)
    assert sorted(r["email"] for r in out["missing"]) == sorted([stranger(1)["email"], stranger(2)["email"]])
    assert len(out["created"]) + len(out["existing"]) == 23
    for record in out["created"] + out["existing"]:  # joined to the right input record
        assert record["apollo_email"].lower() == record["email"].lower()
        assert record["_key"] == record["email"] and record["apollo_contact_id"]
    assert report.extra["api"]["calls"]["/api/v1/people/bulk_match"] == 3
    assert report.extra["api"]["credits"] == 23
    assert report.streams["enrich.matched"] == 23 and report.streams["enrich.missing"] == 2


def test_join_holds_when_apollo_omits_misses(tmp_path: Path) -> None:
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

    rows = people(10)
    rows[3] = stranger(3)
    write_leads(tmp_path, rows)
    with SandboxServer(ApolloSandbox(SandboxConfig(omit_missing_matches=True))) as server:
        report = run_job(write_job(tmp_path), env(server))
    assert report.status == "success"
    out = outputs(tmp_path)
    assert [r["email"] for r in out["missing"]] == [stranger(3)["email"]]
    for record in out["created"]:
        assert record["apollo_email"].lower() == record["email"].lower()


def test_gateway_layout_with_bearer_token(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(3))
    report = run_job(write_job(tmp_path), env(sandbox, "/apis/v1"))
    assert report.status == "success", report.failure
    assert set(sandbox.sandbox.state()["calls"]) == {
        "/apis/v1/apollo/people/bulk_match",
        "/apis/v1/apollo/contacts/bulk_create",
    }


def test_reimport_routes_known_contacts_to_existing_and_labels_are_appended(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(12))
    assert run_job(write_job(tmp_path), env(sandbox)).status == "success"
    first = outputs(tmp_path)
    contacts = {c["email"]: c for c in sandbox.sandbox.state()["contacts"]}
    for record in first["created"]:
        assert {"crmsync-test", "wave-1"} <= set(contacts[record["email"].lower()]["label_names"])
    report = run_job(write_job(tmp_path), env(sandbox))
    second = outputs(tmp_path)
    assert second["created"] == [] and len(second["existing"]) == 12
    assert {r["apollo_contact_id"] for r in second["existing"]} == {
        r["apollo_contact_id"] for r in first["created"] + first["existing"]
    }
    assert report.streams["contacts.existing"] == 12


def test_webhook_url_required_for_phone_reveal(tmp_path: Path) -> None:
    write_leads(tmp_path, people(1))
    with pytest.raises(SpecError) as caught:
        load(write_job(tmp_path, enrich="reveal_phone_number: true"), {"APOLLO_BASE_URL": "x", "APOLLO_API_KEY": "k"})
    assert "$.mappers.enrich" in str(caught.value) and "webhook_url" in str(caught.value)


@pytest.mark.parametrize("fault", ["429", "429:nohdr", "500", "reset"])
def test_transient_faults_are_retried(tmp_path: Path, sandbox, fault: str) -> None:
    write_leads(tmp_path, people(5))
    sandbox.sandbox.script_faults([fault, fault])
    report = run_job(write_job(tmp_path), env(sandbox))
    assert report.status == "success", report.failure
    assert len(outputs(tmp_path)["created"]) + len(outputs(tmp_path)["existing"]) == 5
    assert report.extra["api"]["retries"] >= 2
    if fault.startswith("429"):
        assert report.extra["api"]["rate_limited"] == 2


def test_exhausted_retries_set_records_aside_in_the_error_stream(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(4))
    sandbox.sandbox.script_faults(["500"] * 3)
    report = run_job(write_job(tmp_path, attempts=3), env(sandbox))
    errors = outputs(tmp_path)["errors"]
    assert len(errors) == 4 and report.errors["count"] == 0 and report.errors["set_aside"] == 4
    assert all("gave up after 3 attempts" in e["_error"]["reason"] and e["_error"]["transient"] for e in errors)
    assert errors[0]["_error"]["component"] == "enrich"


def test_refused_key_fails_at_once_with_exit_1(tmp_path: Path, capsys) -> None:
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

    write_leads(tmp_path, people(30))
    spec = write_job(tmp_path)
    with (
        SandboxServer(ApolloSandbox(SandboxConfig(api_key="the-right-key"))) as server,
        pytest.MonkeyPatch.context() as mp,
    ):
        for name, value in env(server).items():
            mp.setenv(name, value)
        code = main(["run", str(spec), "--report", str(tmp_path / "report.json")])
        calls = server.sandbox.state()["calls"]
    assert code == 1
    assert sum(calls.values()) <= 4  # the calls already in flight, nothing after the refusal
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and "refused the API key" in report["failure"]
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and CANARY_KEY not in captured.err + captured.out


def test_rejected_batch_is_split_to_isolate_the_bad_contact(tmp_path: Path, sandbox) -> None:
    rows = people(30)
    write_leads(tmp_path, rows)
    bad = rows[17]["email"]
    spec = write_job(tmp_path, contacts="fields: {email: contact_email}")
    # Apollo's match brings the real email back; make one contact's address invalid on the way to bulk_create.
    lines = [json.loads(line) for line in (tmp_path / "leads.jsonl").read_text().splitlines()]
    for line in lines:
        line["contact_email"] = "not an email" if line["email"] == bad else line["email"]
    write_leads(tmp_path, lines)
    report = run_job(spec, env(sandbox))
    out = outputs(tmp_path)
    assert [e["email"] for e in out["errors"]] == [bad]
    assert "Parameters misconfigured" in out["errors"][0]["_error"]["reason"]
    assert len(out["created"]) + len(out["existing"]) == 29
    assert report.extra["api"]["split_batches"] >= 1


def test_max_credits_sends_the_rest_to_skipped(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(35))
    report = run_job(write_job(tmp_path, enrich="max_credits: 20\nconcurrency: 1"), env(sandbox))
    out = outputs(tmp_path)
    assert sandbox.sandbox.state()["credits"] <= 20
    assert len(out["skipped"]) == 15 and all("max_credits" in r["_skipped_reason"] for r in out["skipped"])
    assert report.streams["enrich.matched"] + report.streams["enrich.skipped"] == 35


def test_records_with_nothing_to_match_on_cost_no_call(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, [{"organization_name": "Acme"}, {"title": "CEO"}])
    report = run_job(write_job(tmp_path), env(sandbox))
    assert sandbox.sandbox.state()["calls"] == {}
    assert report.streams["enrich.missing"] == 2


def test_secret_canary_never_leaks(tmp_path: Path, sandbox, capsys, caplog) -> None:
    write_leads(tmp_path, [*people(5), stranger(9)])
    sandbox.sandbox.script_faults(["500", "reset", "429"])
    spec = write_job(tmp_path, state=True)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env(sandbox).items():
            mp.setenv(name, value)
        assert main(["-v", "run", str(spec), "--report", str(tmp_path / "report.json")]) == 0
        assert main(["state", "export", str(spec), str(tmp_path / "export.json")]) == 0
    captured = capsys.readouterr()
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in tmp_path.rglob("*"))
    for text in [captured.out.encode(), captured.err.encode(), caplog.text.encode(), *written]:
        assert CANARY_KEY.encode() not in text  # logs, report, outputs, state database and its export


def test_out_of_credits_stops_enrichment_and_skips_the_rest(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(25))
    sandbox.sandbox.script_faults(["402"])
    report = run_job(write_job(tmp_path, enrich="concurrency: 1"), env(sandbox))
    assert report.status == "failed" and "no credits left" in report.failure
    assert sandbox.sandbox.state()["calls"] == {"/api/v1/people/bulk_match": 1}  # nothing sent after the 402
    skipped = outputs(tmp_path)["skipped"]
    assert len(skipped) == 25 and all("no credits left" in r["_skipped_reason"] for r in skipped)


@pytest.mark.parametrize("calls_before", [0, 2, 5])
def test_a_refused_key_sends_nothing_more_and_sets_every_other_record_aside(tmp_path: Path, calls_before: int) -> None:
    """Without state as with it, no record read before or after the refusal is lost: each is delivered, or
    listed in the error stream or a set-aside output (``skipped``) saying the key was refused."""
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

    rows = people(60)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, enrich="concurrency: 1", contacts="batch_size: 10\nconcurrency: 1")
    with SandboxServer(ApolloSandbox(SandboxConfig())) as server:
        server.sandbox.script_faults(["ok"] * calls_before + ["401"])
        report = run_job(spec, env(server))
        calls = sum(server.sandbox.state()["calls"].values())
    assert report.status == "failed" and "refused the API key" in (report.failure or ""), report.failure
    assert calls <= calls_before + 2  # the refused call and at most one other already in flight
    out = outputs(tmp_path)
    delivered = sum(report.delivered.get(sink, 0) for sink in ("created", "existing", "missing"))
    assert delivered + len(out["skipped"]) + len(out["errors"]) == len(rows)
    assert report.delivered.get("skipped", 0) == len(out["skipped"]) and len(out["skipped"]) > 0
    aside = out["skipped"] + out["errors"]
    assert all("refused the API key" in (r.get("_skipped_reason") or r["_error"]["reason"]) for r in aside)
    assert CANARY_KEY not in json.dumps(aside)

"""Credits as a true ceiling, unlimited rate windows, organizations/bulk_enrich's documented form, secrets."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from connector_core.redact import Redactor
from connector_core.testing import read_jsonl, run_job, write_spec
from crmsync_plugins.apollo.client import ApolloClient, retry_after_seconds
from crmsync_plugins.apollo.errors import ApolloRejected, error_message
from crmsync_plugins.apollo.sandbox import ApolloSandbox, RateLimits, SandboxConfig, SandboxServer
from crmsync_plugins.apollo.settings import ApolloSettings

from .conftest import CANARY_KEY, env, people, write_job, write_leads, write_orgs_job
from .replay import install
from .test_openapi_replay import ENV, failed_run_outputs, outputs, router


@pytest.mark.parametrize("concurrency", [1, 4])
def test_max_credits_is_a_ceiling_when_responses_are_lost(tmp_path: Path, concurrency: int) -> None:
    """Every other call is applied and charged, then its connection dropped: the retry is charged again."""
    config = SandboxConfig(reset_rate=0.5, reset_after_apply_fraction=1.0, random_seed=3)
    write_leads(tmp_path, people(200))
    enrich = f"max_credits: 60\nconcurrency: {concurrency}"
    with SandboxServer(ApolloSandbox(config)) as server:
        report = run_job(write_job(tmp_path, enrich=enrich, attempts=6), env(server))
        charged = server.sandbox.credits
    api = report.extra["api"]
    assert charged <= 60  # the sandbox never charged more than the cap
    assert api["credits_confirmed"] <= charged <= api["credits_confirmed"] + api["credits_at_risk"]
    assert api["credits_at_risk"] > 0 and report.status == "failed"
    out = failed_run_outputs(tmp_path)
    assert len(out["created"]) + len(out["existing"]) + len(out["skipped"]) + len(out["errors"]) == 200


def test_credit_balance_knob_ends_in_the_documented_422(tmp_path: Path) -> None:
    write_leads(tmp_path, people(60))
    with SandboxServer(ApolloSandbox(SandboxConfig(credit_balance=20))) as server:
        report = run_job(write_job(tmp_path, enrich="concurrency: 1"), env(server))
        calls = server.sandbox.calls["/api/v1/people/bulk_match"]
        charged = server.sandbox.credits
    assert calls == 3 and charged == 20  # two paid calls, then exactly one answered "Insufficient credits"
    assert report.status == "failed" and "Insufficient credits" in (report.failure or "")
    assert len(outputs(tmp_path)["skipped"]) == 40


def test_empty_hourly_and_daily_headers_lift_the_default_caps(tmp_path: Path) -> None:
    """A paid plan: 1,000 a minute, no hourly or daily limit (empty headers). The default 100/hour must go."""
    unlimited = RateLimits(per_minute=1000, per_hour=None, per_day=None)
    limits = {"people/bulk_match": unlimited, "contacts/bulk_create": unlimited}
    write_leads(tmp_path, people(276) * 5)
    text = write_job(tmp_path).read_text()
    start = text.index("    rate_limits:")
    spec = tmp_path / "job.yaml"
    spec.write_text(text[:start] + text[text.index("sources:") :].replace("sources:", "sources:", 1))
    started = time.monotonic()
    with SandboxServer(ApolloSandbox(SandboxConfig(endpoint_rate_limits=limits))) as server:
        report = run_job(spec, env(server))
        calls = server.sandbox.calls["/api/v1/people/bulk_match"]
    assert report.status == "success", report.failure
    assert calls > 100 and report.extra["api"]["wait_s"] < 5  # past the default 100 calls/hour, no waiting
    assert time.monotonic() - started < 60


def test_organizations_send_domains_as_query_parameters_normalised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def organizations(request: httpx.Request) -> httpx.Response:
        domains = request.url.params.get_list("domains[]")
        found = [{"id": d, "name": d.upper(), "primary_domain": d} for d in domains if d != "unknown.invalid"]
        return httpx.Response(200, json={"status": "success", "credits_consumed": len(found), "organizations": found})

    replay = install(monkeypatch, router(organizations=organizations))
    rows = [
        {"domain": "https://www.Apollo.io/about"},
        {"domain": "google.com"},
        {"domain": "https://google.com"},
        {"domain": "jane@Microsoft.com"},
        {"domain": "unknown.invalid"},
    ]
    write_leads(tmp_path, rows)
    spec = write_spec(
        tmp_path,
        """
        version: 1
        job: orgs
        connections:
          apollo: {type: apollo, base_url: "https://api.apollo.io", api_key: "${APOLLO_API_KEY}"}
        sources:
          leads: {type: jsonl, path: leads.jsonl}
        mappers:
          orgs: {type: apollo.organizations_bulk_enrich, connection: apollo, inputs: [leads]}
        sinks:
          out: {type: jsonl, inputs: [orgs], path: out.jsonl}
        """,
    )
    report = run_job(spec, ENV)
    [call] = replay.calls("organizations/bulk_enrich")
    assert sorted(call.url.params.get_list("domains[]")) == [
        "apollo.io",
        "google.com",
        "microsoft.com",
        "unknown.invalid",
    ]
    assert not call.content  # the documented form: no JSON body
    names = [r.get("organization_name") for r in read_jsonl(tmp_path / "out.jsonl")]
    assert names == ["APOLLO.IO", "GOOGLE.COM", "GOOGLE.COM", "MICROSOFT.COM", None]
    assert report.extra["api"]["credits_confirmed"] == 3


def test_organizations_against_the_sandbox_query_form(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, [{"domain": "https://www.apollo.io/"}, {"domain": "WWW.APOLLO.IO"}])
    spec = write_orgs_job(tmp_path)
    report = run_job(spec, env(sandbox))
    assert [r["organization_name"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["Apollo.io", "Apollo.io"]
    assert sandbox.sandbox.credits == 1 and report.extra["api"]["credits_confirmed"] == 1


def test_a_key_echoed_near_the_truncation_limit_is_masked_whole() -> None:
    body = ("x" * 480 + CANARY_KEY + " trailing").encode()
    redactor = Redactor([CANARY_KEY])
    message = error_message(422, body, redactor.text)
    assert CANARY_KEY[:6] not in message and "***" in message


def test_the_client_masks_an_echoed_key_before_shortening() -> None:
    settings = ApolloSettings(api_key=CANARY_KEY, max_attempts=1)
    echoed = httpx.Response(422, json={"error": "y" * 485 + f"bad key {CANARY_KEY}"})
    client = ApolloClient(settings, transport=httpx.MockTransport(lambda request: echoed))

    async def call() -> BaseException:
        try:
            await client.post("people/bulk_match", {"details": []})
        except ApolloRejected as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("not rejected")

    assert CANARY_KEY[:5] not in str(asyncio.run(call()))


def test_a_url_encoded_webhook_secret_is_masked() -> None:
    secret = "https://hooks.example/t/SECRET-token-42?sig=a b"
    redactor = Redactor([secret])
    for text in (secret, quote(secret, safe=""), quote(secret)):
        assert redactor.text(f"POST https://api.apollo.io/x?webhook_url={text} 200") == (
            "POST https://api.apollo.io/x?webhook_url=*** 200"
        )


def test_webhook_url_from_the_environment_stays_out_of_verbose_logs(
    tmp_path: Path, sandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    from connector_core.cli import main

    write_leads(tmp_path, people(3))
    enrich = "reveal_phone_number: true\nwebhook_url: ${APOLLO_WEBHOOK_URL}"
    spec = write_job(tmp_path, enrich=enrich)
    hook = "https://hooks.example/crm/hook-SECRET-98765"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**env(sandbox), "APOLLO_WEBHOOK_URL": hook}.items():
            mp.setenv(name, value)
        assert main(["-vv", "run", str(spec), "--report", str(tmp_path / "report.json")]) == 0
    captured = capfd.readouterr()
    logged = captured.out + captured.err + (tmp_path / "report.json").read_text()
    assert "webhook_url=" in logged  # httpx logged the request line...
    assert "hook-SECRET-98765" not in logged and quote(hook, safe="") not in logged  # ...masked


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), ("", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_seconds_or_http_date(value: str, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date_in_the_future() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 23 Nov 2026 13:00:00 GMT", now=lambda: now) == 3600.0


def test_usage_statistics_in_apollos_key_format_give_per_endpoint_limits() -> None:
    from crmsync_plugins.apollo.budget import RateLimit
    from crmsync_plugins.apollo.usage import limits_from_usage

    windows = {"day": {"limit": 6000}, "hour": {"limit": 600}, "minute": {"limit": 200, "consumed": 3}}
    body = {
        '["api/v1/people", "bulk_match"]': windows,
        '["api/v1/contacts", "bulk_create"]': {
            "day": {"limit": None},
            "hour": {"limit": ""},
            "minute": {"limit": 1000},
        },
        "not a key": {},
    }
    assert limits_from_usage(body) == {
        "people/bulk_match": RateLimit(per_minute=200, per_hour=600, per_day=6000),
        "contacts/bulk_create": RateLimit(per_minute=1000, per_hour=None, per_day=None),
    }


def _job_without_rate_limits(tmp_path: Path, extra: str) -> Path:
    text = write_job(tmp_path).read_text()
    connection_end = text.index("    rate_limits:")
    spec = tmp_path / "job.yaml"
    spec.write_text(text[:connection_end] + f"    {extra}\n" + text[text.index("sources:") :])
    return spec


def test_read_usage_stats_adopts_the_keys_limits_at_start(tmp_path: Path) -> None:
    """The first call's headers would say the same, but the budget knows before the first call."""
    unlimited = RateLimits(per_minute=1000, per_hour=None, per_day=None)
    config = SandboxConfig(endpoint_rate_limits={"people/bulk_match": unlimited, "contacts/bulk_create": unlimited})
    write_leads(tmp_path, people(250))
    spec = _job_without_rate_limits(tmp_path, "read_usage_stats: true")
    with SandboxServer(ApolloSandbox(config)) as server:
        report = run_job(spec, env(server))
        calls = server.sandbox.calls
    assert report.status == "success", report.failure
    assert calls["/api/v1/usage_stats/api_usage_stats"] == 1 and calls["/api/v1/people/bulk_match"] == 25
    assert report.extra["api"]["wait_s"] == 0  # not even the default 20 calls a minute held it back


def test_read_usage_stats_without_a_master_key_warns_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_leads(tmp_path, people(5))
    spec = _job_without_rate_limits(tmp_path, "read_usage_stats: true")
    with SandboxServer(ApolloSandbox(SandboxConfig(master_key=False))) as server, caplog.at_level(logging.WARNING):
        report = run_job(spec, env(server))
    assert report.status == "success", report.failure
    assert "usage statistics refused" in caplog.text and "API_INACCESSIBLE" not in caplog.text
    assert "not authorized to access api/v1/usage_stats" in caplog.text


def test_adopted_usage_limits_replace_the_defaults_in_the_budget() -> None:
    usage = {'["api/v1/people", "bulk_match"]': {"minute": {"limit": 1000}, "hour": {"limit": None}, "day": {}}}
    client = ApolloClient(
        ApolloSettings(api_key=CANARY_KEY),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=usage)),
    )

    async def adopt() -> tuple[bool, str]:
        try:
            return await client.adopt_usage_limits()
        finally:
            await client.aclose()

    adopted, _ = asyncio.run(adopt())
    windows = client.budgets["people/bulk_match"].windows
    assert (
        adopted and windows["minute"].limit == 1000 and windows["hour"].limit is None and windows["day"].limit is None
    )
    assert client.budgets["contacts/bulk_create"].windows["hour"].limit == 400  # not in the answer: unchanged


def test_phone_enrichment_keys_reach_the_matched_records(tmp_path: Path, sandbox) -> None:
    write_leads(tmp_path, people(3))
    enrich = "reveal_phone_number: true\nwebhook_url: https://hooks.example/hook-secret-123"
    report = run_job(write_job(tmp_path, enrich=enrich), env(sandbox))
    assert report.status == "success", report.failure
    created = outputs(tmp_path)["created"]
    assert len(created) == 3
    for record in created:
        assert isinstance(record["apollo_request_id"], int)
        assert isinstance(record["apollo_phone_request_id"], str) and record["apollo_phone_status"] == "pending"
        assert "apollo_waterfall_status" not in record  # only what Apollo sent


def test_a_refused_key_counts_every_call_that_was_sent(tmp_path: Path) -> None:
    # Four enrichment calls leave at once; the first 401 stops the run and cuts the others short. The report
    # must still count what reached Apollo, as the sandbox saw it.
    write_leads(tmp_path, people(40))
    with SandboxServer(ApolloSandbox(SandboxConfig(api_key="the-right-key", latency_ms=300))) as server:
        report = run_job(write_job(tmp_path), {**env(server), "APOLLO_API_KEY": "a-wrong-key"})
        seen = server.sandbox.state()["calls"].get("/api/v1/people/bulk_match", 0)
    assert report.status == "failed" and "refused the API key" in (report.failure or "")
    assert seen > 1, "the calls did not overlap: the test measured nothing"
    assert report.extra["api"]["calls"]["/api/v1/people/bulk_match"] == seen


def test_organizations_set_every_record_aside_after_a_refused_key(tmp_path: Path, sandbox) -> None:
    domains = [f"company{n}.example" for n in range(35)]
    write_leads(tmp_path, [{"domain": domain} for domain in domains])
    spec = write_orgs_job(tmp_path, "batch_size: 10")
    sandbox.sandbox.script_faults(["ok", "401"])
    report = run_job(spec, env(sandbox))
    assert report.status == "failed" and "refused the API key" in (report.failure or "")
    aside = read_jsonl(tmp_path / "errors.jsonl")
    assert report.delivered.get("out", 0) + len(aside) == len(domains) and len(aside) >= 5
    assert all(r["_error"]["transient"] and "refused the API key" in r["_error"]["reason"] for r in aside)
    assert sum(sandbox.sandbox.state()["calls"].values()) <= 3

"""Against the Apollo sandbox: transient failures set records aside without using up their attempts, a terminal
reject is not sent again once its attempts are used up, and a failed run (refused key) leaves every earlier
output file as it was, with state or without."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connector_core.cli import main
from connector_core.state.sqlite import SqliteStateStore
from connector_core.testing import read_jsonl
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

from ..apollo.conftest import CANARY_KEY, env, people, write_job, write_leads
from .jobs import without_state_unless, write_as_it_goes

OUTPUTS = ("created", "existing", "missing", "skipped", "errors")


def run(spec: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch, key: str = CANARY_KEY) -> dict[str, Any]:
    for name, value in {**env(server), "APOLLO_API_KEY": key}.items():
        monkeypatch.setenv(name, value)
    report = spec.parent / "report.json"
    code = main(["-q", "run", str(spec), "--report", str(report)])
    data: dict[str, Any] = json.loads(report.read_text())
    data["exit_code"] = code
    return data


def files(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: read_jsonl(path) if (path := folder / "out" / f"{name}.jsonl").exists() else [] for name in OUTPUTS}


def accounted(report: dict[str, Any], folder: Path) -> None:
    """This run's rows: skipped unchanged + in a terminal file of this run (the errors file lists this run's
    rejects and set-aside records) = rows in."""
    streams = report["streams"]
    terminal = sum(streams.get(f"{a}.{b}", 0) for a, b in (("contacts", "created"), ("contacts", "existing")))
    terminal += sum(streams.get(f"enrich.{name}", 0) for name in ("missing", "skipped"))
    errors = len(read_jsonl(folder / "out" / "errors.jsonl"))
    assert errors == streams.get("errors", 0)
    assert report["input_records"] == report["state"]["skipped_unchanged"] + terminal + errors, report


STORMS = [
    ["500", "500"],  # bulk_match: 5xx until the retries run out
    ["reset", "reset"],  # dropped connections
    ["ok", "503", "reset:after"],  # bulk_match answers; bulk_create fails, the second time after applying
    ["429"],  # a Retry-After (1 s) longer than the job waits (max_retry_after_s: 0.5)
    ["500", "500"],
]


def test_transient_failures_never_use_up_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = people(3)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True, attempts=2)
    spec.write_text(spec.read_text().replace("backoff_s: 0.01", "backoff_s: 0.01\n    max_retry_after_s: 0.5"))
    with SandboxServer(ApolloSandbox(SandboxConfig())) as server:
        for storm in STORMS:  # more storms than state.max_attempts (3)
            server.sandbox.script_faults(storm)
            report = run(spec, server, monkeypatch)
            accounted(report, tmp_path)
            assert report["errors"]["count"] == 0 and report["errors"]["set_aside"] == 3, storm
            errors = files(tmp_path)["errors"]
            assert len(errors) == 3 and all(e["_error"]["transient"] for e in errors), storm
            store = SqliteStateStore(tmp_path / "state.db")
            pending = store.rejects("apollo-test")
            store.close()
            assert {r["status"] for r in pending} == {"pending"} and {r["attempts"] for r in pending} == {0}
        calm = run(spec, server, monkeypatch)
        assert calm["exit_code"] == 0 and calm["errors"]["set_aside"] == 0
        accounted(calm, tmp_path)
        out = files(tmp_path)
        assert sorted(r["_key"] for r in out["created"] + out["existing"]) == sorted(r["email"] for r in rows)
        assert out["errors"] == []
        emails = [c["email"] for c in server.sandbox.state()["contacts"]]
        assert len(emails) == len(set(emails)), "a contact was created twice"


def test_a_terminal_reject_is_not_sent_again_after_its_attempts(tmp_path: Path, monkeypatch) -> None:
    write_leads(tmp_path, people(1))
    spec = write_job(tmp_path, state=True)  # state.max_attempts: 3
    listed = []
    with SandboxServer(ApolloSandbox(SandboxConfig())) as server:
        for _ in range(5):
            server.sandbox.script_faults(["422"] if listed else ["ok", "422"])  # bulk_match is cached after run 1
            report = run(spec, server, monkeypatch)
            accounted(report, tmp_path)
            listed.append(len(files(tmp_path)["errors"]))
        calls = server.sandbox.state()["calls"]
    assert calls["/api/v1/contacts/bulk_create"] == 3 and calls["/api/v1/people/bulk_match"] == 1
    assert listed == [1, 1, 1, 0, 0]  # rejected three times, then discarded and skipped


@pytest.mark.parametrize("state", [False, True])
def test_a_run_with_a_refused_key_leaves_earlier_outputs_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: bool
) -> None:
    rows = people(40)
    write_leads(tmp_path, rows[:10])
    spec = without_state_unless(
        write_job(tmp_path, state=state, enrich="concurrency: 1", contacts="batch_size: 10"), state
    )
    write_as_it_goes(spec)
    with SandboxServer(ApolloSandbox(SandboxConfig(api_key=CANARY_KEY))) as server:
        assert run(spec, server, monkeypatch)["exit_code"] == 0
        data = ("created.jsonl", "existing.jsonl", "missing.jsonl")  # errors and skipped list each run's own
        before = {name: (tmp_path / "out" / name).read_bytes() for name in data}
        write_leads(tmp_path, rows)
        assert run(spec, server, monkeypatch, key="sk-revoked")["exit_code"] == 1  # refused at once
        # Refused at the run's last call (3 enrichments + 3 contact batches): earlier contact batches were
        # created, whatever order the calls interleave in.
        server.sandbox.script_faults(["ok"] * 5 + ["401"])
        refused = run(spec, server, monkeypatch)
        assert refused["exit_code"] == 1 and "refused" in refused["failure"]
        assert refused["streams"].get("contacts.created", 0) + refused["streams"].get("contacts.existing", 0) > 0
        assert {name: (tmp_path / "out" / name).read_bytes() for name in data} == before
        again = run(spec, server, monkeypatch)
        assert again["exit_code"] == 0
    out = files(tmp_path)
    seen = Counter(r["_key"] for name in ("created", "existing") for r in out[name])
    assert seen == Counter(r["email"] for r in rows), "each lead once in the outputs"

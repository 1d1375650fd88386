"""Fixtures for Apollo job tests: a sandbox over real HTTP, and a job writer that points at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector_core.testing import write_spec
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

#: A recognisable key: tests assert it never shows up anywhere.
CANARY_KEY = "sk-canary-4f9e1b2c7d"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh Apollo sandbox served on a free local port, stopped after the test."""
    with SandboxServer(ApolloSandbox(SandboxConfig())) as server:
        yield server


def people(count: int, start: int = 0) -> list[dict[str, Any]]:
    """People of the sandbox's database, as lead records."""
    seed = ApolloSandbox().seed
    chosen = [p for p in seed.people if p.get("email")][start : start + count]
    return [
        {
            "first_name": p["first_name"],
            "last_name": p["last_name"],
            "email": p["email"],
            "organization_name": (p.get("organization") or {}).get("name"),
            "domain": (p.get("organization") or {}).get("primary_domain"),
        }
        for p in chosen
    ]


def stranger(n: int) -> dict[str, Any]:
    """Somebody the sandbox does not know."""
    return {
        "first_name": f"Nobody{n}",
        "last_name": "Known",
        "email": f"nobody{n}@nowhere.invalid",
        "domain": "nowhere.invalid",
    }


def write_leads(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "leads.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


JOB = """
version: 1
job: apollo-test
public_env: [APOLLO_BASE_URL]
{state}
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: ${{APOLLO_API_KEY}}
    backoff_s: 0.01
    max_attempts: {attempts}
    rate_limits:  # the sandbox announces no limits unless asked to; keep the budget out of the way
      people/bulk_match: {{per_minute: 1000, per_hour: null, per_day: null}}
      contacts/bulk_create: {{per_minute: 1000, per_hour: null, per_day: null}}
sources:
  leads: {{type: jsonl, path: leads.jsonl, key: email}}
mappers:
  enrich:
    type: apollo.bulk_match
    connection: apollo
    inputs: [leads]
{enrich_options}
sinks:
  contacts:
    type: apollo.contacts
    connection: apollo
    inputs: [enrich.matched]
    append_label_names: [crmsync-test, wave-1]
{contacts_options}
  created: {{type: jsonl, inputs: [contacts.created], path: out/created.jsonl, metadata: true}}
  existing: {{type: jsonl, inputs: [contacts.existing], path: out/existing.jsonl, metadata: true}}
  missing: {{type: jsonl, inputs: [enrich.missing], path: out/missing.jsonl, metadata: true}}
  skipped: {{type: jsonl, inputs: [enrich.skipped], path: out/skipped.jsonl, metadata: true}}
  rejects: {{type: jsonl, inputs: [errors], path: out/errors.jsonl, metadata: true}}
"""


def write_job(folder: Path, enrich: str = "", contacts: str = "", attempts: int = 4, state: bool = False) -> Path:
    """The standard test job (leads.jsonl → bulk_match → contacts → one file per stream), optionally with
    durable state in ``state.db``."""
    indent = lambda text: "\n".join("    " + line for line in text.strip().splitlines())  # noqa: E731
    text = JOB.format(
        enrich_options=indent(enrich),
        contacts_options=indent(contacts),
        attempts=attempts,
        state="state: {path: state.db}" if state else "",
    )
    return write_spec(folder, text)


ORGS_JOB = """
version: 1
job: orgs
public_env: [APOLLO_BASE_URL]
connections:
  apollo: {{type: apollo, base_url: "${{APOLLO_BASE_URL}}", api_key: "${{APOLLO_API_KEY}}"}}
sources:
  leads: {{type: jsonl, path: leads.jsonl}}
mappers:
  orgs: {{type: apollo.organizations_bulk_enrich, connection: apollo, inputs: [leads]{options}}}
sinks:
  out: {{type: jsonl, inputs: [orgs], path: out.jsonl}}
  rejects: {{type: jsonl, inputs: [errors], path: errors.jsonl}}
"""


def write_orgs_job(folder: Path, options: str = "") -> Path:
    """leads.jsonl → apollo.organizations_bulk_enrich (with ``options``, e.g. ``"batch_size: 10"``) → out.jsonl,
    its error stream → errors.jsonl; the base URL comes from ``APOLLO_BASE_URL``."""
    return write_spec(folder, ORGS_JOB.format(options=f", {options}" if options else ""))


def env(server: SandboxServer, path: str = "") -> dict[str, str]:
    return {"APOLLO_BASE_URL": server.base_url + path, "APOLLO_API_KEY": CANARY_KEY}

#!/usr/bin/env python3
"""Benchmark: is ``max_credits`` a ceiling when Apollo applies calls whose responses are lost?

A generated seed (``--people``), ``apollo.bulk_match`` with ``max_credits`` and concurrency 8 against the
in-process sandbox over HTTP, where ``--reset-rate`` of the calls are applied (and charged) and then their
connection is dropped, so the client retries and is charged again. Prints what the sandbox charged beside what
the run reported (confirmed and at risk).

Usage: ``python bench/bench_apollo_ceiling.py [--people 2000] [--max-credits 500] [--reset-rate 0.3]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from connector_core.testing import run_job, write_spec
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

JOB = """
version: 1
job: bench-ceiling
public_env: [APOLLO_BASE_URL]
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: bench-key
    backoff_s: 0.01
    rate_limits: {{people/bulk_match: {{per_minute: 100000, per_hour: null, per_day: null}}}}
sources:
  leads: {{type: jsonl, path: leads.jsonl, key: email}}
mappers:
  enrich: {{type: apollo.bulk_match, connection: apollo, inputs: [leads], max_credits: {cap}, concurrency: 8}}
sinks:
  matched: {{type: jsonl, inputs: [enrich.matched], path: matched.jsonl}}
  skipped: {{type: jsonl, inputs: [enrich.skipped], path: skipped.jsonl}}
  rejects: {{type: jsonl, inputs: [errors], path: errors.jsonl}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--max-credits", type=int, default=500)
    parser.add_argument("--reset-rate", type=float, default=0.3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed = {"people": [], "contacts": [], "generated_people": {"count": args.people, "random_seed": 1}}
        (folder / "seed.json").write_text(json.dumps(seed))
        config = SandboxConfig(
            seed_path=folder / "seed.json", reset_rate=args.reset_rate, reset_after_apply_fraction=1.0, random_seed=5
        )
        sandbox = ApolloSandbox(config)
        leads = [p for p in sandbox.seed.people if p.get("email")]
        (folder / "leads.jsonl").write_text(
            "".join(json.dumps({k: p[k] for k in ("first_name", "last_name", "email")}) + "\n" for p in leads)
        )
        spec = write_spec(folder, JOB.format(cap=args.max_credits))
        with SandboxServer(sandbox) as server:
            report = run_job(spec, {"APOLLO_BASE_URL": server.base_url})
            charged = server.sandbox.credits
    api = report.extra["api"]
    result = {
        "leads": len(leads),
        "max_credits": args.max_credits,
        "reset_after_apply_rate": args.reset_rate,
        "sandbox_charged": charged,
        "reported_confirmed": api["credits_confirmed"],
        "reported_at_risk": api["credits_at_risk"],
        "calls": api["calls"],
        "status": report.status,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: what a whole-request 422 costs. ``--contacts`` contacts go to ``apollo.contacts`` with an
``owner_id`` that is not on the team, so Apollo (the sandbox, its own process) refuses every request with 422.

A careful client sends one call per batch and routes the batch to errors with Apollo's message; one that halves
the batch to find "the bad contact" sends 2n-1 calls for n contacts. Prints calls, wall time and the routes.

Usage: ``python bench/bench_apollo_422.py [--contacts 100] [--latency-ms 300]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_apollo import CRMSYNC, Sandbox, prepare

SPEC = """
version: 1
job: bench-apollo-422
public_env: [APOLLO_BASE_URL]
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: bench-key
    rate_limits:
      contacts/bulk_create: {{per_minute: 100000, per_hour: null, per_day: null}}
sources:
  leads: {{type: jsonl, path: {leads}, key: email}}
sinks:
  contacts:
    type: apollo.contacts
    connection: apollo
    inputs: [leads]
    owner_id: not-on-the-team
  created: {{type: jsonl, inputs: [contacts.created], path: {out}/created.jsonl}}
  rejected: {{type: jsonl, inputs: [errors], path: {out}/errors.jsonl}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument(
        "--crmsync-python", default=sys.executable, help="interpreter whose crmsync runs the job (compare builds)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed, all_leads = prepare(folder, args.contacts * 2)
        leads = folder / "some-leads.jsonl"
        leads.write_text("".join(all_leads.read_text().splitlines(keepends=True)[: args.contacts]))
        spec = folder / "job.yaml"
        spec.write_text(SPEC.format(leads=leads, out=folder / "out"))
        sandbox = Sandbox(seed, "--latency-ms", str(args.latency_ms), "--owner-ids", "owner-1")
        try:
            start = time.perf_counter()
            subprocess.run(
                [args.crmsync_python, *CRMSYNC[1:], "-q", "run", str(spec), "--report", str(folder / "report.json")],
                env={**os.environ, "APOLLO_BASE_URL": sandbox.url, "PYTHONDONTWRITEBYTECODE": "1"},
                stderr=subprocess.DEVNULL,
                check=False,
            )
            wall = time.perf_counter() - start
            state = sandbox.state()
        finally:
            sandbox.stop()
        report = json.loads((folder / "report.json").read_text())
    result = {
        "contacts": args.contacts,
        "latency_ms": args.latency_ms,
        "bulk_create_calls": state["calls"].get("/api/v1/contacts/bulk_create", 0),
        "wall_s": round(wall, 2),
        "errors": report["errors"]["count"],
        "created": report["streams"].get("contacts.created", 0),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: peak memory of a large CSV → ``fields`` → slow sink (``apollo.contacts`` on a slow sandbox).

The sink is far slower than the source, so without back-pressure end to end the process would hold most of
the file. Measures, in one run, the peak RSS of ``crmsync run`` over ``--rows`` and over ``--small-rows``
(the baseline) of the same generated lead list, each run to its end, and checks every row was delivered.

The sandbox runs as its own process (``crmsync sandbox apollo``) answering each call after ``--latency-ms``;
the job sends 100 contacts per call, ``--concurrency`` calls at once, with no rate limit.

Usage: ``python bench/bench_memory.py [--rows 1000000] [--small-rows 10000] [--latency-ms 20] [--concurrency 4]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_apollo import Sandbox
from bench_files import CRMSYNC, DATA, peak_rss

SPEC = """
version: 1
job: bench-memory
public_env: [APOLLO_BASE_URL]
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: bench-key
    rate_limits:
      contacts/bulk_create: {{per_minute: null, per_hour: null, per_day: null}}
sources:
  leads: {{type: csv, path: {csv}, key: Email}}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      first_name: {{from: First Name, strip: true}}
      last_name: {{from: Last Name, strip: true}}
      email: {{from: Email, lower: true, required: true}}
      organization_name: {{from: Company}}
      title: {{from: Title}}
sinks:
  contacts: {{type: apollo.contacts, connection: apollo, inputs: [people], concurrency: {concurrency}}}
"""


def generate(rows: int) -> Path:
    """A lead list of ``rows`` distinct people (cached between runs): the sandbox's dedupe then finds no
    existing contact, and matching by name stays cheap for it."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"people-{rows}.csv"
    if not path.exists():
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["First Name", "Last Name", "Email", "Company", "Title"])
            for i in range(rows):
                writer.writerow([f" Lead{i} ", f"Person{i}", f"Lead{i}@Example{i % 5000}.com", f"Company {i % 5000}",
                                 "Engineer"])  # fmt: skip
    return path


def measure(folder: Path, sandbox: Sandbox, rows: int, concurrency: int) -> dict[str, float]:
    """Run the job over ``rows`` rows to its end; its peak RSS, wall time and the contacts it created."""
    spec, report = folder / f"job-{rows}.yaml", folder / f"report-{rows}.json"
    spec.write_text(SPEC.format(csv=generate(rows), concurrency=concurrency), encoding="utf-8")
    sandbox.reset()
    start = time.perf_counter()
    # A state file per size: the small list is the big one's first rows, which a shared state would skip.
    state = folder / f"state-{rows}.db"
    rss_kib = peak_rss([*CRMSYNC, "-q", "run", str(spec), "--report", str(report), "--state", str(state)])
    wall = time.perf_counter() - start
    delivered = json.loads(report.read_text())["delivered"].get("contacts", 0)
    if delivered != rows:
        raise SystemExit(f"{rows} rows: crmsync delivered {delivered} contacts")
    return {"peak_rss_mib": round(rss_kib / 1024, 1), "wall_s": round(wall, 1), "records_per_s": round(rows / wall)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed = folder / "seed.json"
        seed.write_text(json.dumps({"people": [], "contacts": []}))
        sandbox = Sandbox(seed, "--latency-ms", str(args.latency_ms))
        os.environ["APOLLO_BASE_URL"] = sandbox.url
        try:
            small = measure(folder, sandbox, args.small_rows, args.concurrency)
            big = measure(folder, sandbox, args.rows, args.concurrency)
        finally:
            # Not Sandbox.stop(): a sandbox holding a million contacts takes a while to shut down politely.
            sandbox.process.kill()
            sandbox.process.wait()
    results = {
        "rows": args.rows,
        "small_rows": args.small_rows,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "small": small,
        "big": big,
        "rss_ratio": round(big["peak_rss_mib"] / small["peak_rss_mib"], 3),
        "python": sys.version.split()[0],
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

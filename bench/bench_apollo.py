#!/usr/bin/env python3
"""Benchmark: Apollo enrich + create through crmsync against the sandbox (a separate process, real HTTP).

Three scenarios, each with a baseline measured in the same run:

- rate-bound: ``--people`` people at ``--rate-limit`` calls/minute per endpoint and ``--rate-latency-ms``
  latency. Compared with the floor the rate limit allows; 429s are counted.
- latency-bound: no rate limit, ``--latency-ms`` per call. crmsync against a sequential one-request-at-a-time
  loop (the style of Apollo's Python sample) doing the same calls.
- paid plan (``--paid-plan``): the sandbox allows 1,000 calls a minute and sends *empty* hourly and daily
  limit headers (no limit), and the job configures no rate limits, so it starts from the conservative
  defaults (100 calls an hour). Compared with the latency-bound run: learning "no limit" from the headers
  must make it as fast. ``--timeout`` bounds the run (a client that keeps the default cap needs hours).

Usage: ``python bench/bench_apollo.py [--people 2000] [--rate-limit 100] [--latency-ms 200] [--paid-plan]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CRMSYNC = [sys.executable, "-m", "connector_core"]

SPEC = """
version: 1
job: bench-apollo
public_env: [APOLLO_BASE_URL]
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: bench-key
    max_connections: 16
{rate_limits}
sources:
  leads: {{type: jsonl, path: {leads}, key: email}}
mappers:
  enrich: {{type: apollo.bulk_match, connection: apollo, inputs: [leads], concurrency: 8}}
sinks:
  contacts:
    type: apollo.contacts
    connection: apollo
    inputs: [enrich.matched]
    concurrency: 4
    append_label_names: [bench]
  created: {{type: jsonl, inputs: [contacts.created], path: {out}/created.jsonl}}
  existing: {{type: jsonl, inputs: [contacts.existing], path: {out}/existing.jsonl}}
  missing: {{type: jsonl, inputs: [enrich.missing], path: {out}/missing.jsonl}}
  rejected: {{type: jsonl, inputs: [errors], path: {out}/errors.jsonl}}
"""


class Sandbox:
    """``crmsync sandbox apollo`` in its own process."""

    def __init__(self, seed: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CRMSYNC, "sandbox", "apollo", "--port", "0", "--seed", str(seed), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()  # "Apollo sandbox listening on http://127.0.0.1:PORT"
        self.url = line.strip().rsplit(" ", 1)[-1]

    def state(self) -> dict:
        return httpx.get(f"{self.url}/_sandbox/state").json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def prepare(folder: Path, people: int) -> tuple[Path, Path]:
    """A seed with ``people`` generated people, and a lead file of those with an email."""
    from crmsync_plugins.apollo.sandbox import load_seed

    seed = folder / "seed.json"
    seed.write_text(json.dumps({"people": [], "contacts": [], "generated_people": {"count": people, "random_seed": 1}}))
    leads = folder / "leads.jsonl"
    with leads.open("w") as handle:
        for person in load_seed(seed).people:
            if not person.get("email"):
                continue  # the lead list is keyed by email
            lead = {k: person.get(k) for k in ("first_name", "last_name", "email")}
            lead["domain"] = (person.get("organization") or {}).get("primary_domain")
            handle.write(json.dumps(lead) + "\n")
    return seed, leads


RATE_LIMITS = """    rate_limits:
      people/bulk_match: {{per_minute: {limit}, per_hour: null, per_day: null}}
      contacts/bulk_create: {{per_minute: {limit}, per_hour: null, per_day: null}}"""


def run_crmsync(
    folder: Path,
    sandbox: Sandbox,
    leads: Path,
    limit: int | None,
    python: str = sys.executable,
    timeout: float | None = None,
) -> tuple[float, dict]:
    """Run the job (``limit=None``: no rate limits configured, the defaults apply); wall time and report (empty
    when the run did not finish within ``timeout``)."""
    spec = folder / "job.yaml"
    rate_limits = RATE_LIMITS.format(limit=limit) if limit is not None else ""
    spec.write_text(SPEC.format(rate_limits=rate_limits, leads=leads, out=folder / "out"))
    report = folder / "report.json"
    report.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        subprocess.run(
            [python, *CRMSYNC[1:], "-q", "run", str(spec), "--report", str(report)],
            check=True,
            env={**os.environ, "APOLLO_BASE_URL": sandbox.url, "PYTHONDONTWRITEBYTECODE": "1"},
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, {}
    return time.perf_counter() - start, json.loads(report.read_text())


def run_sequential(sandbox: Sandbox, leads: Path) -> float:
    """One request at a time, the way Apollo's Python sample calls the API."""
    people = [json.loads(line) for line in leads.read_text().splitlines()]
    start = time.perf_counter()
    matched = []
    with httpx.Client(base_url=sandbox.url, headers={"X-Api-Key": "bench-key"}, timeout=30) as client:
        for i in range(0, len(people), 10):
            body = client.post("/api/v1/people/bulk_match", json={"details": people[i : i + 10]}).json()
            matched += [m for m in body["matches"] if m]
        for i in range(0, len(matched), 100):
            contacts = [
                {k: m.get(k) for k in ("first_name", "last_name", "email", "title")} for m in matched[i : i + 100]
            ]
            client.post(
                "/api/v1/contacts/bulk_create",
                json={"contacts": contacts, "run_dedupe": True, "append_label_names": ["bench"]},
            ).raise_for_status()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--rate-limit", type=int, default=100, help="calls per minute per endpoint")
    parser.add_argument("--rate-latency-ms", type=int, default=150)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--skip-rate", action="store_true", help="only the latency-bound scenario")
    parser.add_argument("--paid-plan", action="store_true", help="also the paid-plan (empty hourly/daily) scenario")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on the paid-plan run after this")
    parser.add_argument(
        "--crmsync-python", default=sys.executable, help="interpreter whose crmsync runs the paid-plan job"
    )
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed, leads = prepare(folder, args.people)
        lead_count = sum(1 for _ in leads.open())
        match_calls, create_calls = math.ceil(lead_count / 10), math.ceil(lead_count / 100)

        sandbox = Sandbox(seed, "--latency-ms", str(args.latency_ms))
        try:
            ours_s, report = run_crmsync(folder, sandbox, leads, 100_000)
            sandbox.reset()
            sequential_s = run_sequential(sandbox, leads)
        finally:
            sandbox.stop()
        results["latency_bound"] = {
            "people": lead_count,
            "latency_ms": args.latency_ms,
            "calls": report["api"]["calls"],
            "crmsync_s": round(ours_s, 2),
            "sequential_s": round(sequential_s, 2),
            "speedup": round(sequential_s / ours_s, 2),
            "created": report["streams"].get("contacts.created", 0),
        }

        if args.paid_plan:
            sandbox = Sandbox(seed, "--latency-ms", str(args.latency_ms), "--rate-limit-per-minute", "1000")
            try:
                paid_s, report = run_crmsync(folder, sandbox, leads, None, args.crmsync_python, args.timeout)
                state = sandbox.state()
            finally:
                sandbox.stop()
            results["paid_plan"] = {
                "people": lead_count,
                "latency_ms": args.latency_ms,
                "sandbox_headers": "x-rate-limit-minute: 1000, x-rate-limit-hourly: '', x-rate-limit-24-hour: ''",
                "finished": bool(report),
                "crmsync_s": round(paid_s, 2),
                "calls_made": state["calls"],
                "latency_bound_s": results["latency_bound"]["crmsync_s"],
                "budget_wait_s": report["api"]["wait_s"] if report else None,
            }

        if not args.skip_rate:
            sandbox = Sandbox(
                seed, "--latency-ms", str(args.rate_latency_ms), "--rate-limit-per-minute", str(args.rate_limit)
            )
            try:
                ours_s, report = run_crmsync(folder, sandbox, leads, args.rate_limit)
                state = sandbox.state()
            finally:
                sandbox.stop()
            # The floor spreads calls evenly; Apollo's fixed windows let a full window go at once, so
            # the strict floor is the start of the last window the busiest endpoint needs.
            even_floor = max(match_calls, create_calls) / args.rate_limit * 60
            strict_floor = (math.ceil(match_calls / args.rate_limit) - 1) * 60
            results["rate_bound"] = {
                "people": lead_count,
                "rate_limit_per_minute": args.rate_limit,
                "latency_ms": args.rate_latency_ms,
                "calls": report["api"]["calls"],
                "crmsync_s": round(ours_s, 2),
                "even_floor_s": round(even_floor, 2),
                "ratio_to_even_floor": round(ours_s / even_floor, 3),
                "strict_floor_s": strict_floor,
                "ratio_to_strict_floor": round(ours_s / strict_floor, 3) if strict_floor else None,
                "rate_limited_429": report["api"]["rate_limited"],
                "sandbox_rate_limited": state["rate_limited"],
                "budget_wait_s": report["api"]["wait_s"],
            }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: SIGKILL/resume trials of an enrich + create job with durable state.

Each trial starts from an empty state and a freshly reset sandbox, kills ``crmsync run`` with SIGKILL at a
random moment (seeded: the seed and kill time are printed), resumes it to the end, and counts:
- lost: input records in no terminal output;
- duplicated: records in more than one output line, and contacts created twice in the sandbox;
- extra credits: credits spent beyond one per matched person.
The last trial is run once more on unchanged input to measure the re-run cost (goal: 0 calls).

Usage: ``python bench/bench_crash.py [--trials 20] [--people 3000] [--seed 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_apollo import CRMSYNC, Sandbox, prepare

SPEC = """
version: 1
job: bench-crash
public_env: [APOLLO_BASE_URL]
state: {{path: state.db}}
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: bench-key
    rate_limits:
      people/bulk_match: {{per_minute: 100000, per_hour: null, per_day: null}}
      contacts/bulk_create: {{per_minute: 100000, per_hour: null, per_day: null}}
sources:
  leads: {{type: jsonl, path: {leads}, key: email}}
mappers:
  enrich: {{type: apollo.bulk_match, connection: apollo, inputs: [leads], concurrency: {concurrency}}}
sinks:
  contacts: {{type: apollo.contacts, connection: apollo, inputs: [enrich.matched]}}
  created: {{type: jsonl, inputs: [contacts.created], path: out/created.jsonl, metadata: true}}
  existing: {{type: jsonl, inputs: [contacts.existing], path: out/existing.jsonl, metadata: true}}
  missing: {{type: jsonl, inputs: [enrich.missing], path: out/missing.jsonl, metadata: true}}
  rejected: {{type: jsonl, inputs: [errors], path: out/errors.jsonl, metadata: true}}
"""
OUTPUTS = ("created", "existing", "missing", "errors")


def run(folder: Path, sandbox: Sandbox, kill_after: float | None = None) -> tuple[int | None, float]:
    start = time.perf_counter()
    process = subprocess.Popen(
        [*CRMSYNC, "-q", "run", str(folder / "job.yaml"), "--report", str(folder / "report.json")],
        env={**os.environ, "APOLLO_BASE_URL": sandbox.url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if kill_after is not None:
        try:
            return process.wait(kill_after), time.perf_counter() - start
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return None, time.perf_counter() - start
    return process.wait(), time.perf_counter() - start


def audit(folder: Path, keys: list[str], sandbox: Sandbox) -> dict[str, int]:
    seen: Counter[str] = Counter()
    matched = 0
    for name in OUTPUTS:
        path = folder / "out" / f"{name}.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        seen.update(record["_key"] for record in records)
        matched += len(records) if name in ("created", "existing") else 0
    state = sandbox.state()
    emails = Counter(c["email"] for c in state["contacts"] if c.get("email"))
    return {
        "lost": sum(1 for key in set(keys) if key not in seen),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1) + sum(n - 1 for n in emails.values() if n > 1),
        "extra_credits": round(state["credits"] - matched),
        "calls": sum(state["calls"].values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="bulk_match calls in flight")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    trials = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed, leads = prepare(root, args.people)
        keys = [json.loads(line)["email"] for line in leads.read_text().splitlines()]
        sandbox = Sandbox(seed, "--latency-ms", str(args.latency_ms))
        try:
            folder = root / "job"
            folder.mkdir()
            (folder / "job.yaml").write_text(SPEC.format(leads=leads, concurrency=args.concurrency))
            _, full_s = run(folder, sandbox)  # a clean run, to know how long one takes
            for trial in range(args.trials):
                shutil.rmtree(folder / "out", ignore_errors=True)
                (folder / "state.db").unlink(missing_ok=True)
                sandbox.reset()
                kill_at = round(rng.uniform(0.3, full_s), 2)
                code, _ = run(folder, sandbox, kill_after=kill_at)
                crashed = code is None
                code, _ = run(folder, sandbox)
                result = {"trial": trial, "kill_at_s": kill_at, "crashed": crashed, "resume_exit": code}
                result.update(audit(folder, keys, sandbox))
                trials.append(result)
                print(json.dumps(result), file=sys.stderr)
            before = sandbox.state()
            run(folder, sandbox)
            after = sandbox.state()
        finally:
            sandbox.stop()
    crashes = sum(t["crashed"] for t in trials)
    summary = {
        "people": args.people,
        "trials": args.trials,
        "crashes": crashes,
        "clean_run_s": round(full_s, 2),
        "bulk_match_concurrency": args.concurrency,
        "lost": sum(t["lost"] for t in trials),
        "duplicated": sum(t["duplicated"] for t in trials),
        "extra_credits_total": sum(t["extra_credits"] for t in trials),
        "extra_credits_max_per_crash": max((t["extra_credits"] for t in trials if t["crashed"]), default=0),
        "one_batch_credits": 10,
        "failed_resumes": sum(t["resume_exit"] != 0 for t in trials),
        "rerun_calls": sum(after["calls"].values()) - sum(before["calls"].values()),
        "rerun_credits": after["credits"] - before["credits"],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

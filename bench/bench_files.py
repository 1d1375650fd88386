#!/usr/bin/env python3
"""Benchmark: CSV → fields mapper → JSONL through crmsync, against a hand-written DictReader → json.dumps loop.

Measures, in one run and on the same generated file:
- records/s of the raw loop and of ``crmsync run`` (each in its own process, best of ``--repeat``),
- peak RSS of crmsync for the small and the large input (memory must not grow with input size),
- ``crmsync --help`` wall time (best of 5).

Usage: ``python bench/bench_files.py [--rows 1000000] [--small-rows 10000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CRMSYNC = [sys.executable, "-m", "connector_core"]

SPEC = """
version: 1
job: bench-files
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
      company: {{from: Company}}
      domain: {{from: Website, transform: url_domain}}
      title: {{from: Title}}
sinks:
  out: {{type: jsonl, inputs: [people], path: {out}}}
"""

RAW_LOOP = """
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as src, open(sys.argv[2], "w", encoding="utf-8") as dst:
    for row in csv.DictReader(src):
        dst.write(json.dumps(row) + "\\n")
"""


def generate(rows: int) -> Path:
    """A deterministic lead list of ``rows`` rows (cached between runs)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"leads-{rows}.csv"
    if path.exists():
        return path
    rng = random.Random(rows)
    firsts = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
    lasts = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lee"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["First Name", "Last Name", "Email", "Company", "Website", "Title"])
        for i in range(rows):
            first, last = rng.choice(firsts), rng.choice(lasts)
            company = f"Company {i % 5000}"
            writer.writerow(
                [
                    f" {first} ",
                    last,
                    f"{first}.{last}{i}@Example{i % 5000}.com",
                    company,
                    f"https://www.example{i % 5000}.com/about",
                    "Engineer",
                ]
            )
    return path


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a child process.

    CPU time is reported too because on a shared virtual machine wall time also measures the neighbours.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best(command: list[str], repeat: int) -> tuple[float, float]:
    """The best wall time and the best CPU time over ``repeat`` runs."""
    runs = [timed(command) for _ in range(repeat)]
    return min(wall for wall, _ in runs), min(cpu for _, cpu in runs)


def peak_rss(command: list[str]) -> int:
    """Peak RSS (KiB) of one child process, measured in a fresh interpreter so earlier children don't count."""
    probe = textwrap.dedent(
        """
        import resource, subprocess, sys
        subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        """
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def crmsync_job(rows_csv: Path, tag: str) -> Path:
    spec = DATA / f"bench-{tag}.yaml"
    spec.write_text(SPEC.format(csv=rows_csv, out=DATA / f"out-{tag}.jsonl"), encoding="utf-8")
    return spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    big, small = generate(args.rows), generate(args.small_rows)
    big_spec, small_spec = crmsync_job(big, "big"), crmsync_job(small, "small")
    raw = [sys.executable, "-c", RAW_LOOP, str(big), str(DATA / "out-raw.jsonl")]

    raw_s, raw_cpu = best(raw, args.repeat)
    ours_s, ours_cpu = best([*CRMSYNC, "-q", "run", str(big_spec)], args.repeat)
    lines = sum(1 for _ in (DATA / "out-big.jsonl").open(encoding="utf-8"))
    if lines != args.rows:
        raise SystemExit(f"crmsync wrote {lines} records, expected {args.rows}")
    rss_small = peak_rss([*CRMSYNC, "-q", "run", str(small_spec)])
    rss_big = peak_rss([*CRMSYNC, "-q", "run", str(big_spec)])
    help_s = best([*CRMSYNC, "--help"], 5)[0]

    results = {
        "rows": args.rows,
        "raw_loop_records_per_s": round(args.rows / raw_s),
        "crmsync_records_per_s": round(args.rows / ours_s),
        "throughput_ratio": round(raw_s / ours_s, 3),
        "cpu_ratio": round(raw_cpu / ours_cpu, 3),
        "peak_rss_small_mib": round(rss_small / 1024, 1),
        "peak_rss_big_mib": round(rss_big / 1024, 1),
        "rss_ratio": round(rss_big / rss_small, 3),
        "help_s": round(help_s, 3),
        "python": sys.version.split()[0],
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

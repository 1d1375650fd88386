#!/usr/bin/env python3
"""Benchmark: what durable state costs on a file job, against the same job run with ``--no-state``.

The job is bench_files.py's (CSV → ``fields`` → JSONL, ``key: Email``) plus an error-stream JSONL sink, over
bench_files.py's generated lead list; ``--messy`` makes some rows bad the way real lists are (a missing email,
which ``required`` rejects; stray whitespace; broken website URLs), so rejects reach the error stream and, with
state, the rejects table. For each size, three rounds, interleaved, each one of:

- ``stateless``: ``crmsync run --no-state``;
- ``fresh``: ``crmsync run`` with a new state file (a first run);
- ``rerun``: ``crmsync run`` again on the same state and input (everything skipped as unchanged).

It reports the median CPU time (user + system of the ``crmsync`` process) of each, the ratios to the stateless
run, state's own cost per record, and the state file's size per record; and checks that the fresh stateful run
wrote exactly what the stateless one wrote (lines and content hash) and that the re-run added nothing. With
``--resume`` it also SIGKILLs a stateful run of the big input half-way, resumes it and checks the output is
still identical.

``--leads CSV`` measures a lead list of one's own (bench_files.py's columns, ``Email`` the key) instead, its
first ``--small-rows`` rows as the small input. ``--before FOLDER`` also runs the stateless and the first
stateful run with the code in ``FOLDER`` (``connector_core`` and a ``crmsync_plugins`` link), interleaved, and
reports its figures and the state's own cost (fresh minus stateless, median of the rounds) beside this code's.

``--no-key`` drops ``key: Email``: every record is keyed by the hash of its content, which the stateless run does
not compute (nothing in it reads keys) and the stateful one does.

Usage: ``python bench/bench_state_cost.py [--rows 1000000] [--small-rows 10000] [--repeat 3] [--messy [--rejects
PERCENT]] [--leads CSV] [--before FOLDER] [--no-key] [--resume]``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

from bench_files import CRMSYNC, DATA, SPEC, count_leads, generate, timed


def messy(rows: int, rejects: int = 2) -> Path:
    """bench_files.py's lead list with some of its rows made bad, ``rejects`` in a hundred of them rejected
    (cached between runs)."""
    path = DATA / (f"leads-{rows}-messy.csv" if rejects == 2 else f"leads-{rows}-messy-{rejects}pct.csv")
    if path.exists():
        return path
    source = generate(rows)
    with source.open(newline="", encoding="utf-8") as inp, path.open("w", newline="", encoding="utf-8") as out:
        reader, writer = csv.reader(inp), csv.writer(out)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            # 2%: the rows the list has always had rejected (so its cached file stays the same).
            rejected = i % 50 == 7 if rejects == 2 else i % 100 < rejects
            if rejected:
                row[2] = ""  # no email: `required` rejects the row
            elif i % 37 == 3:
                row[0], row[2] = f"  {row[0]}\t", f"  {row[2]} "  # stray whitespace, stripped or lowered away
            elif i % 41 == 5:
                row[4] = ["not a url", "http://", "https:///about", "www..example..com"][i % 4]
            writer.writerow(row)
    return path


def head(leads: Path, rows: int) -> Path:
    """The first ``rows`` rows of a lead list of one's own (the whole file when it has no more)."""
    path = DATA / f"head-{rows}-{leads.name}"
    with leads.open(newline="", encoding="utf-8") as inp, path.open("w", newline="", encoding="utf-8") as out:
        reader, writer = csv.reader(inp), csv.writer(out)
        writer.writerows(islice(reader, rows + 1))
    return path


class Job:
    """One spec over one input: its output files and state file in a folder of their own."""

    def __init__(self, leads: Path, tag: str, key: bool = True) -> None:
        self.folder = DATA / f"state-cost-{tag}"
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.out, self.errors = self.folder / "out.jsonl", self.folder / "errors.jsonl"
        self.state = self.folder / "state.db"
        self.spec = self.folder / "spec.yaml"
        text = SPEC.format(csv=leads, key=", key: Email" if key else "", out=self.out, errors=self.errors)
        self.spec.write_text(text, encoding="utf-8")

    def command(self, stateful: bool) -> list[str]:
        state = ["--state", str(self.state)] if stateful else ["--no-state"]
        return [*CRMSYNC, "-q", "run", str(self.spec), *state]

    def forget(self) -> None:
        """A fresh start: no state, no outputs."""
        for path in self.folder.iterdir():
            if path != self.spec:
                path.unlink()

    def output(self) -> tuple[int, str]:
        """Lines and SHA-256 of the output file."""
        data = self.out.read_bytes()
        return data.count(b"\n"), hashlib.sha256(data).hexdigest()

    def state_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.glob("state.db*"))


def measure(leads: Path, rows: int, repeat: int, before: Path | None = None, key: bool = True) -> dict[str, object]:
    job = Job(leads, str(rows), key)
    cpu: dict[str, list[float]] = {"stateless": [], "fresh": [], "rerun": []}
    earlier: dict[str, list[float]] = {"stateless": [], "fresh": []}
    expected: tuple[int, str] | None = None
    state_size = 0
    for _ in range(repeat):
        if before is not None:  # the code before a change, interleaved: runs far apart vary more than a change
            for stateful, name in ((False, "stateless"), (True, "fresh")):
                job.forget()
                earlier[name].append(timed(job.command(stateful), before)[1])
        job.forget()
        cpu["stateless"].append(timed(job.command(False))[1])
        expected = job.output()
        job.forget()
        cpu["fresh"].append(timed(job.command(True))[1])
        if job.output() != expected:
            raise SystemExit(f"{rows} rows: the stateful run wrote {job.output()}, the stateless one {expected}")
        state_size = job.state_bytes()
        cpu["rerun"].append(timed(job.command(True))[1])
        if job.output() != expected:
            raise SystemExit(f"{rows} rows: the re-run changed the output to {job.output()}")
    median = {name: statistics.median(times) for name, times in cpu.items()}
    assert expected is not None
    compared: dict[str, object] = {}
    if before is not None:
        overheads = [fresh - stateless for fresh, stateless in zip(cpu["fresh"], cpu["stateless"], strict=True)]
        earlier_overheads = [
            fresh - stateless for fresh, stateless in zip(earlier["fresh"], earlier["stateless"], strict=True)
        ]
        compared["before"] = {
            "cpu_s": {name: round(statistics.median(times), 3) for name, times in earlier.items()},
            "fresh_ratio": round(statistics.median(earlier["fresh"]) / statistics.median(earlier["stateless"]), 3),
            "state_overhead_s": round(statistics.median(earlier_overheads), 3),
        }
        compared["state_overhead_s"] = round(statistics.median(overheads), 3)
    return {
        "rows": rows,
        "delivered": expected[0],
        "cpu_s": {name: round(value, 3) for name, value in median.items()},
        "fresh_ratio": round(median["fresh"] / median["stateless"], 3),
        "rerun_ratio": round(median["rerun"] / median["stateless"], 3),
        "stateless_us_per_record": round(median["stateless"] / rows * 1e6, 2),
        "fresh_us_per_record": round(median["fresh"] / rows * 1e6, 2),
        "state_overhead_us_per_record": round((median["fresh"] - median["stateless"]) / rows * 1e6, 2),
        "rerun_us_per_record": round(median["rerun"] / rows * 1e6, 2),
        "state_bytes_per_record": round(state_size / rows, 1),
        **compared,
        "job": job,
        "expected": expected,
    }


def resume(job: Job, expected: tuple[int, str], wall_s: float) -> dict[str, object]:
    """SIGKILL a fresh stateful run half-way, resume it, and check the output is what a clean run writes."""
    job.forget()
    child = subprocess.Popen(job.command(True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(wall_s / 2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    _, cpu = timed(job.command(True))
    if job.output() != expected:
        raise SystemExit(f"resumed run wrote {job.output()}, a clean run {expected}")
    return {"killed_after_s": round(wall_s / 2, 2), "resume_cpu_s": round(cpu, 3), "output_identical": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messy", action="store_true", help="make ~7%% of the rows bad (rejects, whitespace, URLs)")
    parser.add_argument(
        "--rejects", type=int, default=2, metavar="PERCENT", help="with --messy: the rows rejected, in %% (2)"
    )
    parser.add_argument("--resume", action="store_true", help="also SIGKILL a big stateful run and resume it")
    parser.add_argument("--leads", type=Path, help="a lead list of your own (a CSV with bench_files.py's columns)")
    parser.add_argument("--before", type=Path, help="a folder of crmsync code to measure too, interleaved")
    parser.add_argument("--no-key", action="store_true", help="no `key:`: records keyed by a content hash")
    args = parser.parse_args()

    def leads(rows: int) -> Path:
        if args.leads:
            return head(args.leads, rows)
        return messy(rows, args.rejects) if args.messy else generate(rows)

    if args.leads:
        args.rows = count_leads(args.leads)
    results: dict[str, object] = {
        "messy": args.messy,
        "rejects_percent": args.rejects if args.messy else 0,
        "key": not args.no_key,
    }
    if args.leads:
        results["leads"] = str(args.leads)
    for name, rows in (("small", args.small_rows), ("big", args.rows)):
        results[name] = measure(leads(rows), rows, args.repeat, args.before, not args.no_key)
    big, small = results["big"], results["small"]
    assert isinstance(big, dict) and isinstance(small, dict)
    results["flatness"] = round(big["fresh_us_per_record"] / small["fresh_us_per_record"], 3)
    results["overhead_flatness"] = round(
        big["state_overhead_us_per_record"] / max(small["state_overhead_us_per_record"], 0.01), 3
    )
    if args.resume:
        started = time.perf_counter()
        job: Job = big["job"]
        job.forget()
        timed(job.command(True))
        results["resume"] = resume(job, big["expected"], time.perf_counter() - started)
    for size in (big, small):
        del size["job"], size["expected"]
    results["python"] = sys.version.split()[0]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: start-up of the ``crmsync`` command against the interpreter's own.

Best of ``--repeat`` wall and CPU times (the machine is shared: the best run is the one nothing else disturbed)
of ``python -c pass``, ``crmsync --help`` (the console script beside the interpreter), ``python -m connector_core
--help`` and ``crmsync run`` of a one-row files-only job (CSV → ``fields`` → JSONL, no state), each also as
seconds above ``python -c pass``. Run with the interpreter of the installation to measure; for the modules
behind a figure use ``python -X importtime -m connector_core --help``.

Usage: ``python bench/bench_startup.py [--repeat 10]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = """
version: 1
job: startup
state: false
sources:
  leads: {type: csv, path: leads.csv, key: Email}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      email: {from: Email, transform: [strip, lower], required: true}
      domain: {from: Website, transform: url_domain}
sinks:
  out: {type: jsonl, inputs: [people], path: out.jsonl}
"""


def best_of(argv: list[str], repeat: int, cwd: Path) -> tuple[float, float]:
    """The best wall time and the best CPU time (user + system) of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    python = sys.executable
    script = str(Path(python).with_name("crmsync"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)  # not a checkout: `-m connector_core` must find the installed package
        (folder / "leads.csv").write_text("Email,Website\n Ada@Example.com ,https://www.example.com/about\n")
        (folder / "job.yaml").write_text(JOB)
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "crmsync --help": [script, "--help"],
            "python -m connector_core --help": [python, "-m", "connector_core", "--help"],
            "crmsync run (files only, 1 row)": [script, "-q", "run", "job.yaml"],
        }
        best = {name: best_of(argv, args.repeat, folder) for name, argv in commands.items()}
    wall, cpu = best["python -c pass"]
    print(
        json.dumps(
            {
                "repeat": args.repeat,
                "best_wall_s": {name: round(value[0], 4) for name, value in best.items()},
                "wall_above_interpreter_s": {name: round(value[0] - wall, 4) for name, value in best.items()},
                "best_cpu_s": {name: round(value[1], 4) for name, value in best.items()},
                "cpu_above_interpreter_s": {name: round(value[1] - cpu, 4) for name, value in best.items()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: the cost of one committed batch in each state store, and of taking the lease.

Runs ``commit_batch`` (one transaction: the batch's ``(key, fingerprint)`` rows and the sink's checkpoint) the
way the engine does after every sink batch, against SQLite (WAL, ``synchronous=NORMAL``) and against a real
PostgreSQL server this script starts on a temporary folder and a free port (initdb + pg_ctl, as the
``postgres`` user when run as root) with default durability (``fsync=on``, ``synchronous_commit=on``).

Usage: ``python bench/bench_state.py [--batches 300] [--batch-size 100]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector_core.state.lease import new_owner  # noqa: E402
from connector_core.state.open import open_store  # noqa: E402
from connector_core.state.store import StateStore  # noqa: E402
from tests.postgres_server import PostgresServer, find_binaries  # noqa: E402


def measure(store: StateStore, batches: int, size: int) -> dict[str, float]:
    run_id = store.start_run("bench")
    times = []
    for batch in range(batches):
        rows = [(f"person-{batch}-{i}@example.com", f"{batch:08x}{i:08x}") for i in range(size)]
        began = time.perf_counter()
        store.commit_batch("bench", run_id, "contacts", rows, {"offset": batch * size})
        times.append(time.perf_counter() - began)
    lease = []
    for _ in range(50):
        owner = new_owner()
        began = time.perf_counter()
        store.acquire_lock("bench-lease", owner, 60)
        store.renew_lock("bench-lease", owner["token"], 60)
        store.release_lock("bench-lease", owner["token"])
        lease.append(time.perf_counter() - began)
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[int(len(times) * 0.95)] * 1000,
        "records_per_s": batches * size / sum(times),
        "lease_cycle_ms": statistics.median(lease) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(str(Path(folder) / "state.db"))
        results["sqlite"] = measure(store, args.batches, args.batch_size)
        store.close()
    binaries = find_binaries()
    if binaries is None:
        print("PostgreSQL server binaries not found: PostgreSQL skipped", file=sys.stderr)
    else:
        server = PostgresServer(binaries, fsync=True)
        server.start()
        try:
            store = open_store(server.new_database())
            results["postgresql"] = measure(store, args.batches, args.batch_size)
            store.close()
        finally:
            server.stop()
    print(f"{args.batches} batches of {args.batch_size} records; one transaction each")
    print(f"{'store':<12}{'median ms':>10}{'p95 ms':>10}{'records/s':>12}{'lease acquire+renew+release ms':>33}")
    for name, r in results.items():
        print(
            f"{name:<12}{r['median_ms']:>10.2f}{r['p95_ms']:>10.2f}{r['records_per_s']:>12,.0f}"
            f"{r['lease_cycle_ms']:>33.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

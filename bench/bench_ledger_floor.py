#!/usr/bin/env python3
"""Benchmark: what recording a first run's deliveries costs in SQLite, at least, against the budget the ``--state``
goal (1.3x the stateless run) leaves.

The goal leaves 0.3x the stateless run's CPU per record for everything state does. This script measures, per
record of bench_state_cost.py's messy lead list (its keys and its fingerprints):

- ``stateless``: the whole ``crmsync run --no-state`` of bench_state_cost.py's job, per input row (the baseline);
- ``fingerprints``: :func:`connector_core.fingerprints.fingerprints` over the rows as the CSV source gives them;
- ``store``: what the SQLite store is asked by a first run: ``commit_batch`` per commit group
  (``GROUP_RECORDS`` pairs), then ``complete_run``;
- ``sqlite_floor``: the same commits, then only what any keyed ledger in SQLite must do at the end: one
  ``INSERT ... SELECT ... ORDER BY key`` of the journal into an empty table keyed by ``(job, key)`` (a sort and a
  B-tree insert a pair; nothing merged, nothing checked);
- ``hashed_keys``: the ledger keyed by 63-bit XXH3 digests of the keys in a rowid table instead (integers to
  sort and compare; the digests taken in Python at commit time).

Each part runs ``--repeat`` times (median). The pairs are those of the delivered rows (no reject).

Usage: ``python bench/bench_ledger_floor.py [--rows 300000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from itertools import repeat
from operator import and_
from pathlib import Path

from bench_files import DATA, timed
from bench_state_cost import Job, messy
from xxhash import xxh3_64_intdigest

from connector_core.commit_groups import GROUP_RECORDS as GROUP
from connector_core.fingerprints import fingerprints
from connector_core.state.sql import JOURNAL_ROW_PAIRS
from connector_core.state.sqlite import SqliteStateStore

#: The largest digest SQLite's signed 64-bit integers hold.
_MASK = (1 << 63) - 1
FOLDER = DATA / "ledger-floor"

Pairs = list[tuple[str, str]]


def lead_pairs(leads: Path) -> tuple[list[dict[str, str]], Pairs]:
    """The rows of the list, and the ``(key, fingerprint)`` of each row with an email (the delivered ones)."""
    with leads.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    delivered = [row for row in rows if row["Email"].strip()]
    return rows, list(zip([row["Email"] for row in delivered], fingerprints(delivered), strict=True))


def fresh_store() -> SqliteStateStore:
    shutil.rmtree(FOLDER, ignore_errors=True)
    return SqliteStateStore(FOLDER / "state.db")


def commit_all(state: SqliteStateStore, run_id: int, pairs: Pairs) -> None:
    """Commit ``pairs`` as a first run's commit groups do."""
    for start in range(0, len(pairs), GROUP):
        state.commit_batch("job", run_id, "out", pairs[start : start + GROUP], {"offset": start})


def settle(db: sqlite3.Connection, insert: str, journal: str, params: tuple[int, ...] = ()) -> None:
    """In one transaction: ``insert`` the journal's pairs into a keyed table, then empty the journal."""
    db.execute("BEGIN IMMEDIATE")
    db.execute(insert, params)
    db.execute(f"DELETE FROM {journal}")
    db.execute("COMMIT")


def cpu_of(state: SqliteStateStore, work: Callable[[], object]) -> float:
    """CPU of ``work``; the store is closed after."""
    spent = _cpu(work)
    state.close()
    return spent


def store(pairs: Pairs) -> float:
    """CPU of the store's own calls for a first run that delivers ``pairs``."""
    state = fresh_store()
    run_id = state.start_run("job")
    return cpu_of(state, lambda: (commit_all(state, run_id, pairs), state.complete_run("job", run_id)))


def sqlite_floor(pairs: Pairs) -> float:
    """CPU of the same commits, then one sorted insert of the journal into an empty keyed table."""
    state = fresh_store()
    state.db.execute(
        "CREATE TABLE floor (job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, "
        "run_id INTEGER NOT NULL, PRIMARY KEY (job, key)) WITHOUT ROWID"
    )
    run_id = state.start_run("job")
    insert = (
        "INSERT OR REPLACE INTO floor (job, key, fingerprint, run_id) SELECT 'job', key, fingerprint, run_id "
        "FROM journal_pairs WHERE run_id = ? ORDER BY key"
    )
    return cpu_of(state, lambda: (commit_all(state, run_id, pairs), settle(state.db, insert, "journal", (run_id,))))


def hashed_keys(pairs: Pairs) -> float:
    """CPU of a ledger keyed by integer digests of the keys: commits as JSON of ``digest: fingerprint``."""
    state = fresh_store()
    db = state.db
    db.execute("CREATE TABLE hashed (digest INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, run_id INTEGER NOT NULL)")
    db.execute("CREATE TABLE hashed_journal (run_id INTEGER NOT NULL, pairs TEXT NOT NULL)")

    def commit_digests() -> None:
        for start in range(0, len(pairs), GROUP):
            texts = []
            for row in range(start, min(start + GROUP, len(pairs)), JOURNAL_ROW_PAIRS):
                keys, prints = zip(*pairs[row : row + JOURNAL_ROW_PAIRS], strict=True)
                digests = map(and_, map(xxh3_64_intdigest, map(str.encode, keys)), repeat(_MASK))
                texts.append(("{" + ",".join(map('"{}":"{}"'.format, digests, prints)) + "}",))
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO hashed_journal (run_id, pairs) VALUES (1, ?)", texts)
            db.execute("COMMIT")

    insert = (
        "INSERT OR REPLACE INTO hashed (digest, fingerprint, run_id) SELECT CAST(p.key AS INTEGER), p.value, 1 "
        "FROM hashed_journal j, json_each(j.pairs) p ORDER BY 1"
    )
    return cpu_of(state, lambda: (commit_digests(), settle(db, insert, "hashed_journal")))


def median_of(function: Callable[[], float], times: int) -> float:
    return statistics.median(function() for _ in range(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    leads = messy(args.rows)
    job = Job(leads, f"floor-{args.rows}")
    stateless = statistics.median(timed(job.command(False))[1] for _ in range(args.repeat))
    rows, pairs = lead_pairs(leads)
    # The source fingerprints batches of its rows (250 a batch, the default source_batch_size).
    fingerprinting = median_of(
        lambda: _cpu(lambda: [fingerprints(rows[start : start + 250]) for start in range(0, len(rows), 250)]),
        args.repeat,
    )
    parts = {
        "fingerprints": fingerprinting / len(rows),
        "store": median_of(lambda: store(pairs), args.repeat) / len(rows),
        "sqlite_floor": median_of(lambda: sqlite_floor(pairs), args.repeat) / len(rows),
        "hashed_keys": median_of(lambda: hashed_keys(pairs), args.repeat) / len(rows),
    }
    baseline = stateless / args.rows
    budget = 0.3 * baseline
    shutil.rmtree(FOLDER, ignore_errors=True)
    print(
        json.dumps(
            {
                "rows": args.rows,
                "delivered_pairs": len(pairs),
                "us_per_record": {
                    "stateless": round(baseline * 1e6, 2),
                    "budget_for_state_at_1.3x": round(budget * 1e6, 2),
                    **{name: round(value * 1e6, 2) for name, value in parts.items()},
                },
                "share_of_budget": {name: round(value / budget, 2) for name, value in parts.items()},
                "python": sys.version.split()[0],
                "sqlite": sqlite3.sqlite_version,
            },
            indent=2,
        )
    )
    return 0


def _cpu(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


if __name__ == "__main__":
    raise SystemExit(main())

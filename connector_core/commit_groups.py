"""Grouped commits: a sink that can roll back to its checkpoint commits its deliveries every thousand records.

A commit is the sink's ``checkpoint()`` (an fsync) plus a state transaction; after every 500-record batch those
two cost more than the rest of a file job. A sink whose checkpoint token lets it cut its output back to a
committed point (the file sinks' part files, a SQLite sink's transaction) loses nothing by committing less
often: a crash between two commits leaves records that were written but not recorded, which the next run cuts
back and writes again, exactly as for a crash between a write and its commit. Sinks whose writes are durable at
once (an API) keep the checkpoint-less default and commit every batch: for them the window is a re-send.
"""

from __future__ import annotations

import time

from connector_core.records import Record

#: A group is committed once it holds this many records (the group keeps them, to set them aside should its
#: commit fail: this bounds the memory it holds)... Records held long are cold when the commit reads their keys
#: and when they are freed: 5,000 (~7 MB of records) cost more in cache misses and page faults (20k against
#: 11k a 300k-row run) than the commits they save, and 3,000 faulted 18k pages; 500 commits too often
#: (bench_state_cost.py, ~4%). 2,000 against 1,000 (an fsync and a transaction fewer per 2,000 records), first
#: stateful runs of 300k rows interleaved: 4 to 9% less CPU with 2% of them rejected (three series), 2% less with
#: a quarter rejected.
GROUP_RECORDS = 2_000
#: ...or this many seconds after the previous commit, whichever comes first: a sink fed slowly (by an API)
#: still commits about every batch, and a write error (a full disk, seen when the checkpoint flushes) stops the
#: run's API work about as soon as before.
GROUP_SECONDS = 0.05


class CommitGroup:
    """The records a sink wrote since its last commit."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._since = time.monotonic()

    def add(self, records: list[Record]) -> None:
        self.records += records

    def due(self) -> bool:
        """Whether the group should be committed now."""
        return len(self.records) >= GROUP_RECORDS or time.monotonic() - self._since >= GROUP_SECONDS

    def take(self) -> list[Record]:
        """The records to commit (the group starts over empty)."""
        records, self.records = self.records, []
        self._since = time.monotonic()
        return records

"""Grouped commits: a sink that can roll back to its checkpoint commits its deliveries every 10,000 records.

A commit is the sink's ``checkpoint()`` (an fsync) plus a state transaction; after every 500-record batch those
two cost more than the rest of a file job. A sink whose checkpoint token lets it cut its output back to a
committed point (the file sinks' part files, a SQLite sink's transaction) loses nothing by committing less
often: a crash between two commits leaves records that were written but not recorded, which the next run cuts
back and writes again, exactly as for a crash between a write and its commit. Sinks whose writes are durable at
once (an API) keep the checkpoint-less default and commit every batch: for them the window is a re-send.
"""

from __future__ import annotations

import time
from operator import itemgetter
from typing import NamedTuple

from connector_core.records import Record

#: A group is committed once it holds this many records... 10,000 against 2,000, first stateful runs of 300k rows
#: (2% rejected) in three interleaved series of 10-15 rounds: 4% less CPU (the fsyncs: on this VM each blocking
#: call costs CPU after it too, and 2,000 a group still cost 8-9%); 2,000 against 1,000 saved 4 to 9%. A commit
#: keeps nothing but a key, fingerprint and provenance a record, so the group's size costs no memory to speak of.
GROUP_RECORDS = 10_000
#: ...or this many seconds after the previous commit, whichever comes first: a sink fed slowly (by an API)
#: still commits every few batches, and a write error (a full disk, seen when the checkpoint flushes) stops the
#: run's API work within half a second.
GROUP_SECONDS = 0.5


#: What a group keeps of a record the sink wrote, picked in C into columns: its ``(key, fingerprint)`` pair (what
#: the commit records, handed to it as it is), then its source and position (what a record set aside names).
_PAIR, _SOURCE, _POSITION = itemgetter(1, 4), itemgetter(2), itemgetter(3)


class Kept(NamedTuple):
    """What a group kept of the records a sink wrote, column by column: the pair is the only object made per
    record (a tuple of all four fields, then a pair of it for the commit, cost twice as much)."""

    pairs: list[tuple[str, str]]
    sources: list[str]
    positions: list[int]

    def stand_ins(self) -> list[Record]:
        """Records standing in for those of a group whose commit failed, to set them aside: key, provenance and
        fingerprint, without the data (the sink had it; the next run reads the record again)."""
        rows = zip(self.pairs, self.sources, self.positions, strict=True)
        return [Record({}, key, source, position, fingerprint) for (key, fingerprint), source, position in rows]


class CommitGroup:
    """What a sink wrote since its last commit: not the records themselves. Held until the commit, their data had
    left the CPU's cache by then, and freeing it cold cost 5-8% of a first stateful run of a file job; let go
    right after the write, it is freed while still in the cache."""

    def __init__(self) -> None:
        self.kept = Kept([], [], [])
        self._since = time.monotonic()

    def add(self, records: list[Record]) -> None:
        pairs, sources, positions = self.kept
        pairs += map(_PAIR, records)
        sources += map(_SOURCE, records)
        positions += map(_POSITION, records)

    def __len__(self) -> int:
        return len(self.kept.pairs)

    def due(self) -> bool:
        """Whether the group should be committed now."""
        return len(self) >= GROUP_RECORDS or time.monotonic() - self._since >= GROUP_SECONDS

    def take(self) -> Kept:
        """What the group kept, to commit (the group starts over empty)."""
        kept, self.kept = self.kept, Kept([], [], [])
        self._since = time.monotonic()
        return kept

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


#: What a group keeps of a record the sink wrote: its key and fingerprint (what the commit records), then its
#: source and position (what a record set aside names).
Kept = tuple[str, str, str, int]
_KEPT = itemgetter(1, 4, 2, 3)
_PAIR_OF_KEPT = itemgetter(0, 1)


class CommitGroup:
    """What a sink wrote since its last commit: not the records themselves. Held until the commit, their data had
    left the CPU's cache by then, and freeing it cold cost 5-8% of a first stateful run of a file job; let go
    right after the write, it is freed while still in the cache."""

    def __init__(self) -> None:
        self.kept: list[Kept] = []
        self._since = time.monotonic()

    def add(self, records: list[Record]) -> None:
        self.kept += map(_KEPT, records)

    def due(self) -> bool:
        """Whether the group should be committed now."""
        return len(self.kept) >= GROUP_RECORDS or time.monotonic() - self._since >= GROUP_SECONDS

    def take(self) -> list[Kept]:
        """What the group kept, to commit (the group starts over empty)."""
        kept, self.kept = self.kept, []
        self._since = time.monotonic()
        return kept


def commit_pairs(kept: list[Kept]) -> list[tuple[str, str]]:
    """The ``(key, fingerprint)`` pairs a commit records of what a group kept."""
    return list(map(_PAIR_OF_KEPT, kept))


def stand_ins(kept: list[Kept]) -> list[Record]:
    """Records standing in for those of a group whose commit failed, to set them aside: key, provenance and
    fingerprint, without the data (the sink had it; the next run reads the record again)."""
    return [Record({}, key, source, position, fingerprint) for key, fingerprint, source, position in kept]

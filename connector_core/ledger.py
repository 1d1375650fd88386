"""What the engine tells the state store during a run: skipped, delivered and rejected records."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from itertools import repeat
from operator import itemgetter
from typing import Any

from connector_core.components import Component, Failed
from connector_core.errors import RunFailed
from connector_core.fingerprints import fingerprints, matches
from connector_core.json_encoding import encode_many
from connector_core.records import Record, record_of
from connector_core.spec.model import ERRORS_STREAM, SyncSpec
from connector_core.state.lease import DEFAULT_TTL_S, Heartbeat, new_owner
from connector_core.state.store import UNCHANGED, JobState, Reject, StateStore, reject_of

log = logging.getLogger("crmsync.state")

#: How often a source's read position is written (``crmsync state show``): it is informative only (a resumed
#: run reads from the start), so it need not cost a transaction per batch.
SOURCE_POSITION_EVERY_S = 1.0
#: Rejects are written once this many are kept (see Ledger.rejected). While each held its record, 5,000 cost ~2%
#: more CPU than 1,000 in a 300k-row run with a quarter rejected (colder memory); now that each holds its data
#: encoded, 250, 1,000 and 4,000 measured the same.
REJECTS_AT_ONCE = 1_000
#: A record's ``(key, fingerprint)``, picked in C (a commit takes thousands).
_KEY_AND_FINGERPRINT = itemgetter(1, 4)
#: Stored versions this long (a key met in dozens of versions) are kept by a run once read, up to this many
#: characters in all (memory stays bounded whatever the input).
LONG_VERSIONS = 512
LONG_VERSIONS_KEPT = 16_000_000
_FINGERPRINT: Callable[[Any], str] = itemgetter(4)


class Ledger:
    """One run's bookkeeping: takes the job's lease (renewed in the background), skips records already
    delivered, records deliveries and rejects batch by batch, and settles the run at the end."""

    def __init__(
        self,
        store: StateStore,
        job: str,
        max_attempts: int,
        full_refresh: bool = False,
        read_only: bool = False,
        lock_ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.store = store
        self.job = job
        self.max_attempts = max_attempts
        self.full_refresh = full_refresh
        #: A plan only looks: no lock, no run in the history, nothing recorded.
        self.read_only = read_only
        self.run_id = 0
        self.owner = new_owner()
        self.heartbeat: Heartbeat | None = None
        if not read_only:
            note = store.acquire_lock(job, self.owner, lock_ttl_s)
            if note:
                log.warning("%s", note)
            self.run_id = store.start_run(job)
            self.heartbeat = _start_heartbeat(store, job, self.owner["token"], lock_ttl_s)
        self.state = JobState(store, job, self.run_id)
        self.skipped = 0
        #: Per sink: records it committed in an earlier run and met again, so not written again (a resumed run,
        #: a full refresh); reported beside ``skipped`` so that every record read is accounted for.
        self.already_delivered: dict[str, int] = {}
        has_completed, self._delivered_sinks = store.ledger_start(job)
        #: Whether :meth:`stamp` looks anything up (a first run, or a full refresh, has nothing to skip): when
        #: not, it is plain CPU work the engine runs without a hop to the state thread.
        self.looks_up = has_completed and not full_refresh
        #: Whether every sink may have deliveries of earlier runs (completed records name their sinks).
        self._any_sink_delivered = has_completed
        #: Source read positions not written yet, and when they last were.
        self._positions: dict[str, dict[str, int]] = {}
        self._positions_at = 0.0
        #: Keys with many stored versions, and those versions (see :meth:`_completed`).
        self._long_versions: dict[str, str] = {}
        self._long_chars = 0
        #: Rejects not written yet, in the order they came: runs of rejected or set-aside (transient) ones.
        self._rejects: list[tuple[bool, list[Reject]]] = []

    def stamp(self, items: list[Record | Failed]) -> list[Record | Failed]:
        """Give each item its fingerprint and drop those a finished run already delivered unchanged."""
        stamped = _stamped(items)
        if not self.looks_up:
            return stamped
        done = self._completed([_record(item).key for item in stamped])
        if not done:
            return stamped
        kept: list[Record | Failed] = []
        unchanged: list[Record] = []
        # Recognised by an older fingerprint (an earlier crmsync's), not by the one they have now.
        older: list[tuple[str, str]] = []
        for item in stamped:
            record = _record(item)
            stored = done.get(record.key)
            if stored is not None and matches(stored, record.fingerprint, record.data):
                unchanged.append(record)
                if record.fingerprint not in stored:
                    older.append((record.key, record.fingerprint))
            else:
                kept.append(item)
        if unchanged and not self.read_only:
            # Met again unchanged: part of this run's input, so settling the run keeps them completed beside a
            # new version of the same key that it delivers (two records with one key must not alternate).
            self.store.commit_batch(self.job, self.run_id, UNCHANGED, delivery_pairs(unchanged))
            if older:  # stored with their new fingerprint too: the next run does not compute the older one again
                self.store.add_fingerprints(self.job, older)
                for key, fingerprint in older:
                    if key in self._long_versions:
                        self._long_versions[key] += f" {fingerprint}"
        self.skipped += len(unchanged)
        return kept

    def _completed(self, keys: list[str]) -> dict[str, str]:
        """The stored versions of ``keys`` that a finished run completed. A key with many versions (a placeholder
        such as ``N/A`` in the key column) is read once a run and kept: read again for every batch holding it,
        its versions cost as much as the batch's records (``completed`` changes only when the run settles)."""
        long = self._long_versions
        if not long:
            done = self.store.completed(self.job, keys)
        else:
            done = self.store.completed(self.job, [key for key in keys if key not in long])
            done.update((key, long[key]) for key in keys if key in long)
        for key, stored in done.items():
            room = self._long_chars + len(stored) <= LONG_VERSIONS_KEPT
            if len(stored) >= LONG_VERSIONS and key not in long and room:
                long[key] = stored
                self._long_chars += len(stored)
        return done

    def source_read(self, source: str, position: int, count: int) -> bool:
        """Remember how far a source has read (shown by ``crmsync state show``); True when it is time to
        :meth:`take_positions` and write them (at most once a second; the run's end writes the last ones). A
        resumed run still reads from the start and skips what was delivered: a source file may have changed
        since."""
        if self.read_only:
            return False
        self._positions[source] = {"position": position, "records": count}
        return time.monotonic() - self._positions_at >= SOURCE_POSITION_EVERY_S

    def take_positions(self) -> dict[str, dict[str, int]]:
        """The read positions :meth:`source_read` remembered since the last take, to :meth:`write_positions`.
        Taken where they are remembered (on the event loop): the state store's thread writes a dict no source
        adds to any more, while the loop goes on reading."""
        self._positions_at = time.monotonic()
        positions, self._positions = self._positions, {}
        return positions

    def write_positions(self, positions: dict[str, dict[str, int]]) -> None:
        """Write read positions :meth:`take_positions` took (on the state store's thread)."""
        for name, checkpoint in positions.items():
            self.store.commit_batch(self.job, self.run_id, f"source:{name}", (), checkpoint)

    def looks_up_deliveries(self, sink: str) -> bool:
        """Whether :meth:`unseen` can find anything for ``sink``: only when an earlier run delivered to it."""
        return self._any_sink_delivered or sink in self._delivered_sinks

    def unseen(self, sink: str, batch: list[Record]) -> list[Record]:
        """The records of ``batch`` that ``sink`` committed in an earlier run (a resumed run meets them again)
        left out. Within one run a sink gets every record it is handed, as it would without state."""
        if not self.looks_up_deliveries(sink):
            return batch
        seen = self.store.delivered(self.job, sink, [record.key for record in batch])
        if not seen:
            return batch
        again: list[Record] = []
        new: list[Record] = []
        for record in batch:  # matches() once a record: a changed one computes its older fingerprints
            (again if matches(seen.get(record.key), record.fingerprint, record.data) else new).append(record)
        if again:
            self.already_delivered[sink] = self.already_delivered.get(sink, 0) + len(again)
        if not self.read_only:
            # Reached again in this run: re-stamp them so settling the run counts them as delivered. A key is
            # re-stamped with every version the sink committed, not only the one met now: re-stamping one
            # version would make this run forget the others, and a later batch holding one of them (a key met
            # twice in the input) would write it to the sink a second time.
            restamped = {r.key: str(seen[r.key]) for r in again}
            self.store.commit_batch(self.job, self.run_id, sink, restamped.items())
        return new

    def delivered(self, sink: str, pairs: list[tuple[str, str]], checkpoint: Any) -> None:
        """Commit the ``(key, fingerprint)`` pairs of records a sink made durable (:func:`delivery_pairs`), with
        the sink's checkpoint, in one transaction."""
        if self.heartbeat is not None and self.heartbeat.lost:
            raise RunFailed(self.heartbeat.lost)
        if not self.read_only:
            self.store.commit_batch(self.job, self.run_id, sink, pairs, checkpoint)

    def rejected(self, component: str, records: list[Record], reasons: list[str], transient: bool = False) -> bool:
        """Keep rejected records (as they came, each with its reason) to be retried by the next run; True when
        enough are kept to write them (:meth:`take_rejects`, :meth:`write_rejects`). ``transient`` records were
        set aside this run (not failed): pending for the next run, without using up an attempt.

        Called on the event loop, which alone keeps them: a messy file rejects a few records of every batch,
        and a hop to the state store's thread for each cost more than keeping them. They are written
        :data:`REJECTS_AT_ONCE` at a time, and before the run settles; a run's rejects count when it ends (the
        store keeps them apart until then), so keeping them longer loses nothing should the run be killed."""
        if self.read_only:
            return False
        rows = _reject_rows(component, records, reasons)
        if self._rejects and self._rejects[-1][0] == transient:
            self._rejects[-1][1].extend(rows)
        else:
            self._rejects.append((transient, rows))
        return sum(len(kept) for _, kept in self._rejects) >= REJECTS_AT_ONCE

    def take_rejects(self) -> list[tuple[bool, list[Reject]]]:
        """The rejects :meth:`rejected` kept, to :meth:`write_rejects` (on the event loop, which keeps them)."""
        kept, self._rejects = self._rejects, []
        return kept

    def write_rejects(self, kept: list[tuple[bool, list[Reject]]]) -> None:
        """Write rejects :meth:`take_rejects` took (on the state store's thread), in the order they came: a key
        rejected, then set aside, is counted in that order."""
        for transient, rows in kept:
            self.store.record_rejects(self.job, self.run_id, rows, self.max_attempts, transient=transient)

    def finish(self, status: str, report: dict[str, Any], settled: bool) -> None:
        """Store the report; when the run reached its end (``settled``), mark its deliveries completed."""
        if self.read_only:
            return
        if self.heartbeat is not None:
            self.heartbeat.stop()
        try:
            self.write_positions(self.take_positions())
            self.write_rejects(self.take_rejects())
            if settled:
                self.store.complete_run(self.job, self.run_id)
            self.store.finish_run(self.run_id, status, report)
        finally:
            self.store.release_lock(self.job, self.owner["token"])


def _start_heartbeat(store: StateStore, job: str, token: str, ttl_s: float) -> Heartbeat:
    """Renew the lease on a connection of its own: the run's connection belongs to the event loop's thread."""
    beat_store = store.reopen()

    def renew() -> bool:
        return beat_store.renew_lock(job, token, ttl_s)

    heartbeat = Heartbeat(renew, ttl_s, on_close=beat_store.close)
    heartbeat.start()
    return heartbeat


def _reject_rows(component: str, records: list[Record], reasons: list[str]) -> list[Reject]:
    datas, keys, sources, positions, stamps = zip(*records, strict=True)
    texts = encode_many(datas)
    return list(map(reject_of, zip(keys, stamps, repeat(component), reasons, texts, sources, positions)))


def delivery_pairs(records: list[Record]) -> list[tuple[str, str]]:
    """The ``(key, fingerprint)`` of each record, as the state commits them (picked in C: a commit takes
    thousands)."""
    return list(map(_KEY_AND_FINGERPRINT, records))


def _stamped(items: list[Record | Failed]) -> list[Record | Failed]:
    """``items`` with their records' fingerprints. Records are rebuilt in C (a batch's columns zipped with its
    fingerprints, each row made a Record by ``tuple.__new__``: ``_replace`` costs a Python frame per record)."""
    if not items:
        return []
    plain = set(map(type, items)) == {Record}
    records = items if plain else [_record(item) for item in items]
    if all(map(_FINGERPRINT, records)):  # the source gave them theirs (Source.fingerprint_rows)
        return items
    datas, keys, sources, positions, _ = zip(*records, strict=True)
    columns = zip(datas, keys, sources, positions, fingerprints(list(datas)), strict=True)
    stamped: list[Any] = list(map(record_of, columns))
    if plain:
        return stamped
    pairs = zip(items, stamped, strict=True)
    return [Failed(new, item.reason) if isinstance(item, Failed) else new for item, new in pairs]


def lists_this_run_only(spec: SyncSpec, sink: str) -> bool:
    """Whether ``sink`` is fed by the error stream or by set-aside outputs (``enrich.skipped``): its file lists
    the current run's records only (the state keeps their history), so it writes every record it gets, also
    one it wrote in an earlier run, and its deliveries settle nothing."""
    for ref in spec.components[sink].inputs:
        producer, _, output = ref.partition(".")
        if ref == ERRORS_STREAM or output in spec.components[producer].cls_as(Component).deferred_outputs:
            return True
    return False


def _record(item: Record | Failed) -> Record:
    return item.record if isinstance(item, Failed) else item

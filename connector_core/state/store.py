"""The state-store interface, and the per-run facade components use."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from functools import partial
from typing import Any, NamedTuple

from connector_core.errors import CrmsyncError, RunFailed

#: The pseudo-sink under which a run reports (``commit_batch``) the records it met again unchanged and skipped:
#: when the run settles, a key it delivers in a new version keeps those versions completed too. Not a sink of
#: the job; a store may keep these apart from real deliveries (the SQL stores: a temporary table per connection).
UNCHANGED = "(unchanged)"


class Reject(NamedTuple):
    """A record a run rejected (or set aside), as the state keeps it until a later run delivers it."""

    key: str
    fingerprint: str
    #: The component that rejected it, and why.
    component: str
    reason: str
    #: The record's data as it came, as JSON text (``crmsync errors list`` shows it): encoded when the record is
    #: rejected, while it is still in the CPU's cache, so that the record need not be held until it is written.
    data: str
    #: Where it came from: the source component and the row or line.
    source: str | None = None
    position: int | None = None


#: Makes a Reject of a tuple of its fields, in C (a messy file has a reject per few records).
reject_of = partial(tuple.__new__, Reject)


class JobLocked(RunFailed):
    """Another run of the same job holds the lease."""


class StateError(CrmsyncError):
    """The state cannot be used as it is (corrupt, foreign, newer schema, unreachable): fix it, then rerun."""

    exit_code = 2


class StateStore(abc.ABC):
    """Everything crmsync remembers between runs, per job. Each method is one transaction."""

    # -- runs and the lease (see connector_core.state.lease) ----------------------------------------------
    @abc.abstractmethod
    def acquire_lock(self, job: str, owner: dict[str, Any], ttl_s: float) -> str | None:
        """Take the job's lease for ``ttl_s`` seconds (``owner``: ``token``, ``pid``, ``host``). Returns a note
        when a dead run's lease was taken over.

        :raises JobLocked: a live run holds it.
        """

    @abc.abstractmethod
    def renew_lock(self, job: str, token: str, ttl_s: float) -> bool:
        """Extend the lease held by ``token``; False when it is no longer ours."""

    @abc.abstractmethod
    def release_lock(self, job: str, token: str | None = None) -> None:
        """Release the job's lease (only if ``token`` holds it, when given)."""

    @abc.abstractmethod
    def lock(self, job: str) -> dict[str, Any] | None:
        """The lease (``token``, ``pid``, ``host``, ``acquired_at``, ``expires_at`` as epoch seconds), or None."""

    @abc.abstractmethod
    def reopen(self) -> StateStore:
        """Another connection to the same state (the lease heartbeat runs on its own thread and connection)."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the state lives, safe to print (a database URL without its password)."""

    @abc.abstractmethod
    def start_run(self, job: str) -> int:
        """Record a new run and return its id. Called under the job's lease: the deliveries earlier runs
        committed without completing (they died or failed) now count as theirs for :meth:`delivered`."""

    @abc.abstractmethod
    def finish_run(self, run_id: int, status: str, report: dict[str, Any]) -> None:
        """Store the run's final status and report."""

    @abc.abstractmethod
    def runs(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first."""

    # -- delivery ledger ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def completed(self, job: str, keys: list[str]) -> dict[str, str]:
        """``{key: fingerprints}`` of the given records that a finished run delivered (see :meth:`commit_batch`
        for the space-separated fingerprints of a key delivered in several versions)."""

    @abc.abstractmethod
    def delivered(self, job: str, sink: str, keys: list[str]) -> dict[str, str]:
        """``{key: fingerprints}`` of the given records ``sink`` committed in an earlier run (finished or not;
        a run's own commits count from the next run's :meth:`start_run` on, or once it completed)."""

    @abc.abstractmethod
    def ledger_start(self, job: str) -> tuple[bool, set[str]]:
        """What a run needs to look up, asked once when it starts: whether any record of the job is completed,
        and the sinks with deliveries of earlier runs that are not completed (runs that died or failed, keys also
        rejected). A run skips the look-ups that cannot find anything."""

    @abc.abstractmethod
    def commit_batch(
        self, job: str, run_id: int, sink: str, records: Iterable[tuple[str, str]], checkpoint: Any = None
    ) -> None:
        """Record ``(key, fingerprint)`` pairs as delivered by ``sink`` in this run, with the sink's checkpoint,
        in one transaction. A key delivered again in the same run with another fingerprint (two versions of
        one record in one source) keeps both, space-separated; a later run's delivery replaces them."""

    @abc.abstractmethod
    def add_fingerprints(self, job: str, pairs: list[tuple[str, str]]) -> None:
        """Add a fingerprint to the versions of completed keys: ``(key, fingerprint)``, the fingerprint of a
        version already completed under an older one (the same data hashed as this crmsync does), so that a
        later run recognises it at once."""

    @abc.abstractmethod
    def sink_checkpoint(self, job: str, sink: str) -> Any:
        """The last checkpoint ``sink`` committed, or None."""

    @abc.abstractmethod
    def complete_run(self, job: str, run_id: int) -> None:
        """Mark every record this run delivered, and did not also reject, as completed."""

    # -- rejects -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def record_rejects(
        self, job: str, run_id: int, rejects: list[Reject], max_attempts: int, transient: bool = False
    ) -> None:
        """Store rejected records; a record rejected ``max_attempts`` times with unchanged data is discarded
        (completed, not retried). ``transient`` records were set aside, not rejected: pending, their attempts
        unchanged."""

    @abc.abstractmethod
    def rejects(self, job: str, status: str | None = None) -> list[dict[str, Any]]:
        """Stored rejects (``pending`` or ``discarded``): those a run stored earlier first, each run's in input
        order (by source and position)."""

    @abc.abstractmethod
    def set_rejects(self, job: str, status: str, keys: list[str] | None = None) -> int:
        """``pending`` (retry next run, attempts reset) or ``discarded`` (never retried) for ``keys`` or all."""

    # -- API write intents and the objects a job created -------------------------------------------------
    @abc.abstractmethod
    def open_intent(self, job: str, component: str, keys: list[str], started_at: float) -> int:
        """Record that a write for ``keys`` is about to be sent; returns the intent's id."""

    @abc.abstractmethod
    def close_intent(self, intent_id: int, job: str, component: str, objects: dict[str, dict[str, Any]]) -> None:
        """The write's response arrived: remember the outcome per key and drop the intent, atomically."""

    @abc.abstractmethod
    def open_intents(self, job: str, component: str) -> dict[str, float]:
        """``{key: started_at}`` of writes whose response was never recorded."""

    @abc.abstractmethod
    def objects(self, job: str, component: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Recorded outcomes (e.g. ``{"output": "created", "id": ..., "object": {...}}``) by key."""

    def put_objects(self, job: str, component: str, objects: dict[str, dict[str, Any]]) -> None:
        """Remember values by key for ``component`` (read back with :meth:`objects`; forgotten with the
        delivered state). This default goes through an intent; stores may write directly."""
        self.close_intent(self.open_intent(job, component, [], 0.0), job, component, objects)

    @abc.abstractmethod
    def all_objects(self, job: str, component: str) -> dict[str, dict[str, Any]]:
        """Every value :meth:`put_objects` remembered for ``component``, by key (e.g. pending deliveries)."""

    # -- cache -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def cache_get(self, namespace: str, identities: list[str], max_age_s: float) -> dict[str, Any]:
        """Cached values younger than ``max_age_s`` by identity."""

    @abc.abstractmethod
    def cache_put(self, namespace: str, values: dict[str, Any]) -> None:
        """Store values by identity."""

    # -- administration ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def summary(self, job: str) -> dict[str, Any]:
        """Counts for ``crmsync state show``."""

    @abc.abstractmethod
    def reset(self, job: str, parts: set[str]) -> None:
        """Forget ``delivered``, ``errors`` and/or ``cache`` (or everything but run history)."""

    @abc.abstractmethod
    def export(self, job: str) -> dict[str, Any]:
        """The job's whole state as JSON-able data."""

    @abc.abstractmethod
    def import_(self, job: str, data: dict[str, Any]) -> None:
        """Replace the job's state with an export."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the store."""


class JobState:
    """The state of one run of one job, as components see it (``context.state``)."""

    def __init__(self, store: StateStore, job: str, run_id: int) -> None:
        self.store = store
        self.job = job
        self.run_id = run_id

    def open_intent(self, component: str, keys: list[str], started_at: float) -> int:
        """See :meth:`StateStore.open_intent`."""
        return self.store.open_intent(self.job, component, keys, started_at)

    def close_intent(self, intent_id: int, component: str, objects: dict[str, dict[str, Any]]) -> None:
        """See :meth:`StateStore.close_intent`."""
        self.store.close_intent(intent_id, self.job, component, objects)

    def open_intents(self, component: str) -> dict[str, float]:
        """See :meth:`StateStore.open_intents`."""
        return self.store.open_intents(self.job, component)

    def objects(self, component: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """See :meth:`StateStore.objects`."""
        return self.store.objects(self.job, component, keys)

    def put_objects(self, component: str, objects: dict[str, dict[str, Any]]) -> None:
        """See :meth:`StateStore.put_objects`."""
        self.store.put_objects(self.job, component, objects)

    def all_objects(self, component: str) -> dict[str, dict[str, Any]]:
        """See :meth:`StateStore.all_objects`."""
        return self.store.all_objects(self.job, component)

    def sink_checkpoint(self, sink: str) -> Any:
        """See :meth:`StateStore.sink_checkpoint`."""
        return self.store.sink_checkpoint(self.job, sink)

    def save_checkpoint(self, sink: str, checkpoint: Any) -> None:
        """Commit a sink's checkpoint on its own (e.g. after merging a part file)."""
        self.store.commit_batch(self.job, self.run_id, sink, (), checkpoint)

    def cache_get(self, namespace: str, identities: list[str], max_age_s: float) -> dict[str, Any]:
        """See :meth:`StateStore.cache_get`."""
        return self.store.cache_get(namespace, identities, max_age_s)

    def cache_put(self, namespace: str, values: dict[str, Any]) -> None:
        """See :meth:`StateStore.cache_put`."""
        self.store.cache_put(namespace, values)

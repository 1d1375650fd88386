"""The record: one row of data travelling through a sync, with its key and provenance."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple


class Record(NamedTuple):
    """One record flowing through the graph; immutable.

    ``data`` is the payload components read and reshape. ``key`` is stable across runs (taken from the
    source's ``key`` option, else a hash of the content) so state, errors and outputs can be traced back.
    ``source`` and ``position`` are the provenance: the source component's name and the line or row number
    the record came from. ``fingerprint`` tells a changed record from one already delivered.

    A named tuple rather than a frozen attrs class: every record is built at least twice (source, mapper),
    and a tuple is built in half the time, which is measurable at a million records.
    """

    data: dict[str, Any]
    key: str
    source: str
    position: int
    #: A hash of the record's content as the source read it; set when the job keeps state.
    fingerprint: str = ""

    def with_data(self, data: dict[str, Any]) -> Record:
        """Return the same record (key, provenance and fingerprint) carrying new data."""
        return Record(data, self.key, self.source, self.position, self.fingerprint)

    @property
    def provenance(self) -> str:
        """``source:position``, the place a record can be found again."""
        return f"{self.source}:{self.position}"


#: Built once: ``json.dumps`` with non-default arguments builds a new encoder on every call.
_canonical_json = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":")).encode


def content_key(data: dict[str, Any]) -> str:
    """A stable key for a record without a natural key: a short hash of its canonical JSON."""
    return hashlib.blake2b(_canonical_json(data).encode(), digest_size=12).hexdigest()

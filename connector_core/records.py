"""The record: one row of data travelling through a sync, with its key and provenance."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from json.encoder import encode_basestring_ascii
from operator import itemgetter, methodcaller
from typing import Any, NamedTuple


class Record(NamedTuple):
    """One record flowing through the graph; immutable.

    ``data`` is the payload components read and reshape. ``key`` is stable across runs (taken from the
    source's ``key`` option, else a hash of the content) so state, errors and outputs can be traced back; empty
    when nothing in the job reads keys (see ``Component.reads_keys``), so a source without ``key`` skips the hash.
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


#: Makes a Record of a tuple of its fields, in C: ``map(record_of, rows)`` builds many without a Python frame
#: each (``Record(...)`` and ``_replace`` cost one per record).
record_of = partial(tuple.__new__, Record)

#: Built once: ``json.dumps`` with non-default arguments builds a new encoder on every call.
_canonical_json = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":")).encode

#: Per field layout (the keys of a record's data, in order): its values in sorted key order, and the canonical
#: JSON of the record with ``%s`` for each value. Sources hand over thousands of records of one layout.
_Layout = tuple[Callable[[dict[str, Any]], Any], str]
_LAYOUTS: dict[tuple[str, ...], _Layout] = {}
#: Beyond this many layouts (data with ever-changing keys) new ones are not remembered: memory stays flat.
_MAX_LAYOUTS = 256


def _layout(fields: tuple[str, ...]) -> _Layout | None:
    if len(fields) < 2 or not all(type(name) is str for name in fields):
        return None  # itemgetter of one key returns the value itself, not a tuple; odd keys take the slow path
    names = sorted(fields)
    template = "{" + ",".join(encode_basestring_ascii(name).replace("%", "%%") + ":%s" for name in names) + "}"
    layout = (itemgetter(*names), template)
    if len(_LAYOUTS) < _MAX_LAYOUTS:
        _LAYOUTS[fields] = layout
    return layout


def canonical_json(data: dict[str, Any]) -> str:
    """``data`` as JSON with sorted keys and no spaces (ASCII-escaped), the text a content hash is taken of.

    Records whose values are all strings (every CSV row) take a fast path that fills a per-layout template
    with each escaped value: the same text as the JSON encoder's, at about half the cost.
    """
    fields = tuple(data)
    layout = _LAYOUTS.get(fields) or _layout(fields)
    if layout is not None:
        values, template = layout
        try:
            return template % tuple(map(encode_basestring_ascii, values(data)))
        except TypeError:  # a value that is not a string (a number, None, a list): the encoder knows them all
            pass
    return _canonical_json(data)


def content_key(data: dict[str, Any]) -> str:
    """A stable key for a record without a natural key: a short hash of its canonical JSON (stable across
    processes and crmsync versions: keys in state files depend on it)."""
    return hashlib.blake2b(canonical_json(data).encode(), digest_size=12).hexdigest()


_digest12 = partial(hashlib.blake2b, digest_size=12)
_hexdigest = methodcaller("hexdigest")
_escaped_values = partial(map, encode_basestring_ascii)


def content_keys(datas: list[dict[str, Any]]) -> list[str]:
    """:func:`content_key` of each of ``datas``, the same values, in C loops when the records share one layout
    of text values (the rows of a CSV file without a key column, or those with a blank key): no Python frame
    per record."""
    if not datas:
        return []
    fields = tuple(datas[0])
    layout = _LAYOUTS.get(fields) or _layout(fields)
    # As many fields as the first record: the same ones, or the KeyError below.
    if layout is None or set(map(len, datas)) != {len(fields)}:
        return list(map(content_key, datas))
    values, template = layout
    try:
        texts = list(map(template.__mod__, map(tuple, map(_escaped_values, map(values, datas)))))
    except (TypeError, KeyError):  # a value that is not text, another field
        return list(map(content_key, datas))
    return list(map(_hexdigest, map(_digest12, map(str.encode, texts))))

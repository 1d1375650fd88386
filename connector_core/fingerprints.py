"""Record fingerprints: the hash that tells a changed record from one a finished run already delivered.

A fingerprint is taken of every record of every run that keeps state, so it must be cheap, and stable across
processes and versions (it is stored): the 64-bit XXH3 hash (16 hex digits) of the record's field names and
values in field-name order, so reordering a file's columns changes nothing. Text values (every CSV row) are
joined with control characters no CRM field holds (a value holding one takes the general path); any other value
hashes the record's canonical JSON instead (a ``j`` prefix keeps the two kinds apart). XXH3 is a fast
non-cryptographic hash: nothing here needs to resist an attacker, only to tell a changed record from its
stored version, and it is a tenth of what BLAKE2b cost per record.

A record of a source without ``key`` is keyed by the hash of its content, so its key tells a changed record from
a stored one as well: the source gives it its key as its fingerprint (see ``Source``), and no second hash is
taken of it.

Older fingerprints are still recognised by :func:`matches`, so that an upgrade delivers nothing twice: crmsync
before XXH3 hashed the same bytes with 8 bytes of BLAKE2b (also 16 hex digits), before state schema 3
fingerprints were :func:`~connector_core.records.content_key` (24 hex digits), and records keyed by their content
had an XXH3 fingerprint before it became their key. A record met again unchanged is stored with its new
fingerprint, so the older ones are each recomputed once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Collection
from operator import itemgetter
from typing import Any

from xxhash import xxh3_64_hexdigest

from connector_core.records import canonical_json, content_key

_FIELD, _VALUE = "\x1e", "\x1f"
#: Per field layout (the keys of a record's data, in order): its values in name order, the hashed prefix (UTF-8)
#: and how many value separators a record's text holds.
_Layout = tuple[Callable[[dict[str, Any]], Any], bytes, int]
_LAYOUTS: dict[tuple[str, ...], _Layout | None] = {}
#: Beyond this many layouts (data with ever-changing keys) new ones are not remembered: memory stays flat.
_MAX_LAYOUTS = 256
#: The length of a schema-2 fingerprint (``content_key``), recognised by :func:`matches`.
_LEGACY_LENGTH = 24
#: The length of a fingerprint :func:`fingerprint` takes.
_XXH3_LENGTH = 16
#: Text is hashed as UTF-8, a lone surrogate (which JSON can hold) as it stands: the same bytes for any other text.
_UTF8, _ANY_TEXT = "utf-8", "surrogatepass"
#: The first and last character of a layout's prefix.
_EDGE = "\x1d"
#: A value's separator as UTF-8, counted in a batch's encoded texts (see :func:`_same_layout`).
_VALUE_BYTES = _VALUE.encode()
#: Records fingerprinted at once: a whole batch's texts in one piece (~0.5 MB) would be a fresh allocation for
#: malloc to map and page in again for every batch (a fault per 4 KiB: ~60,000 a 300k-row run).
_AT_ONCE = 100


def _layout(fields: tuple[str, ...]) -> _Layout | None:
    names = sorted(fields) if all(type(name) is str for name in fields) else []
    if len(names) < 2 or any(_FIELD in name or _VALUE in name for name in names):
        layout = None  # one field (itemgetter would not return a tuple) or odd names: the general path
    else:
        prefix = _EDGE + _FIELD.join(names) + _EDGE
        layout = (itemgetter(*names), prefix.encode(_UTF8, _ANY_TEXT), len(names) - 1)
    if len(_LAYOUTS) < _MAX_LAYOUTS:
        _LAYOUTS[fields] = layout
    return layout


def fingerprint(data: dict[str, Any]) -> str:
    """The fingerprint of a record's data (see the module's docstring)."""
    return xxh3_64_hexdigest(_hashed(data))


def _hashed(data: dict[str, Any]) -> bytes:
    """The bytes a record's fingerprint is the hash of."""
    fields = tuple(data)
    layout = _LAYOUTS[fields] if fields in _LAYOUTS else _layout(fields)
    if layout is not None:
        values, prefix, separators = layout
        try:
            text = _VALUE.join(values(data))
        except TypeError:  # a value that is not text
            pass
        else:
            if text.count(_VALUE) == separators:
                return prefix + text.encode(_UTF8, _ANY_TEXT)
    return ("j" + canonical_json(data)).encode()


def fingerprints(datas: list[dict[str, Any]]) -> list[str]:
    """:func:`fingerprint` of each of ``datas``, the same values, in C loops when the records share one layout
    of text values (every CSV row of a batch): no Python frame per record."""
    if not datas:
        return []
    fields = tuple(datas[0])
    layout = _LAYOUTS[fields] if fields in _LAYOUTS else _layout(fields)
    # As many fields as the first record, each holding every field of the layout: the same fields (a missing one
    # is the KeyError below), found without building a tuple of each record's names.
    if layout is None or set(map(len, datas)) != {len(fields)}:
        return list(map(fingerprint, datas))
    result: list[str] = []
    for start in range(0, len(datas), _AT_ONCE):
        part = datas[start : start + _AT_ONCE]
        result += _same_layout(part, layout) or list(map(fingerprint, part))
    return result


def _same_layout(datas: list[dict[str, Any]], layout: _Layout) -> list[str] | None:
    """The fingerprints of records of one layout of text values, or None when one breaks that (a value that is
    not text or holds a separator, other fields): the general path then takes these records."""
    values, prefix, separators = layout
    try:
        texts = list(map(_VALUE.join, map(values, datas)))
    except (TypeError, KeyError):
        return None
    # Each text is encoded alone: one record with a character beyond Latin-1 (a name in Polish or Japanese) in a
    # string of the batch's texts made the whole string UCS-2, every record's text then taking UTF-8's slow path.
    # The layout's prefix, the same for every record, is kept encoded and added to the bytes. Every text holds
    # its layout's separators: the count over all of them says whether a value holds one more.
    try:
        encoded = list(map(str.encode, texts))
    except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800"): the general path encodes it as it stands
        return None
    if b"".join(encoded).count(_VALUE_BYTES) != separators * len(datas):
        return None
    return list(map(xxh3_64_hexdigest, map(prefix.__add__, encoded)))


#: Stored versions at least this long (a key with dozens of versions) are looked up in a set, kept for the
#: next records of the same key: split for each record, a key met thousands of times cost the square of that.
_MANY_VERSIONS_TEXT = 512


@functools.lru_cache(maxsize=64)
def _version_set(stored: str) -> tuple[frozenset[str], bool]:
    """The versions of a long ``stored`` text, and whether one is a schema-2 fingerprint."""
    versions = stored.split(" ")
    return frozenset(versions), _has_legacy(versions)


def _has_legacy(versions: list[str]) -> bool:
    """Whether one of ``versions`` is a schema-2 fingerprint (see :func:`matches`)."""
    return any(len(version) == _LEGACY_LENGTH for version in versions)


def matches(stored: str | None, record_fingerprint: str, data: dict[str, Any]) -> bool:
    """Whether a record (its fingerprint and data) is among ``stored`` fingerprints (space-separated versions).
    Versions that are not the record's fingerprint may be older ones of the same data (see the module's
    docstring): the record's older fingerprints are computed then, and only then (its data changed, or a
    version was stored by an older crmsync)."""
    if stored is None:
        return False
    versions: Collection[str]
    if len(stored) < _MANY_VERSIONS_TEXT:
        versions = stored.split(" ")
        if record_fingerprint in versions:
            return True
        legacy = _has_legacy(versions)
    else:
        versions, legacy = _version_set(stored)
        if record_fingerprint in versions:
            return True
    if legacy and content_key(data) in versions:
        return True
    hashed = _hashed(data)
    # A record keyed by its content hash has that hash as its fingerprint (Source), one stored by crmsync before
    # that had its XXH3 fingerprint.
    if len(record_fingerprint) != _XXH3_LENGTH and xxh3_64_hexdigest(hashed) in versions:
        return True
    return hashlib.blake2b(hashed, digest_size=8).hexdigest() in versions

"""Values written together are stored together: one compressed pack per write, one small entry per key.

The enrichment cache and the objects components remember (contacts created, deliveries owed) are written a call's
worth at a time: the 10 people of a ``bulk_match`` answer, the 100 contacts of a ``bulk_create``. Their JSON
repeats the same field names and much of the same content from one value to the next, so compressing them
*together* (zlib of one compact JSON list) keeps every field of every value at a fraction of its size: an Apollo
person of ~2.3 KB takes ~0.35 KB in a pack of ten, a contact ~0.07 KB in a pack of a hundred. A key's entry names
its pack and its slot in it; a pack counts the entries pointing at it and is deleted with its last one.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

#: The first byte of a pack says how it is encoded, so another encoding can be added without a migration.
_ZLIB_JSON = b"\x01"
#: Fast enough to stay out of a run's profile (level 9 saves under 2% more); decompression is cheap at any level.
_LEVEL = 6


def pack(values: list[Any]) -> bytes:
    """``values`` as one compressed blob (compact JSON; values JSON cannot encode are written as text)."""
    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False, default=str)
    return _ZLIB_JSON + zlib.compress(text.encode(), _LEVEL)


def unpack(data: bytes | memoryview) -> list[Any]:
    """The values of a blob written by :func:`pack`."""
    raw = bytes(data)
    if raw[:1] != _ZLIB_JSON:
        raise ValueError(f"unknown pack encoding {raw[:1]!r}")
    values: list[Any] = json.loads(zlib.decompress(raw[1:]))
    return values


class PackCache:
    """Packs already decompressed during one read, so ten entries of one pack decompress it once."""

    def __init__(self) -> None:
        self._packs: dict[int, list[Any]] = {}

    def value(self, pack_id: int, data: bytes | memoryview, slot: int) -> Any:
        values = self._packs.get(pack_id)
        if values is None:
            values = self._packs[pack_id] = unpack(data)
        return values[slot]


def released(pack_ids: Iterable[int]) -> list[tuple[int, int]]:
    """``(entries released, pack id)`` for the entries about to point elsewhere (or be deleted)."""
    return [(count, pack_id) for pack_id, count in Counter(pack_ids).items()]

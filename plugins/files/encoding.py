"""JSON encoding for sinks: one encoder for the whole process, built for per-record speed."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any


def _make_encoder() -> Callable[[Any], str]:
    encoder = json.JSONEncoder(ensure_ascii=False, default=str)
    # JSONEncoder.encode() rebuilds its C encoder on every call, which is half the cost of encoding a small
    # record; the JSONL sink encodes a million of them in a benchmark run. Building it once with the very
    # arguments encode() would pass gives the same output. The C accelerator is an implementation detail of
    # CPython, hence the fallback.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        # No circular-reference markers: records are trees (parsed from files or built by mappers).
        fast = make(None, encoder.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    except TypeError:  # a future CPython with another signature
        return encoder.encode
    return lambda value: "".join(fast(value, 0))


#: ``json.dumps(value, ensure_ascii=False, default=str)``, faster: non-ASCII kept, unknown types as strings.
encode_json: Callable[[Any], str] = _make_encoder()

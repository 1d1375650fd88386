"""JSON encoding for sinks and the state store: one encoder for the whole process, built for per-record speed.

What it writes is always JSON: a float JSON cannot spell (NaN, an infinity) is written as the text Python
would have written bare (``"NaN"``, ``"Infinity"``, ``"-Infinity"``), as values of other types JSON lacks
(dates) are written as text.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False)


def _make_chunker() -> Callable[[Any, int], Iterable[str]] | None:
    """CPython's C encoder, built once with the very arguments ``_ENCODER.encode()`` would pass; None without it.

    ``JSONEncoder.encode()`` rebuilds its C encoder on every call, which is half the cost of encoding a small
    record; the JSONL sink encodes a million of them in a benchmark run. The C accelerator is an implementation
    detail of CPython, hence the fallback.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        # No circular-reference markers: records are trees (parsed from files or built by mappers).
        chunks: Callable[[Any, int], Iterable[str]] = make(
            None, _ENCODER.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, False
        )
    except TypeError:  # a future CPython with another signature
        return None
    return chunks


_chunks = _make_chunker()


_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _as_json(value: Any) -> Any:
    """``value`` with every float JSON cannot spell replaced by its name as text (keys too)."""
    if isinstance(value, float):  # numpy's float64 too
        return value if math.isfinite(value) else _NON_FINITE.get(value, "NaN")
    if isinstance(value, dict):
        return {_as_json(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    return value


def encode_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, default=str)``, faster, and always JSON: non-ASCII kept,
    unknown types and non-finite floats as text."""
    try:
        return _ENCODER.encode(value) if _chunks is None else "".join(_chunks(value, 0))
    except ValueError:  # a NaN or an infinity somewhere in it: rare, so only then is the value walked
        return encode_json(_as_json(value))


def encode_many(values: Sequence[Any]) -> list[str]:
    """Each of ``values`` as :func:`encode_json` writes it. With the C encoder the loop is ``map`` over ``map``:
    no Python frame runs per value."""
    if _chunks is not None:
        try:
            return list(map("".join, map(_chunks, values, repeat(0, len(values)))))
        except ValueError:  # a non-finite float: encode_json spells it as text
            pass
    return list(map(encode_json, values))


_LAST_LINE_BREAK = ("",)


def json_lines(values: list[Any]) -> str:
    """``values`` as JSON lines, each as :func:`encode_json` writes it and each ending with a line break."""
    # The empty last line gives the final line break without copying the text once more (``+ "\n"``).
    return "\n".join(chain(encode_many(values), _LAST_LINE_BREAK)) if values else ""

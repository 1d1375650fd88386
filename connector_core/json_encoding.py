"""JSON encoding for sinks and the state store: one encoder for the whole process, built for per-record speed."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterable
from itertools import chain, repeat
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


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
            None, _ENCODER.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
        )
    except TypeError:  # a future CPython with another signature
        return None
    return chunks


_chunks = _make_chunker()


def _encode(value: Any) -> str:
    return "".join(_chunks(value, 0))  # type: ignore[misc]  # only used when the C encoder exists


#: ``json.dumps(value, ensure_ascii=False, default=str)``, faster: non-ASCII kept, unknown types as strings.
encode_json: Callable[[Any], str] = _ENCODER.encode if _chunks is None else _encode


_LAST_LINE_BREAK = ("",)


def json_lines(values: list[Any]) -> str:
    """``values`` as JSON lines, each as :data:`encode_json` writes it and each ending with a line break.

    With the C encoder the loop is ``map`` over ``map``: no Python frame runs per value.
    """
    if not values:
        return ""
    # The empty last line gives the final line break without copying the text once more (``+ "\n"``).
    if _chunks is None:
        return "\n".join(chain(map(encode_json, values), _LAST_LINE_BREAK))
    return "\n".join(chain(map("".join, map(_chunks, values, repeat(0, len(values)))), _LAST_LINE_BREAK))

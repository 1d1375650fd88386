"""Read dotted paths (``organization.primary_domain``) out of nested JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def get_path(data: Any, path: str) -> Any:
    """The value at ``path`` in nested dicts, or None when any step is missing."""
    return _walk(data, path.split("."))


def selector(paths: Mapping[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function reading ``{name: get_path(data, path)}`` for every entry of ``paths`` (in their order) out of a
    dict, each path split once rather than per call: it runs for every matched person."""
    steps = []
    for name, path in paths.items():
        first, *rest = path.split(".")
        steps.append((name, first, tuple(rest)))

    def select(data: dict[str, Any]) -> dict[str, Any]:
        get = data.get
        return {name: _walk(get(first), rest) if rest else get(first) for name, first, rest in steps}

    return select


def _walk(data: Any, parts: Iterable[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data

"""Read dotted paths (``organization.primary_domain``) out of nested JSON."""

from __future__ import annotations

from typing import Any


def get_path(data: Any, path: str) -> Any:
    """The value at ``path`` in nested dicts, or None when any step is missing."""
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data

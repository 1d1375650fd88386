"""The key's real rate limits, read once from Apollo's usage statistics (``read_usage_stats: true``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from crmsync_plugins.apollo.budget import RateLimit

#: Apollo direct only: the aisa.one gateway has no such endpoint. It needs a master key (403 otherwise).
USAGE_PATH = "/api/v1/usage_stats/api_usage_stats"
_WINDOWS = {"minute": "per_minute", "hour": "per_hour", "day": "per_day"}


def limits_from_usage(body: Mapping[str, Any]) -> dict[str, RateLimit]:
    """Operation (``people/bulk_match``) → its limits, from a body keyed like ``["api/v1/people", "bulk_match"]``.

    A window without a number (absent, null or empty) has no limit, as with the response headers.
    """
    limits: dict[str, RateLimit] = {}
    for key, windows in body.items():
        try:
            resource, action = json.loads(key)
        except (TypeError, ValueError):
            continue
        if not isinstance(windows, Mapping) or not isinstance(resource, str):
            continue
        operation = f"{resource.removeprefix('api/v1/').strip('/')}/{action}"
        values = {field: _limit(windows.get(window)) for window, field in _WINDOWS.items()}
        limits[operation] = RateLimit(**values)
    return limits


def _limit(window: Any) -> int | None:
    value = window.get("limit") if isinstance(window, Mapping) else None
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None

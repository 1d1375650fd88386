"""Apollo-style fixed-window rate limits (minute, hour, day) with Apollo's response headers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import RateLimits


@dataclass(frozen=True)
class _Window:
    length: float
    limit_header: str
    usage_header: str
    left_header: str
    unit: str


_WINDOWS = (
    _Window(60.0, "x-rate-limit-minute", "x-minute-usage", "x-minute-requests-left", "minute"),
    _Window(3600.0, "x-rate-limit-hourly", "x-hourly-usage", "x-hourly-requests-left", "hour"),
    _Window(86400.0, "x-rate-limit-24-hour", "x-24-hour-usage", "x-24-hour-requests-left", "day"),
)


def _limits(limits: RateLimits) -> tuple[int | None, int | None, int | None]:
    return limits.per_minute, limits.per_hour, limits.per_day


@dataclass
class RateDecision:
    """Outcome of one call: allowed or not, the headers to send, and when to come back if refused."""

    allowed: bool
    headers: dict[str, str]
    retry_after: int | None = None
    message: str | None = None


@dataclass
class _Counter:
    window_index: int = -1
    used: int = 0


@dataclass
class RateLimiter:
    """Counts calls per endpoint in fixed windows aligned on the injected clock."""

    limits_for: Callable[[str], RateLimits]
    clock: Callable[[], float]
    _counters: dict[tuple[str, str], _Counter] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget all usage."""
        self._counters.clear()

    def _counter(self, operation: str, window: _Window, now: float) -> _Counter:
        counter = self._counters.setdefault((operation, window.unit), _Counter())
        index = math.floor(now / window.length)
        if counter.window_index != index:
            counter.window_index, counter.used = index, 0
        return counter

    def peek(self, operation: str) -> dict[str, str]:
        """Headers describing current usage of ``operation`` without counting a call."""
        return self._headers(operation, _limits(self.limits_for(operation)), self.clock())

    def usage(self, operation: str) -> dict[str, dict[str, int | None]]:
        """Apollo's usage statistics of ``operation``: ``{day|hour|minute: {limit, consumed, left_over}}``."""
        now, limits = self.clock(), _limits(self.limits_for(operation))
        usage: dict[str, dict[str, int | None]] = {}
        for window, limit in zip(_WINDOWS, limits, strict=True):
            used = self._counter(operation, window, now).used
            left = None if limit is None else max(0, limit - used)
            usage[window.unit] = {"limit": limit, "consumed": used, "left_over": left}
        return usage

    def hit(self, operation: str) -> RateDecision:
        """Count one call to ``operation`` (``"people/bulk_match"``) unless one of its windows is full.

        A refused call is not counted, so a client that waits for the reset gets a fresh window. Both
        deployments share the counters: the gateway spends the same Apollo account's quota.
        """
        now = self.clock()
        limits = _limits(self.limits_for(operation))
        exceeded: list[tuple[float, _Window, int]] = []
        for window, limit in zip(_WINDOWS, limits, strict=True):
            if limit is not None and self._counter(operation, window, now).used >= limit:
                window_end = (math.floor(now / window.length) + 1) * window.length
                exceeded.append((window_end - now, window, limit))
        if exceeded:
            # The caller must wait for the *last* full window to roll over, so report that one.
            wait, window, limit = max(exceeded, key=lambda item: item[0])
            message = (
                f"The maximum number of api calls allowed for api/v1/{operation} is {limit} times per {window.unit}. "
                "Please upgrade your plan from https://app.apollo.io/#/settings/plans/upgrade."
            )
            return RateDecision(False, self._headers(operation, limits, now), max(1, math.ceil(wait)), message)
        for window in _WINDOWS:
            self._counter(operation, window, now).used += 1
        return RateDecision(True, self._headers(operation, limits, now))

    def _headers(self, operation: str, limits: tuple[int | None, ...], now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for window, limit in zip(_WINDOWS, limits, strict=True):
            used = self._counter(operation, window, now).used
            # Apollo sends an empty value for a window without a limit.
            headers[window.limit_header] = "" if limit is None else str(limit)
            headers[window.usage_header] = str(used)
            headers[window.left_header] = "" if limit is None else str(max(0, limit - used))
        return headers

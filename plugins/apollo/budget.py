"""A proactive rate budget: never send more than Apollo allows, so a healthy run sees no 429."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

import attrs

#: Window lengths in seconds, and the response headers that describe each (both header families for a day).
WINDOWS: dict[str, float] = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
_HEADERS: dict[str, tuple[tuple[str, str], ...]] = {
    "minute": (("x-rate-limit-minute", "x-minute-requests-left"),),
    "hour": (("x-rate-limit-hourly", "x-hourly-requests-left"),),
    "day": (
        ("x-rate-limit-24-hour", "x-24-hour-requests-left"),
        ("x-rate-limit-daily", "x-daily-requests-left"),
    ),
}
_HEADER_NAMES = frozenset(name for families in _HEADERS.values() for pair in families for name in pair)


@attrs.frozen
class RateLimit:
    """Requests allowed per window for one endpoint; ``None`` means unlimited."""

    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None

    def limits(self) -> dict[str, int | None]:
        """Window name → limit."""
        return {"minute": self.per_minute, "hour": self.per_hour, "day": self.per_day}


class _Window:
    """Send times within one sliding window. Sliding is stricter than Apollo's fixed windows, so staying under
    it keeps us under theirs whatever their window alignment is."""

    def __init__(self, length: float, limit: int | None) -> None:
        self.length = length
        self.limit = limit
        self.sent: deque[float] = deque()
        self.blocked_until = 0.0

    def wait_time(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.length:
            self.sent.popleft()
        wait = max(0.0, self.blocked_until - now)
        if self.limit is not None and len(self.sent) >= self.limit:
            wait = max(wait, self.sent[len(self.sent) - self.limit] + self.length - now)
        return wait


class RateBudget:
    """Spaces one endpoint's requests to fit its per-minute, per-hour and per-day limits.

    It starts from the configured limits and adapts to the ``x-rate-limit-*`` headers Apollo sends: the limits
    it announces replace ours, and a window it reports as used up pauses sending until it has room again.
    """

    def __init__(
        self,
        limit: RateLimit,
        margin_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        # The margin absorbs network jitter between our send time and Apollo's arrival time.
        self.windows = {name: _Window(length + margin_s, limit.limits()[name]) for name, length in WINDOWS.items()}
        self.clock = clock
        self.sleep = sleep
        self.waited_s = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait until a request may be sent and record it; returns the seconds waited."""
        waited = 0.0
        async with self._lock:  # one waiter at a time keeps requests in arrival order
            while True:
                now = self.clock()
                wait = max(window.wait_time(now) for window in self.windows.values())
                if wait <= 0:
                    break
                await self.sleep(wait)
                waited += wait
            for window in self.windows.values():
                window.sent.append(now)
        self.waited_s += waited
        return waited

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adapt to the rate-limit headers of a response.

        An absent header changes nothing; an empty limit header is Apollo's way of saying the window has no
        limit on this plan, so our own cap for it is lifted.
        """
        headers = _rate_headers(headers)
        if not headers:
            return
        now = self.clock()
        for name, families in _HEADERS.items():
            window = self.windows[name]
            present = [(limit, left) for limit, left in families if limit in headers or left in headers]
            if not present:
                continue
            limits = [_int(headers.get(limit)) for limit, _ in present]
            numeric = [limit for limit in limits if limit is not None and limit > 0]
            if numeric:
                window.limit = numeric[0]
            elif any(limit in headers and not str(headers[limit]).strip() for limit, _ in present):
                window.limit = None
            if any(_int(headers.get(left)) == 0 for _, left in present):
                # Someone else shares this key, or the server counts differently: hold off until the oldest
                # request we know of leaves the window (a whole window if we know of none).
                oldest = window.sent[0] if window.sent else now
                window.blocked_until = max(window.blocked_until, oldest + window.length)

    def apply(self, limit: RateLimit) -> None:
        """Adopt limits read from Apollo's usage statistics (``None`` lifts a window's cap)."""
        for name, value in limit.limits().items():
            self.windows[name].limit = value

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (after a 429 with ``Retry-After``)."""
        minute = self.windows["minute"]
        minute.blocked_until = max(minute.blocked_until, self.clock() + seconds)


def _rate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers among ``headers`` by lower-case name, found in one pass: each lookup in httpx's
    ``Headers`` scans them all, and a response has about a dozen. Repeated headers are joined with ``", "``, as
    httpx's own lookups join them."""
    multi_items = getattr(headers, "multi_items", None)  # httpx.Headers: lower-case names, repeats kept
    found: dict[str, str] = {}
    for name, value in multi_items() if multi_items is not None else headers.items():
        name = name.lower()
        if name in _HEADER_NAMES:
            found[name] = f"{found[name]}, {value}" if name in found else value
    return found


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and value.strip() else None
    except ValueError:
        return None

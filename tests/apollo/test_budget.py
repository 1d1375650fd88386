"""The proactive rate budget keeps requests under every window and adapts to Apollo's headers."""

import asyncio

from crmsync_plugins.apollo.budget import RateBudget, RateLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _budget(limit: RateLimit, clock: FakeClock) -> RateBudget:
    return RateBudget(limit, margin_s=0.0, clock=clock, sleep=clock.sleep)


def test_never_more_than_the_limit_in_any_minute() -> None:
    clock = FakeClock()
    budget = _budget(RateLimit(per_minute=5), clock)
    times = []
    for _ in range(12):
        asyncio.run(budget.acquire())
        times.append(clock.now)
    assert times[:5] == [1000.0] * 5  # a full window is used at once
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 60.0
    assert clock.now == 1120.0  # 12 calls at 5/min: the third window opens at +120 s
    assert budget.waited_s == 120.0


def test_hourly_limit_also_applies() -> None:
    clock = FakeClock()
    budget = _budget(RateLimit(per_minute=100, per_hour=3), clock)
    for _ in range(4):
        asyncio.run(budget.acquire())
    assert clock.now == 4600.0


def test_headers_replace_the_configured_limit() -> None:
    clock = FakeClock()
    budget = _budget(RateLimit(per_minute=2), clock)
    budget.observe({"x-rate-limit-minute": "50", "x-minute-requests-left": "49"})
    for _ in range(10):
        asyncio.run(budget.acquire())
    assert clock.now == 1000.0


def test_exhausted_window_reported_by_headers_pauses_sending() -> None:
    clock = FakeClock()
    budget = _budget(RateLimit(per_minute=100), clock)
    asyncio.run(budget.acquire())
    clock.now += 10
    budget.observe({"x-rate-limit-minute": "100", "x-minute-requests-left": "0"})
    asyncio.run(budget.acquire())
    assert clock.now == 1060.0  # until the request we know of leaves the window


def test_daily_headers_of_both_families_and_empty_values_are_understood() -> None:
    clock = FakeClock()
    budget = _budget(RateLimit(), clock)
    budget.observe({"x-rate-limit-daily": "7", "x-rate-limit-24-hour": "", "x-rate-limit-hourly": ""})
    assert budget.windows["day"].limit == 7
    budget.observe({"x-rate-limit-24-hour": "9"})
    assert budget.windows["day"].limit == 9
    assert budget.windows["hour"].limit is None


def test_pause_after_retry_after() -> None:
    clock = FakeClock()
    budget = _budget(RateLimit(), clock)
    budget.pause(7)
    asyncio.run(budget.acquire())
    assert clock.now == 1007.0


def test_an_empty_limit_header_lifts_the_configured_cap() -> None:
    """Apollo sends an empty x-rate-limit-hourly / x-rate-limit-24-hour for a window without a limit."""
    clock = FakeClock()
    budget = _budget(RateLimit(per_minute=1000, per_hour=100, per_day=6000), clock)
    budget.observe({"x-rate-limit-minute": "1000", "x-rate-limit-hourly": "", "x-rate-limit-24-hour": ""})
    assert budget.windows["hour"].limit is None and budget.windows["day"].limit is None
    for _ in range(300):  # beyond the configured 100/hour: no wait at all
        asyncio.run(budget.acquire())
    assert clock.now == 1000.0
    budget.observe({"x-rate-limit-minute": "1000"})  # an absent header changes nothing
    assert budget.windows["hour"].limit is None and budget.windows["minute"].limit == 1000

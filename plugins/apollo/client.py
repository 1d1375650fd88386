"""The Apollo HTTP client: one keep-alive connection pool, a rate budget per operation, bounded retries."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import httpx

from crmsync_plugins.apollo.budget import RateBudget
from crmsync_plugins.apollo.errors import (
    ApolloAuthError,
    ApolloRejected,
    ApolloUnavailable,
    OutOfCredits,
    error_message,
)
from crmsync_plugins.apollo.settings import PATHS, ApolloSettings


@attrs.define
class ApiStats:
    """What the ``api`` section of the run report shows."""

    calls: Counter[str] = attrs.field(factory=Counter)
    credits: Decimal = Decimal(0)
    retries: int = 0
    rate_limited: int = 0
    wait_s: float = 0.0
    outcomes: Counter[str] = attrs.field(factory=Counter)
    #: ``crmsync plan``: calls that would be made (by URL) and the credits they could cost at most.
    planned: Counter[str] = attrs.field(factory=Counter)
    estimated_credits: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The report section."""
        return {
            "calls": dict(self.calls),
            "credits": float(self.credits),
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "wait_s": round(self.wait_s, 3),
            **dict(self.outcomes),
            **(
                {"planned_calls": dict(self.planned), "estimated_credits": self.estimated_credits}
                if self.planned
                else {}
            ),
        }


#: Called before a retry that follows a failure after which Apollo may have applied the request.
RetryPreparer = Callable[[dict[str, Any]], dict[str, Any]]


class ApolloClient:
    """Sends Apollo calls. Retries 5xx, 429, timeouts and dropped connections with exponential backoff and
    jitter; waits on a proactive rate budget before every request; stops everything on a refused key."""

    def __init__(
        self,
        settings: ApolloSettings,
        stats: ApiStats | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.stats = stats or ApiStats()
        self.sleep = sleep
        self.budgets = {
            operation: RateBudget(settings.rate_limit(operation), clock=clock, sleep=sleep) for operation in PATHS
        }
        self.refused: str | None = None
        limits = httpx.Limits(
            max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
        )
        self.http = httpx.AsyncClient(
            headers={**settings.auth_headers(), "Content-Type": "application/json", "Cache-Control": "no-cache"},
            timeout=settings.timeout_s,
            limits=limits,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def post(
        self,
        operation: str,
        body: dict[str, Any],
        params: dict[str, Any] | None = None,
        on_uncertain_retry: RetryPreparer | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` to ``operation`` and return the JSON response.

        :param on_uncertain_retry: rewrites the body before a retry that follows a failure after which Apollo
            may have applied the request (timeout, dropped connection, 5xx): writes use it to turn on dedupe.
        :raises ApolloRejected: 400/422 and other client errors; retrying the same body cannot help.
        :raises OutOfCredits: 402.
        :raises ApolloAuthError: 401/403, for this call and every later one.
        :raises ApolloUnavailable: when the attempts are used up.
        """
        budget, url = self.budgets[operation], self.settings.url(operation)
        path = httpx.URL(url).path
        for attempt in range(1, self.settings.max_attempts + 1):
            if self.refused:
                raise ApolloAuthError(self.refused)
            waited = await budget.acquire()  # awaited first: `x += await f()` would lose concurrent updates
            self.stats.wait_s += waited
            uncertain = True
            try:
                response = await self.http.post(url, json=body, params=params)
            except httpx.TransportError as exc:
                reason, delay = f"{type(exc).__name__} talking to Apollo", self._backoff(attempt)
                uncertain = not isinstance(exc, httpx.ConnectError)  # a refused connection sent nothing
            else:
                self.stats.calls[path] += 1
                if response.status_code != 429 or "retry-after" not in response.headers:
                    # A 429's Retry-After is the precise wait; its window headers would only hold us back longer.
                    budget.observe(response.headers)
                if response.is_success:
                    return self._json(response)
                reason, delay = self._classify(response, attempt)
                if response.status_code == 429:
                    # Pausing the budget holds back every concurrent call to this endpoint, not just this one.
                    budget.pause(delay)
                    delay, uncertain = 0.0, False
            if attempt == self.settings.max_attempts:
                raise ApolloUnavailable(f"{reason} (gave up after {attempt} attempts)")
            self.stats.retries += 1
            if delay:
                await self.sleep(delay)
            if uncertain and on_uncertain_retry is not None:
                body = on_uncertain_retry(body)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _classify(self, response: httpx.Response, attempt: int) -> tuple[str, float]:
        """For a retryable error response: (reason, delay). Raises for the rest."""
        status, message = response.status_code, error_message(response.status_code, response.content)
        if status in (401, 403):
            self.refused = f"Apollo refused the API key ({message}); check the connection's api_key and its permissions"
            raise ApolloAuthError(self.refused)
        if status == 402:
            raise OutOfCredits(message, status)
        if status == 429:
            self.stats.rate_limited += 1
            retry_after = _seconds(response.headers.get("retry-after"))
            if retry_after is not None and retry_after > self.settings.max_retry_after_s:
                raise ApolloUnavailable(f"{message} (Retry-After {retry_after:.0f}s is too long to wait)", status)
            return message, retry_after if retry_after is not None else self._backoff(attempt)
        if status >= 500 or status == 408:
            return message, self._backoff(attempt)
        raise ApolloRejected(message, status)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of concurrent calls so they do not hit Apollo in lockstep.
        ceiling = min(self.settings.max_backoff_s, self.settings.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ApolloUnavailable(f"HTTP {response.status_code}: the response is not JSON") from None
        if not isinstance(body, dict):
            raise ApolloUnavailable(f"HTTP {response.status_code}: unexpected response {type(body).__name__}")
        return body


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None

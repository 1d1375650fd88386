"""The Apollo HTTP client: one keep-alive connection pool, a rate budget per operation, bounded retries."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from crmsync_plugins.apollo.budget import RateBudget
from crmsync_plugins.apollo.errors import (
    MAX_MESSAGE,
    ApolloAuthError,
    ApolloRejected,
    ApolloUnavailable,
    EndpointPaused,
    MalformedResponse,
    OutOfCredits,
    error_message,
    find_message,
    is_out_of_credits,
)
from crmsync_plugins.apollo.settings import PATHS, ApolloSettings
from crmsync_plugins.apollo.stats import ApiStats
from crmsync_plugins.apollo.usage import USAGE_PATH, limits_from_usage

#: Operations that cost credits: an exhausted balance stops them, not the free ones.
PAID_OPERATIONS = frozenset({"people/bulk_match", "organizations/bulk_enrich"})

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
        mask: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings
        #: Masks secrets in Apollo's messages before they are shortened (an echoed key must not half-survive).
        self.mask = mask or (lambda text: text.replace(settings.api_key, "***") if settings.api_key else text)
        self.stats = stats or ApiStats()
        self.sleep = sleep
        self.budgets = {
            operation: RateBudget(settings.rate_limit(operation), clock=clock, sleep=sleep) for operation in PATHS
        }
        #: Operation → (its URL, the URL's path as counted in the report): worked out once, not per call.
        self.routes: dict[str, tuple[str, str]] = {}
        for operation in PATHS:
            url = settings.url(operation)
            self.routes[operation] = (url, httpx.URL(url).path)
        self.refused: str | None = None
        #: Set by the first "insufficient credits" answer: no paid call is sent after it.
        self.out_of_credits: str | None = None
        #: Operation → why it is not called any more this run (a ``Retry-After`` longer than we wait).
        self.paused: dict[str, str] = {}
        limits = httpx.Limits(
            max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
        )
        self.http = httpx.AsyncClient(
            headers={**settings.auth_headers(), "Content-Type": "application/json", "Cache-Control": "no-cache"},
            timeout=settings.timeout_s,
            limits=limits,
            transport=transport,
            # A pattern mapped to no proxy, as httpx maps each NO_PROXY host.
            mounts={_any_scheme_on(loopback): None} if (loopback := settings.loopback_host) else None,
        )
        #: httpx's own connection pool (no transport given) hands every request that arrives before the previous
        #: one has claimed its connection the same idle connection; all but one then start over, and every retry
        #: re-checks each idle connection. Batches finishing together start their calls together, so most calls
        #: paid that retry: requests now enter the pool one at a time, each until it holds its connection.
        self._pool_entry = asyncio.Lock() if transport is None else None

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def post(
        self,
        operation: str,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None = None,
        on_uncertain_retry: RetryPreparer | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (JSON; ``None`` for none) to ``operation`` and return the JSON response.

        :param on_uncertain_retry: called with the body before a retry that follows a failure after which Apollo
            may have applied the request (timeout, dropped connection, 5xx); returns the body to send. Writes use
            it to turn on dedupe, paid calls to count the lost attempt's credits (it may raise to stop retrying).
        :raises ApolloRejected: 400/422 and other client errors, and a 200 whose ``status`` is ``failed``;
            retrying the same body cannot help.
        :raises OutOfCredits: 402 or the 422 "Insufficient credits"; every later paid call raises it unsent.
        :raises ApolloAuthError: 401/403, for this call and every later one.
        :raises EndpointPaused: a 429 asks to wait longer than ``max_retry_after_s``; every later call to this
            operation raises it unsent.
        :raises MalformedResponse: a 2xx that is not a JSON object.
        :raises ApolloUnavailable: when the attempts are used up.
        """
        budget, (url, path) = self.budgets[operation], self.routes[operation]
        for attempt in range(1, self.settings.max_attempts + 1):
            self._check_open(operation)
            waited = await budget.acquire()  # awaited first: `x += await f()` would lose concurrent updates
            self.stats.wait_s += waited
            self._check_open(operation)  # another call may have closed the way while this one waited
            uncertain = True
            # Counted when sent: a call cut short (the run stopped on another call's refused key) was still made.
            self.stats.calls[path] += 1
            try:
                response = await self._send("POST", url, json=body, params=params)
            except httpx.TransportError as exc:
                reason, delay = f"{type(exc).__name__} talking to Apollo", self._backoff(attempt)
                uncertain = not isinstance(exc, httpx.ConnectError)  # a refused connection sent nothing
                if not uncertain:
                    self.stats.calls[path] -= 1
            else:
                if response.status_code != 429 or "retry-after" not in response.headers:
                    # A 429's Retry-After is the precise wait; its window headers would only hold us back longer.
                    budget.observe(response.headers)
                if response.is_success:
                    return self._json(response)
                reason, delay = self._classify(operation, response, attempt)
                if response.status_code == 429:
                    # Pausing the budget holds back every concurrent call to this endpoint, not just this one.
                    budget.pause(delay)
                    delay, uncertain = 0.0, False
            if attempt == self.settings.max_attempts:
                raise ApolloUnavailable(f"{reason} (gave up after {attempt} attempts)", uncertain=uncertain)
            self.stats.retries += 1
            if delay:
                await self.sleep(delay)
            if uncertain and on_uncertain_retry is not None and body is not None:
                body = on_uncertain_retry(body)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def webhook_result(self, request_id: str) -> tuple[int, dict[str, Any]]:
        """``GET webhook_result/{request_id}`` (0 credits): the HTTP status and the JSON object answered (``{}``
        when it is not one). 5xx, timeouts and 429 are retried like any call; 404/410/400 are answers here
        (pending, unknown, expired, invalid), so they are returned, not raised.

        :raises ApolloAuthError: 401/403.
        :raises ApolloUnavailable: when the attempts are used up (also :class:`EndpointPaused`).
        """
        operation = "webhook_result"
        budget, (base, path) = self.budgets[operation], self.routes[operation]
        for attempt in range(1, self.settings.max_attempts + 1):
            self._check_open(operation)
            self.stats.wait_s += await budget.acquire()
            try:
                response = await self._send("GET", f"{base}/{quote(str(request_id), safe='')}")
            except httpx.TransportError as exc:
                reason, delay = f"{type(exc).__name__} talking to Apollo", self._backoff(attempt)
            else:
                self.stats.calls[path] += 1
                budget.observe(response.headers)
                status = response.status_code
                if status < 500 and status not in (401, 403, 408, 429):
                    try:
                        body = response.json()
                    except ValueError:
                        body = {}
                    return status, body if isinstance(body, dict) else {}
                reason, delay = self._classify(operation, response, attempt)
                if status == 429:
                    budget.pause(delay)
                    delay = 0.0
            if attempt == self.settings.max_attempts:
                raise ApolloUnavailable(f"{reason} (gave up after {attempt} attempts)")
            self.stats.retries += 1
            if delay:
                await self.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def adopt_usage_limits(self) -> tuple[bool, str]:
        """Read the key's per-endpoint limits from Apollo's usage statistics (one call, outside the budgets) and
        adopt them; returns whether they were adopted and what happened, for the log. Never raises for an
        answer Apollo may give."""
        if self.settings.resolved_layout != "apollo":
            return False, "usage statistics are only available on Apollo direct; keeping the configured rate limits"
        url = self.settings.base_url.rstrip("/") + USAGE_PATH
        try:
            response = await self.http.post(url, json={})
        except httpx.TransportError as exc:
            return False, f"could not read usage statistics ({type(exc).__name__}); keeping the configured rate limits"
        self.stats.calls[USAGE_PATH] += 1
        if not response.is_success:
            message = error_message(response.status_code, response.content, self.mask)
            return False, f"usage statistics refused ({message}); keeping the configured rate limits"
        try:
            limits = limits_from_usage(response.json())
        except (ValueError, AttributeError):
            return False, "usage statistics are not readable; keeping the configured rate limits"
        adopted = {operation: limits[operation] for operation in self.budgets if operation in limits}
        for operation, limit in adopted.items():
            self.budgets[operation].apply(limit)
        return True, f"rate limits from usage statistics: {adopted or 'none for the endpoints this job uses'}"

    async def _send(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Send one request through the pool, entering it after the request before has claimed its connection
        (see ``_pool_entry``): the first event httpcore traces for a request comes once its connection is its own
        (in use, or being opened and not offered to anyone else)."""
        entry = self._pool_entry
        if entry is None:
            return _unlinked(await self.http.request(method, url, **options))
        await entry.acquire()
        waiting = True

        async def claimed(event: str, info: dict[str, Any]) -> None:
            nonlocal waiting
            if waiting:
                waiting = False
                entry.release()
                # httpcore reads the extensions httpx hands it (this dict) at each step it traces: without the
                # callback the request's remaining steps (about eight) are not traced at all.
                request.extensions.pop("trace", None)

        request = self.http.build_request(method, url, extensions={"trace": claimed}, **options)
        try:
            return _unlinked(await self.http.send(request))
        finally:
            if waiting:  # failed before it claimed a connection
                waiting = False
                entry.release()

    def _check_open(self, operation: str) -> None:
        """Raise, without sending, when the run must not call ``operation`` any more."""
        if self.refused:
            raise ApolloAuthError(self.refused)
        if self.out_of_credits and operation in PAID_OPERATIONS:
            raise OutOfCredits(self.out_of_credits)
        if operation in self.paused:
            raise EndpointPaused(self.paused[operation])

    def _classify(self, operation: str, response: httpx.Response, attempt: int) -> tuple[str, float]:
        """For a retryable error response: (reason, delay). Raises for the rest."""
        status = response.status_code
        message = error_message(status, response.content, self.mask)
        if is_out_of_credits(status, message):
            self.out_of_credits = f"Apollo reports no credits left ({message})"
            raise OutOfCredits(message, status)
        if status in (401, 403):
            self.refused = f"Apollo refused the API key ({message}); check the connection's api_key and its permissions"
            raise ApolloAuthError(self.refused)
        if status == 429:
            self.stats.rate_limited += 1
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if retry_after is not None and retry_after > self.settings.max_retry_after_s:
                self.paused[operation] = (
                    f"{message} (Retry-After {retry_after:.0f}s is longer than max_retry_after_s "
                    f"{self.settings.max_retry_after_s:g}s: {operation} is not called again this run)"
                )
                raise EndpointPaused(self.paused[operation], status)
            return message, retry_after if retry_after is not None else self._backoff(attempt)
        if status >= 500 or status == 408:
            return message, self._backoff(attempt)
        raise ApolloRejected(message, status)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of concurrent calls so they do not hit Apollo in lockstep.
        ceiling = min(self.settings.max_backoff_s, self.settings.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            raise MalformedResponse(f"HTTP {status}: the response is not JSON", status) from None
        if not isinstance(body, dict):
            raise MalformedResponse(f"HTTP {status}: unexpected response {type(body).__name__}", status)
        if str(body.get("status", "")).lower() == "failed":
            # Apollo's enrichment endpoints can report a failure inside a 200.
            message = self.mask(find_message(body) or "status: failed")[:MAX_MESSAGE]
            if is_out_of_credits(422, message):
                self.out_of_credits = f"Apollo reports no credits left (HTTP {status}: {message})"
                raise OutOfCredits(message, status)
            raise ApolloRejected(f"HTTP {status}: {message}", status)
        return body


def retry_after_seconds(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def _unlinked(response: httpx.Response) -> httpx.Response:
    """``response``, which ``send`` has read and closed, without the reference cycle httpx keeps between it
    and its stream: reference counting then frees it, with its body, as soon as its caller lets go. Left to the
    garbage collector, a run held ~100 MB of read answers between collections on a 200k-contact job."""
    response.stream = httpx.ByteStream(response.content)
    return response


def _any_scheme_on(host: str) -> str:
    """An httpx mount pattern for every URL on ``host`` (an IPv6 address in brackets)."""
    return f"all://[{host}]" if ":" in host else f"all://{host}"

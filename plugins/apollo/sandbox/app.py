"""ApolloSandbox: the framework-free request handler behind the HTTP server and the httpx transport."""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from . import auth, operations
from .config import SandboxConfig
from .contacts import ContactStore
from .data import Seed, load_seed
from .deliveries import DeliveryBook, PostJob, PostOutcome
from .faults import Fault, FaultInjector
from .generator import object_id
from .people import PeopleDirectory
from .ratelimit import RateLimiter
from .responses import (
    INSUFFICIENT_CREDITS,
    SandboxConnectionReset,
    SandboxResponse,
    error,
    failed,
    json_response,
    text_response,
)

if TYPE_CHECKING:
    from .webhooks import WebhookDispatcher

_LAYOUT_PREFIXES = (
    ("/api/v1/", auth.DIRECT),
    ("/v1/", auth.DIRECT),  # older Apollo docs use /v1/ without /api
    ("/apis/v1/apollo/", auth.GATEWAY),
)
_METHODS: dict[str, frozenset[str]] = {
    "people/bulk_match": frozenset({"POST"}),
    "people/match": frozenset({"POST", "GET"}),
    "organizations/bulk_enrich": frozenset({"POST"}),
    "organizations/enrich": frozenset({"GET"}),
    "contacts/bulk_create": frozenset({"POST"}),
    "usage_stats/api_usage_stats": frozenset({"POST"}),
    "webhook_result": frozenset({"GET"}),
}
#: Operations whose path ends in an id (``webhook_result/{request_id}``).
_WITH_ID = frozenset({"webhook_result"})
#: Fault statuses that, like Apollo's 401/403, carry no rate-limit headers.
_NO_RATE_HEADERS = frozenset({401, 403})
#: Operations that spend credits (a spent ``credit_balance`` refuses them).
_PAID = frozenset({"people/bulk_match", "people/match", "organizations/bulk_enrich", "organizations/enrich"})
#: What a ``malformed`` fault answers instead of the documented body, per operation.
_MALFORMED: dict[str, Any] = {
    "people/bulk_match": {"status": "success", "matches": "oops"},
    "organizations/bulk_enrich": {"status": "success", "organizations": "oops"},
    "contacts/bulk_create": {"created_contacts": "oops", "existing_contacts": None},
}
ADMIN_PREFIX = "/_sandbox/"


@dataclass(frozen=True)
class Route:
    """Where a request path points: the deployment layout and the Apollo operation."""

    layout: str
    operation: str
    #: The id a path like ``webhook_result/{request_id}`` ends in.
    resource_id: str | None = None


def resolve(method: str, path: str) -> Route | None:
    """The route for ``path``, or ``None`` for an unknown path or method."""
    for prefix, layout in _LAYOUT_PREFIXES:
        if path.startswith(prefix):
            operation = path[len(prefix) :].strip("/")
            resource_id = None
            head, _, tail = operation.partition("/")
            if head in _WITH_ID and tail:
                operation, resource_id = head, tail
            if method.upper() in _METHODS.get(operation, frozenset()):
                return Route(layout, operation, resource_id)
            return None
    return None


def parse_query(raw_query: str) -> dict[str, Any]:
    """Query parameters; Rails-style array parameters (``domains[]=a&domains[]=b``) become lists."""
    params: dict[str, Any] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        if name.endswith("[]"):
            params.setdefault(name, []).append(value)
        else:
            params[name] = value
    return params


def _split_target(path: str, query: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    # Callers may pass a raw request target; the query string then merges under explicit params.
    raw_path, _, raw_query = path.partition("?")
    merged = parse_query(raw_query)
    merged.update(query or {})
    return unquote(raw_path) or "/", merged


def _parse_body(body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body`` ({} when empty), or ``None`` when it is not a JSON object."""
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


class ApolloSandbox:
    """A local, stateful stand-in for Apollo's API (direct and aisa.one gateway layouts).

    ``handle`` serves one request; it is thread-safe. State - contacts, credits, call counts, rate-limit
    windows - lives in memory and can be inspected with :meth:`state` or ``GET /_sandbox/state`` and
    restored to the seed with :meth:`reset` or ``POST /_sandbox/reset``. ``clock`` drives the rate-limit
    windows (inject a fake one in tests), ``wall_clock`` the contacts' timestamps and the asynchronous
    deliveries: phone reveals and waterfall results are POSTed to their ``webhook_url`` by a background
    thread (started on the first such request; :meth:`close` stops it) and served by ``webhook_result``.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        seed: Seed | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or SandboxConfig()
        self.seed = seed if seed is not None else load_seed(self.config.seed_path)
        self.people = PeopleDirectory(self.seed.people, self.seed.organizations)
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._faults = FaultInjector(self.config)
        self._limiter = RateLimiter(self.config.limits_for, clock)
        self._contacts = ContactStore(
            new_id=self._new_id,
            now=self._now,
            team_id=self.config.team_id,
            default_stage_id=self.config.default_contact_stage_id,
            people=self.people,
        )
        self._deliveries = DeliveryBook(self.config, wall_clock)
        self._dispatcher: WebhookDispatcher | None = None
        self._reset_state()

    # -- state -------------------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._ids = random.Random(f"ids:{self.config.random_seed}")
        self._calls: Counter[str] = Counter()
        self._credits: float = 0
        self._requests = 0
        self._rate_limited = 0
        self._resets = 0
        self._faults.reset()
        self._limiter.reset()
        self._contacts.load(self.seed.contacts)
        self._deliveries.clear()

    def reset(self) -> None:
        """Restore the seed's contacts and zero calls, credits, rate-limit windows and scripted faults."""
        with self._lock:
            self._reset_state()

    def close(self) -> None:
        """Stop the webhook delivery thread (payloads stay available through ``webhook_result``)."""
        with self._lock:
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.close()

    def _complete_deliveries(self) -> None:
        # Under the lock: payloads whose delay has passed become ready and their credits are charged.
        self._credits += self._deliveries.complete_due()

    def _take_due_posts(self) -> tuple[list[PostJob], bool]:
        with self._lock:
            self._complete_deliveries()
            return self._deliveries.take_due_posts()

    def _record_post(self, job: PostJob, outcome: PostOutcome) -> None:
        with self._lock:
            self._deliveries.record_post(job, outcome)

    def state(self) -> dict[str, Any]:
        """A snapshot: contacts, call counts per request path, credits, totals, asynchronous deliveries."""
        with self._lock:
            self._complete_deliveries()
            return {
                "deliveries": self._deliveries.state(),
                "contacts": self._contacts.all(),
                "calls": dict(self._calls),
                "credits": self._credits,
                "requests": self._requests,
                "rate_limited": self._rate_limited,
                "resets": self._resets,
                "pending_faults": self._faults.pending,
            }

    @property
    def contacts(self) -> list[dict[str, Any]]:
        """Copies of the workspace's contacts."""
        with self._lock:
            return self._contacts.all()

    @property
    def credits(self) -> float:
        """Credits consumed since the last reset (including deliveries that are due by now)."""
        with self._lock:
            self._complete_deliveries()
            return self._credits

    @property
    def calls(self) -> dict[str, int]:
        """API calls per request path since the last reset (``/_sandbox/*`` excluded)."""
        with self._lock:
            return dict(self._calls)

    def script_faults(self, faults: Iterable[str]) -> None:
        """Make the next API calls fail in order; see :func:`~.faults.parse_fault` for the tokens."""
        with self._lock:
            self._faults.script(faults)

    def _new_id(self) -> str:
        return object_id(self._ids)

    def _request_id(self) -> int:
        # Apollo's request ids are signed 64-bit integers, often negative, and unique across its lifetime: a
        # restarted sandbox must not hand out an id a client still has pending, so these are not seeded.
        return secrets.randbits(64) - 2**63

    def _now(self) -> str:
        stamp = datetime.fromtimestamp(self._wall_clock(), UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # -- request handling --------------------------------------------------------------------------------

    def latency_seconds(self) -> float:
        """The configured delay for the next response (drawn from the seeded jitter)."""
        with self._lock:
            return self._faults.latency_seconds()

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> SandboxResponse:
        """Serve one request, including the configured latency (a blocking sleep).

        Raises :class:`~.responses.SandboxConnectionReset` when a fault drops the connection.
        """
        delay = self.latency_seconds() if not path.startswith(ADMIN_PREFIX) else 0.0
        if delay:
            self._sleep(delay)
        response = self.process(method, path, query, headers, body)
        if response.delay_s:
            self._sleep(response.delay_s)
        return response

    def process(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> SandboxResponse:
        """Serve one request without latency (async callers sleep on their own loop first)."""
        path, params = _split_target(path, query)
        lowered = {name.lower(): value for name, value in (headers or {}).items()}
        if path.startswith(ADMIN_PREFIX):
            return self._admin(method.upper(), path, body)
        with self._lock:
            self._requests += 1
            self._calls[path] += 1
            response, reset_after = self._serve(method.upper(), path, params, lowered, body)
            if response.status == 429:
                self._rate_limited += 1
            if reset_after:
                self._resets += 1
                raise SandboxConnectionReset(applied=True)
            return response

    def _serve(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[SandboxResponse, bool]:
        route = resolve(method, path)
        layout = route.layout if route else (auth.GATEWAY if path.startswith("/apis/") else auth.DIRECT)
        operation = route.operation if route else None

        # Scripted faults come first so a test gets exactly what it queued, whatever the request.
        fault: Fault | None = self._faults.next_scripted()
        if fault is not None and not (fault.passthrough or fault.malformed or (fault.reset and fault.after_apply)):
            return self._fault_response(fault, layout, operation), False
        if route is None:
            return error(404, "Not Found"), False
        if (denied := auth.check(layout, headers, self.config.api_key)) is not None:
            return denied, False
        if fault is None:
            # Random faults are decided before any state changes, so a 500 or 429 never half-applies.
            fault = self._faults.draw()
            if fault is not None and not (fault.reset and fault.after_apply):
                return self._fault_response(fault, layout, operation), False

        decision = self._limiter.hit(route.operation)
        if not decision.allowed:
            headers_out = dict(decision.headers)
            if self.config.retry_after_header and decision.retry_after is not None:
                headers_out["Retry-After"] = str(decision.retry_after)
            return json_response(429, {"message": decision.message}, headers_out), False

        if route.operation == "webhook_result":
            self._complete_deliveries()
            response = self._deliveries.webhook_result(route.resource_id or "")
        else:
            response = self._dispatch(route.operation, query, body)
        response.headers.update(decision.headers)
        if fault is not None and fault.malformed and response.status == 200:
            response.body = json.dumps(_MALFORMED.get(route.operation, ["oops"])).encode()
        if fault is not None and fault.delay_s:
            response.delay_s = fault.delay_s
        return response, bool(fault is not None and fault.reset and fault.after_apply)

    def _dispatch(self, operation: str, query: dict[str, Any], raw_body: bytes) -> SandboxResponse:
        balance = self.config.credit_balance
        if operation in _PAID and balance is not None and self._credits >= balance:
            return error(422, INSUFFICIENT_CREDITS)
        body = _parse_body(raw_body)
        if body is None:
            if operation == "contacts/bulk_create":
                return error(422, "Parameters misconfigured. The request body must be a JSON object.")
            return failed(400, "INVALID_REQUEST", "The request body must be a JSON object")
        cfg = self.config
        if operation == "people/bulk_match":
            flags = operations.MatchFlags.parse(query, body)
            outcome = operations.bulk_match(self.people, body, flags, cfg, self._request_id)
        elif operation == "people/match":
            flags = operations.MatchFlags.parse(query, body)
            outcome = operations.people_match(self.people, query, body, flags, self._request_id)
        elif operation == "organizations/bulk_enrich":
            outcome = operations.bulk_enrich(self.people, query, body, cfg)
        elif operation == "organizations/enrich":
            outcome = operations.organization_enrich(self.people, query)
        elif operation == "usage_stats/api_usage_stats":
            outcome = operations.usage_stats(self._limiter, cfg, [op for op in _METHODS if op not in _WITH_ID])
        else:
            outcome = operations.bulk_create_contacts(self._contacts, query, body, cfg)
        self._credits += outcome.credits
        for order in outcome.orders:
            self._deliveries.register(order)
        if outcome.orders:
            self._dispatcher_started().wake()
        return outcome.response

    def _dispatcher_started(self) -> WebhookDispatcher:
        if self._dispatcher is None:
            # Imported here: the handler itself needs no HTTP client until something must be delivered.
            from .webhooks import WebhookDispatcher

            self._dispatcher = WebhookDispatcher(
                self._take_due_posts, self._record_post, timeout_s=self.config.webhook_timeout_s
            )
        return self._dispatcher

    def _fault_response(self, fault: Fault, layout: str, operation: str | None) -> SandboxResponse:
        if fault.reset:
            self._resets += 1
            raise SandboxConnectionReset(applied=False)
        status = fault.status or 500
        if status == 401:
            return auth.unauthorized(layout)
        if status == 403:
            body = {"error": "You are not authorized to access this endpoint on your current plan."}
            return json_response(403, body | {"error_code": "API_INACCESSIBLE"})
        rate_headers = self._limiter.peek(operation) if operation else {}
        if status == 429:
            limit = rate_headers.get("x-rate-limit-minute") or "50"
            message = (
                f"The maximum number of api calls allowed for api/v1/{operation or 'unknown'} is {limit} times "
                "per minute. Please upgrade your plan from https://app.apollo.io/#/settings/plans/upgrade."
            )
            if fault.retry_after and self.config.retry_after_header:
                rate_headers["Retry-After"] = (
                    format_datetime(
                        datetime.fromtimestamp(self._wall_clock(), UTC) + timedelta(seconds=fault.retry_after_s),
                        usegmt=True,
                    )
                    if fault.retry_after_date
                    else str(fault.retry_after_s)
                )
            return json_response(429, {"message": message}, rate_headers)
        if status == 402:
            response = error(402, INSUFFICIENT_CREDITS)
        elif status == 422 and operation in ("people/bulk_match", "people/match"):
            response = failed(422, "UNKNOWN_ERROR", "Unknown error (sandbox fault)")
        elif status == 422:
            response = error(422, "Parameters misconfigured. (sandbox fault)")
        elif status == 400:
            response = failed(400, "INVALID_REQUEST", "Invalid request (sandbox fault)")
        elif status == 500:
            response = error(500, "Internal server error")
        elif status in (502, 503, 504):
            # Gateway errors come from the load balancer in front of Apollo: HTML, not Apollo's JSON.
            phrase = f"{status} {_phrase(status)}"
            page = f"<html><head><title>{phrase}</title></head><body><center><h1>{phrase}</h1></center></body></html>"
            response = text_response(status, page)
            response.headers["Content-Type"] = "text/html"
        else:
            response = error(status, _phrase(status))
        response.headers.update(rate_headers)
        return response

    # -- admin -------------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> SandboxResponse:
        if path == "/_sandbox/state" and method == "GET":
            return json_response(200, self.state())
        if path == "/_sandbox/reset" and method == "POST":
            self.reset()
            return json_response(200, {"status": "reset"})
        if path == "/_sandbox/faults" and method == "POST":
            parsed = _parse_body(body)
            faults = (parsed or {}).get("faults")
            if not isinstance(faults, list) or not all(isinstance(token, str) for token in faults):
                return error(400, 'Expected {"faults": ["500", "429", "reset", ...]}')
            try:
                self.script_faults(faults)
            except ValueError as exc:
                return error(400, str(exc))
            with self._lock:
                return json_response(200, {"pending_faults": self._faults.pending})
        return error(404, "Not Found")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"

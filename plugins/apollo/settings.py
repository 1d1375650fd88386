"""The Apollo connection's options: where Apollo is, how to authenticate, how fast to go."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

import attrs

from connector_core.options import option
from crmsync_plugins.apollo.budget import RateLimit

#: Operation → path under the base URL, for each deployment layout.
PATHS: dict[str, dict[str, str]] = {
    "people/bulk_match": {"apollo": "/api/v1/people/bulk_match", "aisa": "/apollo/people/bulk_match"},
    "organizations/bulk_enrich": {
        "apollo": "/api/v1/organizations/bulk_enrich",
        "aisa": "/apollo/organizations/bulk_enrich",
    },
    "contacts/bulk_create": {"apollo": "/api/v1/contacts/bulk_create", "aisa": "/apollo/contacts/bulk_create"},
    # Followed by ``/{request_id}``; the gateway's path for it is not confirmed.
    "webhook_result": {"apollo": "/api/v1/webhook_result", "aisa": "/apollo/webhook_result"},
}

#: Conservative defaults from Apollo's own usage-stats example; the budget adopts the limits Apollo's
#: response headers announce, so a bigger plan speeds up after the first call.
DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "people/bulk_match": RateLimit(per_minute=20, per_hour=100, per_day=6000),
    "organizations/bulk_enrich": RateLimit(per_minute=20, per_hour=100, per_day=6000),
    "contacts/bulk_create": RateLimit(per_minute=100, per_hour=400, per_day=2000),
    "webhook_result": RateLimit(per_minute=100, per_hour=400, per_day=2000),
}


def _known_operations(_: object, attribute: attrs.Attribute[dict[str, RateLimit]], value: dict[str, RateLimit]) -> None:
    unknown = set(value) - set(PATHS)
    if unknown:
        raise ValueError(f"unknown operation(s) {sorted(unknown)} in rate_limits (known: {sorted(PATHS)})")


@attrs.frozen
class ApolloSettings:
    """Options of an ``apollo`` connection (``connections: {apollo: {type: apollo, ...}}``)."""

    api_key: str = option(
        help="the API key (or aisa.one token); write ${APOLLO_API_KEY} so it stays out of the spec", secret=True
    )
    #: ``https://api.apollo.io`` or the aisa.one gateway ``https://api.aisa.one/apis/v1``.
    base_url: str = "https://api.apollo.io"
    #: ``x-api-key`` header (Apollo direct) or ``bearer`` token (aisa.one); ``auto`` picks by layout.
    auth: Literal["auto", "x-api-key", "bearer"] = "auto"
    #: Path layout: ``apollo`` (``/api/v1/...``) or ``aisa`` (``/apollo/...``); ``auto`` picks by base URL.
    layout: Literal["auto", "apollo", "aisa"] = "auto"
    timeout_s: float = 30.0
    #: Open HTTP connections at most (keep-alive); bounds how many calls run at once.
    max_connections: int = 8
    #: Attempts per call for retryable failures (5xx, 429, timeouts, dropped connections).
    max_attempts: int = 6
    #: First backoff delay; it doubles per attempt (with jitter) up to ``max_backoff_s``.
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    #: A ``Retry-After`` longer than this is not waited for: the endpoint is not called again this run and its
    #: records are set aside for the next run.
    max_retry_after_s: float = 300.0
    #: Read the key's real per-endpoint limits once at the start (``POST /api/v1/usage_stats/api_usage_stats``,
    #: Apollo direct, master keys only; other keys keep the configured limits and a warning says why).
    read_usage_stats: bool = False
    #: Requests per window for each operation, e.g. ``{people/bulk_match: {per_minute: 50}}``.
    rate_limits: dict[str, RateLimit] = attrs.field(factory=dict, validator=_known_operations)

    @property
    def resolved_layout(self) -> str:
        """``apollo`` or ``aisa``."""
        if self.layout != "auto":
            return self.layout
        parts = urlsplit(self.base_url)
        return "aisa" if "aisa" in parts.netloc or parts.path.rstrip("/").endswith("/apis/v1") else "apollo"

    @property
    def resolved_auth(self) -> str:
        """``x-api-key`` or ``bearer``."""
        if self.auth != "auto":
            return self.auth
        return "bearer" if self.resolved_layout == "aisa" else "x-api-key"

    def url(self, operation: str) -> str:
        """The full URL of ``operation``."""
        return self.base_url.rstrip("/") + PATHS[operation][self.resolved_layout]

    def rate_limit(self, operation: str) -> RateLimit:
        """The configured (or default) limits of ``operation``."""
        return self.rate_limits.get(operation, DEFAULT_RATE_LIMITS[operation])

    @property
    def loopback_host(self) -> str | None:
        """The base URL's host when it is this machine (``localhost``, ``127.0.0.1``, ``::1``: a local sandbox or
        mock), else None. Calls to it are never sent through a proxy from the environment (``HTTP_PROXY``,
        ``ALL_PROXY``): a proxy elsewhere cannot reach this machine's loopback. Go's HTTP client makes the
        same exception."""
        host = urlsplit(self.base_url).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            return host
        try:
            return host if ipaddress.ip_address(host).is_loopback else None
        except ValueError:
            return None

    def auth_headers(self) -> dict[str, str]:
        """The header carrying the key; never put it in a URL or a body."""
        if self.resolved_auth == "bearer":
            return {"Authorization": f"Bearer {self.api_key}"}
        return {"X-Api-Key": self.api_key}

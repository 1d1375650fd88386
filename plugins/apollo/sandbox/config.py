"""Settings of the Apollo sandbox: limits, auth, fault injection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RateLimits:
    """Fixed-window call limits for one endpoint; ``None`` means unlimited."""

    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that changes how the sandbox behaves.

    Fault rates are probabilities in ``[0, 1]`` drawn from a generator seeded with ``random_seed`` so a run
    can be replayed. ``reset_rate`` is the probability that a call ends with a dropped connection;
    ``reset_after_apply_fraction`` is the share of those resets that happen *after* the request was applied
    (contacts written, credits charged), which is what duplicate/crash-recovery tests need.
    """

    #: When set, only this key (or gateway token) is accepted; otherwise any non-empty key is.
    api_key: str | None = None
    #: Seed document (``{"people": [...], "contacts": [...]}``); ``None`` loads the packaged default.
    seed_path: str | Path | None = None
    #: Drop ``null`` entries for unmatched details instead of returning positional matches.
    omit_missing_matches: bool = False

    rate_limit_per_minute: int | None = None
    rate_limit_per_hour: int | None = None
    rate_limit_per_day: int | None = None
    #: Per-operation overrides keyed like ``"people/bulk_match"``; they replace the global limits.
    endpoint_rate_limits: Mapping[str, RateLimits] = field(default_factory=dict)
    #: Apollo does not promise ``Retry-After``; turning it off lets clients prove they cope without it.
    retry_after_header: bool = True

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fail_rate: float = 0.0
    #: The statuses a random failure answers with, drawn evenly (Apollo's edge also sends 502/503/504).
    fail_statuses: tuple[int, ...] = (500,)
    throttle_rate: float = 0.0
    reset_rate: float = 0.0
    reset_after_apply_fraction: float = 0.5
    random_seed: int = 0

    #: Whether the key is a master key: others get Apollo's 403 from the usage statistics endpoint.
    master_key: bool = True
    #: Credits the account can spend; once spent, paid calls get Apollo's documented 422 "Insufficient credits".
    credit_balance: float | None = None
    #: Share of calls that stall for ``spike_ms`` on top of the normal latency (seeded, like the faults).
    spike_rate: float = 0.0
    spike_ms: float = 0.0

    #: Seconds from a phone/waterfall request until its payload is ready and POSTed to ``webhook_url``.
    delivery_delay_s: float = 2.0
    #: Extra POSTs of every payload (Apollo "may retry" a webhook: receivers must be idempotent).
    duplicate_deliveries: int = 0
    #: Retries of a POST that failed (unreachable, non-2xx), ``webhook_retry_backoff_s * 2**n`` apart.
    webhook_retries: int = 3
    webhook_retry_backoff_s: float = 1.0
    webhook_timeout_s: float = 10.0
    #: How long ``webhook_result`` keeps a ready payload (Apollo: 30 days); then 410 ``request_id_expired``.
    result_ttl_s: float = 30 * 24 * 3600.0

    max_match_details: int = 10
    max_enrich_domains: int = 10
    max_bulk_contacts: int = 100
    #: Users allowed as ``owner_id`` in bulk create; ``None`` accepts any owner.
    owner_ids: frozenset[str] | None = None
    team_id: str = "6181a50999668600ded6fe71"
    default_contact_stage_id: str = "6181a50999668600ded6fe7d"

    def limits_for(self, operation: str) -> RateLimits:
        """The limits that apply to ``operation`` (e.g. ``"people/bulk_match"``)."""
        override = self.endpoint_rate_limits.get(operation)
        if override is not None:
            return override
        return RateLimits(self.rate_limit_per_minute, self.rate_limit_per_hour, self.rate_limit_per_day)

"""Asynchronous deliveries: phone reveals and waterfall results that Apollo POSTs to ``webhook_url`` later.

A :class:`DeliveryBook` records every request that asked for them, turns it into the documented webhook
payload once ``delivery_delay_s`` has passed (charging the credits of what was found), schedules the webhook
POSTs (copies, retries with backoff) and answers ``GET webhook_result/{request_id}``. It holds no lock: the
owning :class:`~.app.ApolloSandbox` calls it under its own.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import SandboxConfig
from .responses import SandboxResponse, json_response

PHONE = "phone"
WATERFALL = "waterfall"
#: Credits of one delivered mobile number and of one waterfall email (Apollo: 1 for an email, +8 for a mobile).
MOBILE_CREDITS = 8
EMAIL_CREDITS = 1
_INT64 = re.compile(r"^-?\d{1,19}$")


@dataclass(frozen=True)
class DeliveryOrder:
    """What an enrichment call asked to be delivered later (built by the operations, registered by the app)."""

    request_id: str
    kind: str  # PHONE or WATERFALL
    webhook_url: str
    #: The matched seed people (full records: the payload is built from them when the delay has passed).
    people: tuple[Mapping[str, Any], ...]
    #: For waterfall: the fields asked for, ``"email"`` and/or ``"phone"``.
    target_fields: tuple[str, ...] = ()


@dataclass(order=True, frozen=True)
class PostJob:
    """One webhook POST due at ``due``: copy ``copy_index`` of a request's payload, try number ``attempt``."""

    due: float
    seq: int
    request_id: str = field(compare=False)
    copy_index: int = field(compare=False)
    attempt: int = field(compare=False)
    url: str = field(compare=False)
    body: bytes = field(compare=False)


@dataclass(frozen=True)
class PostOutcome:
    """What one POST got: the status code, or the transport error text when nothing came back."""

    status_code: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class _Record:
    order: DeliveryOrder
    created_at: float
    ready_at: float
    payload: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: Copies still being tried; the webhook status is final once none is left.
    open_copies: int = 0
    delivered: int = 0
    failure_reason: str | None = None

    @property
    def webhook_status(self) -> str:
        if self.delivered:
            return "delivered"
        if self.payload is not None and self.open_copies == 0 and self.attempts:
            return "failed"
        return "pending"


def iso(timestamp: float) -> str:
    """An ISO-8601 UTC timestamp with milliseconds, as Apollo writes them."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mobiles(person: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The person's mobile numbers in the webhook's ``*_cd`` vocabulary; empty when Apollo has none."""
    found = [phone for phone in person.get("phone_numbers") or [] if phone.get("type") == "mobile"]
    return [
        {
            "raw_number": phone.get("raw_number"),
            "sanitized_number": phone.get("sanitized_number"),
            "type_cd": "mobile",
            "status_cd": phone.get("status") or "valid_number",
            "confidence_cd": "high",
            "dnc_status_cd": phone.get("dnc_status"),
            "dnc_other_info": phone.get("dnc_other_info"),
            "position": position,
        }
        for position, phone in enumerate(found)
    ]


def _emails(person: Mapping[str, Any]) -> list[dict[str, Any]]:
    email = person.get("email")
    if not email or person.get("email_status") == "unavailable":
        return []
    return [{"email": email, "email_status": person.get("email_status") or "verified", "position": 0}]


def phone_payload(order: DeliveryOrder) -> tuple[dict[str, Any], float]:
    """The phone webhook payload and the credits it costs (8 per person with a number)."""
    people = []
    for person in order.people:
        numbers = _mobiles(person)
        status = "success" if numbers else "no_phone_found"
        people.append({"id": person["id"], "status": status, "phone_numbers": numbers})
    found = sum(1 for person in people if person["phone_numbers"])
    credits = found * MOBILE_CREDITS
    payload = {
        "status": "completed",
        "request_id": order.request_id,
        "total_requested_enrichments": len(people),
        "unique_enriched_records": found,
        "missing_records": len(people) - found,
        "credits_consumed": credits,
        "people": people,
    }
    return payload, credits


def waterfall_payload(order: DeliveryOrder, initiated: float, completed: float) -> tuple[dict[str, Any], float]:
    """The waterfall webhook payload and its credits (1 per email, 8 per mobile found)."""
    people = []
    emails_found = mobiles_found = enriched = 0
    for person in order.people:
        emails = _emails(person) if "email" in order.target_fields else []
        numbers = _mobiles(person) if "phone" in order.target_fields else []
        emails_found += bool(emails)
        mobiles_found += bool(numbers)
        enriched += bool(emails or numbers)
        people.append(
            {
                "id": person["id"],
                "waterfall": {"emails": emails, "phone_numbers": numbers},
                "emails": copy.deepcopy(emails),
                "phone_numbers": copy.deepcopy(numbers),
            }
        )
    credits = emails_found * EMAIL_CREDITS + mobiles_found * MOBILE_CREDITS
    payload = {
        "status": "completed",
        "request_id": int(order.request_id),
        "target_fields": list(order.target_fields),
        "records_enriched": enriched,
        "email_records_enriched": emails_found,
        "mobile_records_enriched": mobiles_found,
        "enrichment_not_found": len(people) - enriched,
        "credits_consumed": credits,
        "request_initiated": iso(initiated),
        "request_completed": iso(completed),
        "people": people,
    }
    return payload, credits


class DeliveryBook:
    """The sandbox's record of asynchronous requests, their payloads, POST schedule and attempts."""

    def __init__(self, config: SandboxConfig, now: Callable[[], float]) -> None:
        self._config = config
        self._now = now
        self._records: dict[str, _Record] = {}
        self._jobs: list[PostJob] = []
        self._seq = itertools.count()

    def clear(self) -> None:
        """Forget every request (a sandbox reset); in-flight POSTs are then ignored when they report."""
        self._records.clear()
        self._jobs.clear()

    def register(self, order: DeliveryOrder) -> None:
        """Record ``order``; its payload becomes ready ``delivery_delay_s`` from now."""
        now = self._now()
        self._records[order.request_id] = _Record(order, now, now + self._config.delivery_delay_s)

    def complete_due(self) -> float:
        """Build the payload of every request whose delay has passed and schedule its POSTs; returns the
        credits those payloads cost."""
        now = self._now()
        credits = 0.0
        for request_id, record in self._records.items():
            if record.payload is not None or record.ready_at > now:
                continue
            if record.order.kind == PHONE:
                record.payload, cost = phone_payload(record.order)
            else:
                record.payload, cost = waterfall_payload(record.order, record.created_at, record.ready_at)
            credits += cost
            record.open_copies = 1 + self._config.duplicate_deliveries
            body = json.dumps(record.payload, ensure_ascii=False).encode("utf-8")
            for copy_index in range(record.open_copies):
                self._push(record.ready_at, request_id, copy_index, 0, record.order.webhook_url, body)
        return credits

    def _push(self, due: float, request_id: str, copy_index: int, attempt: int, url: str, body: bytes) -> None:
        heapq.heappush(self._jobs, PostJob(due, next(self._seq), request_id, copy_index, attempt, url, body))

    def take_due_posts(self) -> tuple[list[PostJob], bool]:
        """The POSTs due now (removed from the schedule), and whether any payload or POST is still to come."""
        now = self._now()
        due: list[PostJob] = []
        while self._jobs and self._jobs[0].due <= now:
            due.append(heapq.heappop(self._jobs))
        outstanding = bool(self._jobs) or any(record.payload is None for record in self._records.values())
        return due, outstanding

    def record_post(self, job: PostJob, outcome: PostOutcome) -> None:
        """Note a POST's outcome; a failure is retried with exponential backoff until the retries run out."""
        record = self._records.get(job.request_id)
        if record is None:
            return  # reset while the POST was in flight
        now = self._now()
        record.attempts.append(
            {
                "copy": job.copy_index,
                "attempt": job.attempt,
                "at": iso(now),
                "status_code": outcome.status_code,
                "error": outcome.error,
            }
        )
        if outcome.ok:
            record.delivered += 1
            record.open_copies -= 1
            return
        if job.attempt < self._config.webhook_retries:
            backoff = self._config.webhook_retry_backoff_s * 2**job.attempt
            self._push(now + backoff, job.request_id, job.copy_index, job.attempt + 1, job.url, job.body)
            return
        record.open_copies -= 1
        record.failure_reason = outcome.error or f"webhook answered HTTP {outcome.status_code}"

    # -- polling -----------------------------------------------------------------------------------------

    def webhook_result(self, raw_id: str) -> SandboxResponse:
        """``GET webhook_result/{request_id}``: Apollo's pending/ready/unknown/expired/invalid answers."""
        if not _INT64.match(raw_id) or not -(2**63) <= int(raw_id) < 2**63:
            return json_response(400, {"error": "invalid_request_id"})
        record = self._records.get(str(int(raw_id)))
        if record is None:
            return json_response(404, {"error": "request_id_unknown"})
        now = self._now()
        if record.payload is None:
            wait = max(1, math.ceil(record.ready_at - now))
            body = {"error": "result_pending", "retry_after_seconds": wait}
            return json_response(404, body, {"Retry-After": str(wait)})
        if now >= record.ready_at + self._config.result_ttl_s:
            return json_response(410, {"error": "request_id_expired"})
        last = record.attempts[-1]["at"] if record.attempts else None
        return json_response(
            200,
            {
                "webhook_status": record.webhook_status,
                "request_type": record.order.kind,
                "last_dispatched_at": last,
                "failure_reason": record.failure_reason if record.webhook_status == "failed" else None,
                "webhook_result": record.payload,
            },
        )

    def state(self) -> list[dict[str, Any]]:
        """Every request for ``/_sandbox/state`` (the webhook URL stays out: it carries the receiver's secret)."""
        return [
            {
                "request_id": request_id,
                "kind": record.order.kind,
                "person_ids": [person["id"] for person in record.order.people],
                "target_fields": list(record.order.target_fields),
                "created_at": iso(record.created_at),
                "ready_at": iso(record.ready_at),
                "ready": record.payload is not None,
                "webhook_status": record.webhook_status,
                "deliveries": record.delivered,
                "failure_reason": record.failure_reason,
                "attempts": copy.deepcopy(record.attempts),
            }
            for request_id, record in self._records.items()
        ]

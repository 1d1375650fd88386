"""Phone and waterfall deliveries: what ``apollo.bulk_match`` is owed later, and collecting it.

Apollo answers ``reveal_phone_number`` and ``run_waterfall_*`` at once with a request id, and delivers the
numbers and emails minutes later: POSTed to ``webhook_url`` (kept by ``crmsync webhook serve``) and kept for
30 days at ``GET webhook_result/{request_id}``. People in a delivery are named only by Apollo person id, so
each request is written to the job's state when its answer arrives — request id, kind, when, and person id →
the input record — before the matched records move on. A later run (or the same one) joins the delivery back
to those records; nothing is enriched twice to get it.

Each request is one state object of component ``<mapper>.deliveries`` keyed ``<kind>:<request_id>``, with a
``status``: ``pending``; ``delivered`` / ``skipped`` (its records are emitted on every run, the sinks' ledger
drops what they already hold); ``failed`` (its records went to the error stream) and ``closed`` after that.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from connector_core.components import Emitter
from connector_core.records import Record
from crmsync_plugins.apollo.errors import ApolloUnavailable
from crmsync_plugins.apollo.paths import get_path

if TYPE_CHECKING:
    from connector_core.context import RunContext
    from crmsync_plugins.apollo.client import ApolloClient
    from crmsync_plugins.apollo.stats import ApiStats

#: Delivery kind → the output of ``apollo.bulk_match`` its records go to.
OUTPUTS = {"phone": "phones", "waterfall": "waterfall"}
#: The state component the webhook receiver stores received payloads under (key: a hash of the body).
RECEIVED = "webhook.received"
#: Field of an emitted record saying what the delivery held: delivered, not_found or skipped.
STATUS_FIELD = "apollo_delivery_status"
#: Answers of ``webhook_result`` after which no result will ever come.
FINAL_ANSWERS = {"request_id_unknown", "request_id_expired", "invalid_request_id"}
#: Shortest pause between two polls of one request, whatever ``retry_after_seconds`` says.
MIN_POLL_S = 0.5


def person_results(kind: str, payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Apollo person id → ``phone_numbers`` (and ``emails`` for a waterfall) of one delivered payload."""
    results: dict[str, dict[str, Any]] = {}
    people = payload.get("people")
    for person in people if isinstance(people, list) else []:
        if not isinstance(person, dict) or person.get("id") is None:
            continue
        result = {"phone_numbers": _list(person, "phone_numbers")}
        if kind == "waterfall":
            result["emails"] = _list(person, "emails")
        results[str(person["id"])] = result
    return results


def _list(person: dict[str, Any], field: str) -> list[Any]:
    value = person.get(field) or get_path(person, f"waterfall.{field}")
    return value if isinstance(value, list) else []


class Deliveries:
    """The requests one ``apollo.bulk_match`` waits on: recorded as they are sent, collected at the end."""

    def __init__(self, mapper: str, context: RunContext) -> None:
        self.context = context
        self.mapper = mapper
        self.component = f"{mapper}.deliveries"
        #: This run's requests (the only ones when the job keeps no state).
        self.requests: dict[str, dict[str, Any]] = {}
        #: Credits this run counted as at risk for a pending request, by request.
        self.reserved: dict[str, Decimal] = {}
        self.counts: dict[str, int] = {}

    def record(
        self, kind: str, request_id: str, people: dict[str, Record], status: str, stats: ApiStats, worst_case: int
    ) -> None:
        """Remember a request (``skipped`` when Apollo said no delivery will come), durably with state.

        A pending request's ``worst_case`` credits a person count as at risk until its payload says what it cost,
        so ``max_credits`` holds for the calls sent after it."""
        if status == "pending" and worst_case:
            reserved = Decimal(worst_case * len(people))
            stats.credits_at_risk += reserved
            self.reserved[f"{kind}:{request_id}"] = reserved
        entry = {
            "kind": kind,
            "request_id": request_id,
            "sent_at": time.time(),
            "status": status,
            "people": {
                person_id: {
                    "data": record.data,
                    "key": record.key,
                    "source": record.source,
                    "position": record.position,
                    "fingerprint": record.fingerprint,
                }
                for person_id, record in people.items()
            },
            "results": {},
        }
        self._save({f"{kind}:{request_id}": entry})

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.requests.update(entries)
        if self.context.state is not None:
            self.context.state.put_objects(self.component, entries)

    def _all(self) -> dict[str, dict[str, Any]]:
        stored = self.context.state.all_objects(self.component) if self.context.state is not None else {}
        return {**stored, **self.requests}

    def _settle(self, key: str, entry: dict[str, Any], payload: dict[str, Any], stats: ApiStats) -> None:
        entry.update(status="delivered", results=person_results(entry["kind"], payload))
        try:
            consumed = Decimal(str(payload.get("credits_consumed")))
        except (ArithmeticError, ValueError):
            consumed = Decimal("NaN")
        if consumed.is_finite():
            stats.credits += consumed
            stats.credits_at_risk -= self.reserved.pop(key, Decimal(0))
        # else Apollo left the count out: the worst case reserved when the request was sent stays at risk
        self._save({key: entry})
        self._count("delivered_requests")

    def _fail(self, key: str, entry: dict[str, Any], reason: str) -> None:
        entry.update(status="failed", reason=reason)
        self._save({key: entry})
        self._count("failed_requests")

    def _count(self, name: str, amount: int = 1) -> None:
        if not self.counts:  # a section in the run report only for a job that has deliveries
            self.context.add_report_section(f"deliveries {self.mapper}", lambda: dict(self.counts))
        self.counts[name] = self.counts.get(name, 0) + amount

    async def collect(self, client: ApolloClient, stats: ApiStats, wait_s: float, out: Emitter) -> None:
        """Join what the webhook receiver stored, poll ``webhook_result`` for the rest for up to ``wait_s``
        seconds, then emit every delivered request's records."""
        entries = self._all()
        pending = {key: entry for key, entry in entries.items() if entry["status"] == "pending"}
        await self._poll(client, stats, pending, wait_s)
        self._emit(entries, out)

    def _join_received(self, pending: dict[str, dict[str, Any]], stats: ApiStats) -> None:
        """Settle pending requests with payloads the webhook receiver kept: a waterfall by its request id, a
        phone payload (it names no request) by the oldest pending request holding its people."""
        if self.context.state is None or not pending:
            return
        received = sorted(self.context.state.all_objects(RECEIVED).values(), key=lambda item: item["received_at"])
        for item in received:
            payload = item["payload"]
            rid = payload.get("request_id")
            key = f"waterfall:{rid}" if rid is not None and f"waterfall:{rid}" in pending else None
            if key is None:
                ids = set(person_results("phone", payload))
                key = next(
                    (
                        key
                        for key, entry in sorted(pending.items(), key=lambda pair: pair[1]["sent_at"])
                        if entry["kind"] == "phone"
                        and entry["sent_at"] <= item["received_at"]
                        and ids & set(entry["people"])
                    ),
                    None,
                )
            if key is not None:
                self._settle(key, pending.pop(key), payload, stats)

    async def _poll(
        self, client: ApolloClient, stats: ApiStats, pending: dict[str, dict[str, Any]], wait_s: float
    ) -> None:
        deadline = time.monotonic() + wait_s
        due = dict.fromkeys(pending, 0.0)
        while pending and not self.context.halted:
            self._join_received(pending, stats)  # a receiver may have stored some while we waited
            now = time.monotonic()
            for key in [key for key in pending if due[key] <= now]:
                entry = pending[key]
                try:
                    status, body = await client.webhook_result(entry["request_id"])
                except ApolloUnavailable as exc:  # the next run (with state) polls again
                    self.context.log.warning("%s: webhook_result unavailable, polling stops: %s", self.component, exc)
                    return
                error = str(body.get("error") or "")
                if status == 200 and isinstance(body.get("webhook_result"), dict):
                    self._settle(key, pending.pop(key), body["webhook_result"], stats)
                elif status == 404 and error == "result_pending":
                    try:
                        retry = float(body.get("retry_after_seconds") or MIN_POLL_S)
                    except (TypeError, ValueError):
                        retry = MIN_POLL_S
                    due[key] = time.monotonic() + max(retry, MIN_POLL_S)
                elif error in FINAL_ANSWERS or status in (400, 410):
                    self._fail(key, pending.pop(key), f"webhook_result: HTTP {status} {error or 'no result'}")
                elif status == 404:  # not one of Apollo's answers: no such endpoint here; keep what was paid for
                    self.context.log.warning(
                        "%s: webhook_result is not served at this base URL (HTTP 404 %s); polling stops, "
                        "the deliveries stay pending",
                        self.component,
                        error or "without an Apollo error",
                    )
                    return
                else:
                    due[key] = time.monotonic() + MIN_POLL_S * 4
                    self.context.log.warning("webhook_result answered HTTP %s %s; polling again", status, error)
            if not pending:
                break
            pause = min(due[key] for key in pending) - time.monotonic()
            if time.monotonic() + max(pause, 0.0) > deadline:
                break
            await asyncio.sleep(max(pause, 0.0))

    def _emit(self, entries: dict[str, dict[str, Any]], out: Emitter) -> None:
        closed: dict[str, dict[str, Any]] = {}
        for key, entry in entries.items():
            status, kind = entry["status"], entry["kind"]
            for person_id, stored in entry["people"].items():
                record = Record(
                    stored["data"], stored["key"], stored["source"], stored["position"], stored["fingerprint"]
                )
                if status == "pending":
                    self._count("pending_people")
                    if self.context.state is None:  # no later run can collect it: say so in its record
                        out.emit(record.with_data({**record.data, **self._fields(entry, person_id)}), OUTPUTS[kind])
                elif status == "failed":
                    out.fail(record, f"Apollo {kind} delivery {entry['request_id']}: {entry.get('reason')}")
                elif status in ("delivered", "skipped"):
                    out.emit(record.with_data({**record.data, **self._fields(entry, person_id)}), OUTPUTS[kind])
                    self._count(f"{OUTPUTS[kind]}_emitted")
            if status == "failed":
                closed[key] = {**entry, "status": "closed"}
        if closed:
            self._save(closed)
        if self.context.state is None and self.counts.get("pending_people"):
            self.context.log.warning(
                "%s: %d people's deliveries are still pending after delivery_wait_s; without state no later run "
                "can collect them (their records say apollo_delivery_status: pending)",
                self.mapper,
                self.counts["pending_people"],
            )

    @staticmethod
    def _fields(entry: dict[str, Any], person_id: str) -> dict[str, Any]:
        result = entry["results"].get(person_id, {})
        fields: dict[str, Any] = {"phone_numbers": result.get("phone_numbers", [])}
        if entry["kind"] == "waterfall":
            fields["emails"] = result.get("emails", [])
        found = any(fields.values())
        status = entry["status"]
        fields[STATUS_FIELD] = status if status in ("skipped", "pending") else "delivered" if found else "not_found"
        return fields

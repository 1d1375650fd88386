"""The API operations proper, free of auth, routing, rate limits and faults."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import SandboxConfig
from .contacts import ContactStore, ContactValidationError, validate_batch
from .deliveries import PHONE, WATERFALL, DeliveryOrder
from .people import PeopleDirectory, norm_domain
from .ratelimit import RateLimiter
from .responses import MISSING_CONTACT_ATTRIBUTES, SandboxResponse, error, failed, json_response, misconfigured

#: Countries whose residents' personal emails Apollo never reveals.
_GDPR_COUNTRIES = frozenset(
    {
        "austria",
        "belgium",
        "bulgaria",
        "croatia",
        "cyprus",
        "czechia",
        "denmark",
        "estonia",
        "finland",
        "france",
        "germany",
        "greece",
        "hungary",
        "iceland",
        "ireland",
        "italy",
        "latvia",
        "liechtenstein",
        "lithuania",
        "luxembourg",
        "malta",
        "netherlands",
        "norway",
        "poland",
        "portugal",
        "romania",
        "slovakia",
        "slovenia",
        "spain",
        "sweden",
        "switzerland",
        "united kingdom",
    }
)

#: The fields of a match in waterfall mode (Apollo's OpenAPI example): no email, no organization object.
_SLIM_FIELDS = (
    "id",
    "first_name",
    "last_name",
    "name",
    "title",
    "linkedin_url",
    "organization_id",
    "city",
    "state",
    "country",
    "revealed_for_current_team",
)


@dataclass(frozen=True)
class Outcome:
    """An operation's response plus the credits it consumed."""

    response: SandboxResponse
    credits: float = 0
    #: Phone reveals and waterfall results to deliver to the webhook later.
    orders: tuple[DeliveryOrder, ...] = ()


def truthy(value: Any) -> bool:
    """Query strings carry ``"true"``; JSON bodies carry ``true``."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class MatchFlags:
    """The enrichment query parameters (they may also come in the JSON body)."""

    reveal_personal_emails: bool = False
    reveal_phone_number: bool = False
    run_waterfall_email: bool = False
    run_waterfall_phone: bool = False
    webhook_url: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str], body: Mapping[str, Any]) -> MatchFlags:
        """Query-string values win over body values."""

        def get(name: str) -> Any:
            return query[name] if name in query else body.get(name)

        webhook = get("webhook_url")
        return cls(
            reveal_personal_emails=truthy(get("reveal_personal_emails")),
            reveal_phone_number=truthy(get("reveal_phone_number")),
            run_waterfall_email=truthy(get("run_waterfall_email")),
            run_waterfall_phone=truthy(get("run_waterfall_phone")),
            webhook_url=(str(webhook).strip() or None) if webhook else None,
        )

    @property
    def waterfall(self) -> bool:
        """True when any waterfall flag is set."""
        return self.run_waterfall_email or self.run_waterfall_phone

    @property
    def waterfall_targets(self) -> tuple[str, ...]:
        """The fields a waterfall request asks for: ``"email"`` and/or ``"phone"``."""
        return (("email",) if self.run_waterfall_email else ()) + (("phone",) if self.run_waterfall_phone else ())

    def missing_webhook(self) -> str | None:
        """The error message when a flag that needs ``webhook_url`` came without it."""
        if self.webhook_url:
            return None
        if self.reveal_phone_number:
            return "Please add a valid 'webhook_url' parameter when using 'reveal_phone_number'"
        if self.waterfall:
            return "Please add a valid 'webhook_url' parameter when using waterfall enrichment"
        return None


def public_person(person: Mapping[str, Any], flags: MatchFlags) -> dict[str, Any]:
    """The person object as a match returns it for these flags."""
    shown = copy.deepcopy(dict(person))
    # Mobile numbers are only ever delivered asynchronously to the webhook.
    shown["phone_numbers"] = [p for p in shown.get("phone_numbers") or [] if p.get("type") != "mobile"]
    gdpr = str(shown.get("country") or "").lower() in _GDPR_COUNTRIES
    if not flags.reveal_personal_emails or gdpr:
        shown["personal_emails"] = []
    if flags.waterfall:
        # Waterfall mode answers a slim person; emails and the rest come later, to the webhook.
        shown["revealed_for_current_team"] = True
        return {field: shown.get(field) for field in _SLIM_FIELDS}
    return shown


def _asynchronous_parts(
    flags: MatchFlags,
    matched: list[Mapping[str, Any]],
    request_id: Callable[[], int],
    waterfall_id: int,
) -> tuple[dict[str, Any], tuple[DeliveryOrder, ...]]:
    """The ``phone_enrichment``/``waterfall`` response fields and the deliveries they promise.

    Phones get their own request id per call; a waterfall is delivered under the call's top-level
    ``request_id`` (``waterfall_id``).
    """
    extras: dict[str, Any] = {}
    orders: list[DeliveryOrder] = []
    webhook = flags.webhook_url or ""
    people = tuple(matched)
    if flags.reveal_phone_number:
        phone_id = str(request_id())  # a string here, unlike the top-level request_id (OpenAPI example)
        extras["phone_enrichment"] = {
            "request_id": phone_id,
            "status": "pending" if matched else "skipped",
            "message": "Phone numbers will be delivered asynchronously to the webhook_url"
            if matched
            else "No matched people to enrich with phone numbers",
        }
        if matched:  # "skipped" promises no webhook
            orders.append(DeliveryOrder(phone_id, PHONE, webhook, people))
    if flags.waterfall:
        extras["waterfall"] = {
            "status": "accepted",
            "message": "Waterfall enrichment request accepted; results will be delivered to the webhook_url",
        }
        orders.append(DeliveryOrder(str(waterfall_id), WATERFALL, webhook, people, flags.waterfall_targets))
    return extras, tuple(orders)


def bulk_match(
    people: PeopleDirectory,
    body: Mapping[str, Any],
    flags: MatchFlags,
    config: SandboxConfig,
    request_id: Callable[[], int],
) -> Outcome:
    """``POST people/bulk_match``."""
    details = body.get("details")
    if details is None or not isinstance(details, list):
        return Outcome(failed(400, "INVALID_REQUEST", "details is missing or is not an array"))
    if len(details) > config.max_match_details:
        message = f"cannot enrich more than {config.max_match_details} in a single request"
        return Outcome(failed(400, "RECORD_LIMIT_EXCEEDED", message))
    for index, detail in enumerate(details):
        if not isinstance(detail, dict):
            return Outcome(failed(400, "INVALID_REQUEST", f"details[{index}] must be an object"))
    if problem := flags.missing_webhook():
        return Outcome(failed(400, "INVALID_REQUEST", problem))

    found = [people.match(detail) for detail in details]
    call_id = request_id()
    unique = {person["id"]: person for person in found if person is not None}
    # Billing is per distinct person: asking twice for someone in one call costs once.
    # 1 credit per person; a mobile number's 8 are charged when it is delivered to the webhook.
    credits = len(unique)
    matches = [public_person(person, flags) if person is not None else None for person in found]
    if config.omit_missing_matches:
        matches = [match for match in matches if match is not None]
    payload: dict[str, Any] = {
        "status": "success",
        "error_code": None,
        "error_message": None,
        "request_id": call_id,
        "total_requested_enrichments": len(details),
    }
    if not flags.waterfall:
        payload["unique_enriched_records"] = len(unique)
        payload["missing_records"] = sum(1 for person in found if person is None)
        payload["credits_consumed"] = credits
    payload["matches"] = matches
    extras, orders = _asynchronous_parts(flags, list(unique.values()), request_id, call_id)
    payload.update(extras)
    return Outcome(json_response(200, payload), credits, orders)


def people_match(
    people: PeopleDirectory,
    query: Mapping[str, str],
    body: Mapping[str, Any],
    flags: MatchFlags,
    request_id: Callable[[], int],
) -> Outcome:
    """``POST people/match``: one person, identifiers in the query string or the body."""
    if problem := flags.missing_webhook():
        return Outcome(failed(400, "INVALID_REQUEST", problem))
    detail = {**query, **body}
    person = people.match(detail)
    payload: dict[str, Any] = {"person": public_person(person, flags) if person else None}
    if flags.waterfall:
        payload["request_id"] = request_id()  # the id the waterfall is delivered and polled under
    extras, orders = _asynchronous_parts(flags, [person] if person else [], request_id, payload.get("request_id", 0))
    payload.update(extras)
    return Outcome(json_response(200, payload), 1 if person else 0, orders)


def bulk_enrich(
    people: PeopleDirectory, query: Mapping[str, Any], body: Mapping[str, Any], config: SandboxConfig
) -> Outcome:
    """``POST organizations/bulk_enrich``: ``domains[]`` query parameters (the current reference), else
    ``details[]`` in the body (which wins when present), else the older body ``domains`` list."""
    domains: Any
    if isinstance(body.get("details"), list):
        domains = [item.get("domain") if isinstance(item, dict) else item for item in body["details"]]
    elif "domains[]" in query:
        domains = query["domains[]"]
        domains = domains if isinstance(domains, list) else [domains]
    else:
        domains = body.get("domains")
    if not isinstance(domains, list) or not domains or not all(isinstance(domain, str) for domain in domains):
        return Outcome(failed(400, "INVALID_REQUEST", "invalid request, missing domains"))
    if len(domains) > config.max_enrich_domains:
        return Outcome(
            failed(400, "RECORD_LIMIT_EXCEEDED", f"domain count cannot be more than {config.max_enrich_domains}")
        )
    unique = list(dict.fromkeys(norm_domain(domain) for domain in domains if norm_domain(domain)))
    organizations = [org for domain in unique if (org := people.organization(domain)) is not None]
    payload = {
        "status": "success",
        "error_code": None,
        "error_message": None,
        "total_requested_domains": len(domains),
        "unique_domains": len(unique),
        "unique_enriched_records": len(organizations),
        "missing_records": len(unique) - len(organizations),
        "credits_consumed": len(organizations),  # one credit per enriched company
        "organizations": copy.deepcopy(organizations),
    }
    return Outcome(json_response(200, payload), len(organizations))


def organization_enrich(people: PeopleDirectory, query: Mapping[str, str]) -> Outcome:
    """``GET organizations/enrich?domain=...``."""
    domain = query.get("domain", "")
    if not norm_domain(domain):
        return Outcome(failed(400, "INVALID_REQUEST", "domain is required"))
    org = people.organization(domain)
    return Outcome(json_response(200, {"organization": copy.deepcopy(org) if org else None}))


def usage_stats(limiter: RateLimiter, config: SandboxConfig, operations: list[str]) -> Outcome:
    """``POST usage_stats/api_usage_stats``: limit, consumed and left per window, keyed as Apollo keys them
    (``["api/v1/people", "bulk_match"]``); 403 unless the key is a master key."""
    if not config.master_key:
        message = (
            "This API key is not authorized to access api/v1/usage_stats/api_usage_stats. Request an API key from "
            "your administrator that includes this endpoint in its configured scope."
        )
        return Outcome(json_response(403, {"error": message, "error_code": "API_INACCESSIBLE"}))
    payload: dict[str, Any] = {}
    for operation in operations:
        resource, _, action = operation.rpartition("/")
        payload[json.dumps([f"api/v1/{resource}", action])] = limiter.usage(operation)
    return Outcome(json_response(200, payload))


def bulk_create_contacts(
    store: ContactStore, query: Mapping[str, str], body: Mapping[str, Any], config: SandboxConfig
) -> Outcome:
    """``POST contacts/bulk_create``."""
    # Apollo's own n8n node sends the array as contacts_with_labels.
    contacts = body.get("contacts", body.get("contacts_with_labels"))
    if not isinstance(contacts, list):
        return Outcome(error(422, MISSING_CONTACT_ATTRIBUTES))
    if len(contacts) > config.max_bulk_contacts:
        return Outcome(error(422, f"Please limit your array to {config.max_bulk_contacts} contacts or fewer."))
    labels = body.get("append_label_names") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        return Outcome(misconfigured("append_label_names must be an array of strings"))
    owner_id = body.get("owner_id")
    if owner_id is not None and (
        not isinstance(owner_id, str) or (config.owner_ids is not None and owner_id not in config.owner_ids)
    ):
        return Outcome(misconfigured(f"owner_id {owner_id!r} is not a user of your team"))
    try:
        validate_batch(contacts)
    except ContactValidationError as exc:
        # One bad record fails the whole batch: callers have to split it to find the culprit.
        return Outcome(misconfigured(str(exc)))
    run_dedupe = truthy(query["run_dedupe"] if "run_dedupe" in query else body.get("run_dedupe", False))
    result = store.bulk_create(contacts, label_names=labels, owner_id=owner_id, run_dedupe=run_dedupe)
    payload = {"created_contacts": result.created, "existing_contacts": result.existing}
    return Outcome(json_response(200, payload))

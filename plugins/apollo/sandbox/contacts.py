"""The workspace's contacts: validation, deduplication and creation for contacts/bulk_create."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .people import PeopleDirectory, norm_company, norm_domain, norm_email, norm_name

#: CRM ids that identify a contact during dedupe, checked in this order.
CRM_ID_FIELDS = (
    "salesforce_id",
    "hubspot_id",
    "salesforce_lead_id",
    "salesforce_contact_id",
    "outreach_id",
    "salesloft_id",
)
#: Fields copied as given from a submitted contact.
_PLAIN_FIELDS = (
    "organization_id",
    "linkedin_url",
    "facebook_url",
    "twitter_url",
    "photo_url",
    "present_raw_address",
    "salesforce_account_id",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: A first name that makes the whole batch fail, so tests can trigger a 422 on purpose.
REJECT_MARKER = "__reject__"


class ContactValidationError(ValueError):
    """A batch that Apollo would refuse as a whole with 422 ``Parameters misconfigured``."""


@dataclass
class BulkCreateResult:
    """Contacts of one bulk_create call, each list in request order."""

    created: list[dict[str, Any]] = field(default_factory=list)
    existing: list[dict[str, Any]] = field(default_factory=list)


def _emails_of(contact: Mapping[str, Any]) -> list[str]:
    emails = [contact.get("email")]
    emails += [item.get("email") for item in contact.get("contact_emails") or [] if isinstance(item, Mapping)]
    return [norm_email(email) for email in emails if isinstance(email, str) and email.strip()]


def _contact_name(contact: Mapping[str, Any]) -> str:
    return norm_name(contact.get("name") or f"{contact.get('first_name') or ''} {contact.get('last_name') or ''}")


def account_id_for(organization_name: str) -> str:
    """A stable account id per company, as Apollo links every contact of a company to one account."""
    return hashlib.md5(f"account:{norm_company(organization_name)}".encode()).hexdigest()[:24]


def validate_batch(contacts: Sequence[Any]) -> None:
    """Raise :class:`ContactValidationError` if any contact would make Apollo refuse the batch."""
    for index, contact in enumerate(contacts):
        if not isinstance(contact, Mapping):
            raise ContactValidationError(f"contact_attributes[{index}] must be an object")
        if contact.get("first_name") == REJECT_MARKER:
            raise ContactValidationError(f"contact_attributes[{index}] was rejected")
        candidates = [contact.get("email")]
        candidates += [item.get("email") for item in contact.get("contact_emails") or [] if isinstance(item, Mapping)]
        for email in candidates:
            if email is None or email == "":
                continue
            if not isinstance(email, str) or not _EMAIL.match(email.strip()):
                raise ContactValidationError(f"contact_attributes[{index}].email is invalid: {email!r}")
        custom = contact.get("typed_custom_fields")
        if custom is not None and not isinstance(custom, Mapping):
            raise ContactValidationError(f"contact_attributes[{index}].typed_custom_fields must be an object")


class ContactStore:
    """Contacts of the sandbox workspace with the indexes Apollo's dedupe needs.

    Not thread-safe by itself: :class:`~.app.ApolloSandbox` serialises access.
    """

    def __init__(
        self,
        *,
        new_id: Callable[[], str],
        now: Callable[[], str],
        team_id: str,
        default_stage_id: str,
        people: PeopleDirectory | None = None,
    ) -> None:
        self._new_id = new_id
        self._now = now
        self._team_id = team_id
        self._default_stage_id = default_stage_id
        self._people = people
        self._contacts: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._by_crm: dict[tuple[str, str], dict[str, Any]] = {}
        self._by_person: dict[str, dict[str, Any]] = {}
        self._by_email: dict[str, dict[str, Any]] = {}
        self._by_name: dict[str, list[dict[str, Any]]] = {}

    def load(self, seed_contacts: Iterable[Mapping[str, Any]]) -> None:
        """Replace every contact with (normalised copies of) ``seed_contacts``."""
        for index in (
            self._contacts,
            self._by_id,
            self._by_crm,
            self._by_person,
            self._by_email,
            self._by_name,
        ):
            index.clear()
        for contact in seed_contacts:
            given = copy.deepcopy(dict(contact))
            stored = {"id": given.get("id") or self._new_id(), **self._defaults(), **given}
            first, last = stored["first_name"] or "", stored["last_name"] or ""
            stored["name"] = stored["name"] or f"{first} {last}".strip() or None
            if not stored["contact_emails"] and isinstance(stored["email"], str) and stored["email"]:
                stored["contact_emails"] = _contact_emails(stored["email"], None)
            if not stored["account_id"] and stored["organization_name"]:
                stored["account_id"] = account_id_for(stored["organization_name"])
            self._add(stored)

    def __len__(self) -> int:
        return len(self._contacts)

    def all(self) -> list[dict[str, Any]]:
        """Copies of every contact, oldest first."""
        return copy.deepcopy(self._contacts)

    def bulk_create(
        self,
        contacts: Sequence[Mapping[str, Any]],
        *,
        label_names: Sequence[str] = (),
        owner_id: str | None = None,
        run_dedupe: bool = False,
    ) -> BulkCreateResult:
        """Create the contacts (validate first with :func:`validate_batch`).

        With ``run_dedupe`` a contact matching an existing one - including one created earlier in the same
        call - is returned unchanged in ``existing`` (bulk create never updates or relabels a match).
        """
        result = BulkCreateResult()
        for submitted in contacts:
            match = self.find_duplicate(submitted) if run_dedupe else None
            if match is not None:
                result.existing.append(copy.deepcopy(match))
                continue
            created = self._build(submitted, label_names, owner_id)
            self._add(created)
            result.created.append(copy.deepcopy(created))
        return result

    def find_duplicate(self, contact: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apollo's dedupe order: contact id, CRM ids, person id, any email, then name + company."""
        if contact.get("id") and (found := self._by_id.get(str(contact["id"]))):
            return found
        for crm_field in CRM_ID_FIELDS:
            if contact.get(crm_field) and (found := self._by_crm.get((crm_field, str(contact[crm_field])))):
                return found
        if contact.get("person_id") and (found := self._by_person.get(str(contact["person_id"]))):
            return found
        for email in _emails_of(contact):
            if found := self._by_email.get(email):
                return found
        name = _contact_name(contact)
        for candidate in self._by_name.get(name, []) if name else []:
            if _same_company(contact, candidate):
                return candidate
        return None

    def _defaults(self) -> dict[str, Any]:
        now = self._now()
        return {
            "first_name": None,
            "last_name": None,
            "name": None,
            "email": None,
            "title": None,
            "organization_name": None,
            "organization_id": None,
            "account_id": None,
            "owner_id": None,
            "team_id": self._team_id,
            "contact_stage_id": self._default_stage_id,
            "person_id": None,
            "linkedin_url": None,
            "phone_numbers": [],
            "contact_emails": [],
            "typed_custom_fields": {},
            "label_names": [],
            "source": "api",
            "created_at": now,
            "updated_at": now,
        }

    def _build(self, submitted: Mapping[str, Any], label_names: Sequence[str], owner_id: str | None) -> dict[str, Any]:
        contact = {"id": self._new_id(), **self._defaults()}
        first, last = submitted.get("first_name"), submitted.get("last_name")
        contact.update(first_name=first, last_name=last, name=f"{first or ''} {last or ''}".strip() or None)
        email = submitted.get("email")
        contact["email"] = norm_email(email) if isinstance(email, str) and email.strip() else None
        # primary_title wins over title, as in Apollo's reference.
        contact["title"] = submitted.get("primary_title") or submitted.get("title")
        org_name = submitted.get("organization_name")
        contact["organization_name"] = org_name
        contact["account_id"] = submitted.get("account_id") or (account_id_for(org_name) if org_name else None)
        contact["owner_id"] = owner_id
        contact["contact_stage_id"] = submitted.get("contact_stage_id") or self._default_stage_id
        contact["person_id"] = submitted.get("person_id")
        if contact["person_id"] is None and contact["email"] and self._people is not None:
            person = self._people.by_email(contact["email"])
            contact["person_id"] = person["id"] if person else None
        for name in _PLAIN_FIELDS + CRM_ID_FIELDS:
            if submitted.get(name) is not None:
                contact[name] = submitted[name]
        contact["phone_numbers"] = _phone_numbers(submitted)
        contact["contact_emails"] = _contact_emails(contact["email"], submitted.get("contact_emails"))
        contact["typed_custom_fields"] = dict(submitted.get("typed_custom_fields") or {})
        contact["label_names"] = list(dict.fromkeys(label_names))
        return contact

    def _add(self, contact: dict[str, Any]) -> None:
        self._contacts.append(contact)
        self._by_id.setdefault(contact["id"], contact)
        for crm_field in CRM_ID_FIELDS:
            if contact.get(crm_field):
                self._by_crm.setdefault((crm_field, str(contact[crm_field])), contact)
        if contact.get("person_id"):
            self._by_person.setdefault(str(contact["person_id"]), contact)
        for email in _emails_of(contact):
            self._by_email.setdefault(email, contact)
        name = _contact_name(contact)
        if name:
            self._by_name.setdefault(name, []).append(contact)


def _same_company(submitted: Mapping[str, Any], existing: Mapping[str, Any]) -> bool:
    # Company is recognised by organization name, organization id or email domain (Apollo's dedupe rules).
    name_a, name_b = (
        norm_company(submitted.get("organization_name")),
        norm_company(existing.get("organization_name")),
    )
    if name_a and name_a == name_b:
        return True
    if submitted.get("organization_id") and submitted.get("organization_id") == existing.get("organization_id"):
        return True
    domains_a = {norm_domain(email) for email in _emails_of(submitted)}
    domains_b = {norm_domain(email) for email in _emails_of(existing)}
    return bool(domains_a & domains_b)


def _phone_numbers(submitted: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = [item for item in submitted.get("phone_numbers") or [] if isinstance(item, Mapping)]
    if submitted.get("phone"):
        raw = [{"raw_number": submitted["phone"], "position": 0}, *raw]
    numbers = []
    for position, item in enumerate(raw):
        number = str(item.get("raw_number") or "")
        digits = "".join(ch for ch in number if ch.isdigit())
        numbers.append(
            {
                "raw_number": number,
                "sanitized_number": f"+{digits}" if digits else None,
                "type": item.get("type"),
                "position": item.get("position", position),
                "status": "no_status",
            }
        )
    return numbers


def _contact_emails(primary: str | None, extra: Any) -> list[dict[str, Any]]:
    emails = [norm_email(primary)] if primary else []
    emails += [norm_email(item.get("email")) for item in extra or [] if isinstance(item, Mapping) and item.get("email")]
    return [{"email": email, "position": position} for position, email in enumerate(dict.fromkeys(emails))]

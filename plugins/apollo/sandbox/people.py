"""Apollo's people database: lookup of a person from the identifiers a match request carries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_COMPANY_SUFFIXES = frozenset({"inc", "llc", "ltd", "limited", "corp", "corporation", "co", "io", "com", "gmbh"})


def norm_email(value: Any) -> str:
    """Emails compare case-insensitively and ignore surrounding blanks, as Apollo's matching does."""
    return str(value or "").strip().lower()


def norm_domain(value: Any) -> str:
    """``https://www.Acme.io/about`` and ``jane@acme.io`` both become ``acme.io``."""
    text = str(value or "").strip().lower()
    text = text.rpartition("@")[2]
    text = _SCHEME.sub("", text).split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    return text.removeprefix("www.").strip(".")


def norm_linkedin(value: Any) -> str:
    """LinkedIn URLs differ in scheme, ``www.``/country subdomain, case and trailing slash only."""
    text = _SCHEME.sub("", str(value or "").strip().lower()).split("?", 1)[0].rstrip("/")
    host, _, path = text.partition("/")
    if host.endswith("linkedin.com"):
        host = "linkedin.com"
    return f"{host}/{path}" if path else host


def norm_name(value: Any) -> str:
    """Names compare case-insensitively with collapsed whitespace."""
    return " ".join(str(value or "").casefold().split())


def norm_company(value: Any) -> str:
    """``Apollo``, ``Apollo.io`` and ``Apollo, Inc.`` are the same company for matching purposes."""
    words = re.sub(r"[^\w]+", " ", str(value or "").casefold()).split()
    while len(words) > 1 and words[-1] in _COMPANY_SUFFIXES:
        words.pop()
    return " ".join(words)


def detail_name(detail: Mapping[str, Any]) -> str:
    """The full name a detail carries: ``name``, else ``first_name`` + ``last_name``."""
    if detail.get("name"):
        return norm_name(detail["name"])
    if detail.get("first_name") and detail.get("last_name"):
        return norm_name(f"{detail['first_name']} {detail['last_name']}")
    return ""


def email_hashes(email: str) -> tuple[str, str]:
    """MD5 and SHA-256 of a normalised email, the two hash formats Apollo accepts."""
    data = norm_email(email).encode("utf-8")
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


class PeopleDirectory:
    """Read-only index over the seed's people and organizations."""

    def __init__(self, people: Iterable[dict[str, Any]], organizations: Iterable[dict[str, Any]] = ()) -> None:
        self.people: list[dict[str, Any]] = list(people)
        self._by_id: dict[str, dict[str, Any]] = {}
        self._by_email: dict[str, dict[str, Any]] = {}
        self._by_hash: dict[str, dict[str, Any]] = {}
        self._by_linkedin: dict[str, dict[str, Any]] = {}
        self._by_name: dict[str, list[dict[str, Any]]] = {}
        self._orgs_by_domain: dict[str, dict[str, Any]] = {}
        for org in organizations:
            self._add_org(org)
        for person in self.people:
            # First entry wins everywhere so lookups are stable whatever the seed's duplicates.
            self._by_id.setdefault(person["id"], person)
            if person.get("email"):
                self._by_email.setdefault(norm_email(person["email"]), person)
                for digest in email_hashes(person["email"]):
                    self._by_hash.setdefault(digest, person)
            if person.get("hashed_email"):
                # Stored hashes count too: the reference's sample hashes are not all derivable from its emails.
                self._by_hash.setdefault(str(person["hashed_email"]).lower(), person)
            if person.get("linkedin_url"):
                self._by_linkedin.setdefault(norm_linkedin(person["linkedin_url"]), person)
            name = norm_name(person.get("name") or f"{person.get('first_name', '')} {person.get('last_name', '')}")
            self._by_name.setdefault(name, []).append(person)
            if person.get("organization"):
                self._add_org(person["organization"])

    def _add_org(self, org: dict[str, Any]) -> None:
        for domain in (org.get("primary_domain"), org.get("website_url")):
            if domain:
                self._orgs_by_domain.setdefault(norm_domain(domain), org)

    def __len__(self) -> int:
        return len(self.people)

    def by_id(self, person_id: str) -> dict[str, Any] | None:
        """The person with this Apollo id."""
        return self._by_id.get(person_id)

    def by_email(self, email: str) -> dict[str, Any] | None:
        """The person with this work email (case and blanks ignored)."""
        return self._by_email.get(norm_email(email))

    def match(self, detail: Mapping[str, Any]) -> dict[str, Any] | None:
        """The person a bulk_match detail designates, trying identifiers from the most to the least precise."""
        if detail.get("id") and (person := self._by_id.get(str(detail["id"]).strip())):
            return person
        if detail.get("email") and (person := self.by_email(str(detail["email"]))):
            return person
        if detail.get("hashed_email") and (person := self._by_hash.get(str(detail["hashed_email"]).strip().lower())):
            return person
        if detail.get("linkedin_url") and (person := self._by_linkedin.get(norm_linkedin(detail["linkedin_url"]))):
            return person
        return self._match_by_name(detail)

    def _match_by_name(self, detail: Mapping[str, Any]) -> dict[str, Any] | None:
        # A bare name is ambiguous: like Apollo, only match it together with a company hint.
        name = detail_name(detail)
        domain = norm_domain(detail.get("domain"))
        company = norm_company(detail.get("organization_name"))
        if not name or not (domain or company):
            return None
        for person in self._by_name.get(name, []):
            if domain and domain in _person_domains(person):
                return person
            if company and company in _person_companies(person):
                return person
        return None

    def organization(self, domain: str) -> dict[str, Any] | None:
        """The organization whose primary domain or website is ``domain``."""
        return self._orgs_by_domain.get(norm_domain(domain))


def _person_domains(person: Mapping[str, Any]) -> set[str]:
    org = person.get("organization") or {}
    candidates = (org.get("primary_domain"), org.get("website_url"), person.get("email"))
    return {norm_domain(value) for value in candidates if value}


def _person_companies(person: Mapping[str, Any]) -> set[str]:
    # Apollo matches the current *or a previous* employer.
    names = [(person.get("organization") or {}).get("name"), (person.get("account") or {}).get("name")]
    names += [job.get("organization_name") for job in person.get("employment_history") or []]
    return {norm_company(name) for name in names if name}

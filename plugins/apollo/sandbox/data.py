"""Seed documents for the sandbox and the example leads derived from the default one."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .generator import generate_people

#: The packaged seed: the Apollo reference's sample people and organizations, a generator spec for a few
#: hundred deterministic people, and a handful of contacts that already exist in the workspace.
DEFAULT_SEED: Path = Path(__file__).with_name("default_seed.json")

# People that exist nowhere in the default database, so example leads can include real misses.
_UNKNOWN_PEOPLE: tuple[tuple[str, str, str, str, str], ...] = (
    ("Wren", "Albright", "Quillmate", "quillmate.co", "Head of Growth"),
    ("Osric", "Vandermeer", "Oxbow Studio", "oxbowstudio.net", "Creative Director"),
    ("Juniper", "Castellanos", "Fernleaf Dev", "fernleaf.dev", "Staff Engineer"),
    ("Tobiah", "Okonkwo-Reyes", "Tallgrass Works", "tallgrass.works", "COO"),
    ("Maren", "Sjoberg", "Peregrine Travel", "peregrine.travel", "VP Partnerships"),
    ("Ignatius", "Farrow", "Bellwether Goods", "bellwethergoods.shop", "Buyer"),
)


@dataclass(frozen=True)
class Seed:
    """The sandbox's initial data: Apollo's people database and the workspace's existing contacts."""

    people: list[dict[str, Any]]
    contacts: list[dict[str, Any]] = field(default_factory=list)
    #: Organizations known without a person (e.g. from the org-enrichment sample); people's own
    #: ``organization`` objects are added on top of these.
    organizations: list[dict[str, Any]] = field(default_factory=list)


def _list_of_objects(doc: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{path}: {key!r} must be a list of objects")
    return value


def load_seed(path: str | Path | None = None) -> Seed:
    """Read a seed document ``{"people": [...], "contacts": [...]}``.

    Optional keys: ``organizations`` (extra organization objects) and
    ``generated_people: {"count": N, "random_seed": S}``, which appends N deterministic people.
    """
    seed_path = Path(path) if path is not None else DEFAULT_SEED
    doc = json.loads(seed_path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{seed_path}: a seed document must be a JSON object")
    people = _list_of_objects(doc, "people", seed_path)
    spec = doc.get("generated_people")
    if spec:
        people = people + generate_people(int(spec["count"]), int(spec["random_seed"]))
    for person in people:
        if not isinstance(person.get("id"), str):
            raise ValueError(f"{seed_path}: every person needs a string 'id'")
    return Seed(
        people=people,
        contacts=_list_of_objects(doc, "contacts", seed_path),
        organizations=_list_of_objects(doc, "organizations", seed_path),
    )


def _norm(text: Any) -> str:
    return " ".join(str(text or "").lower().split())


def _lead(person: dict[str, Any], email: str, website: str) -> dict[str, str]:
    org = person.get("organization") or {}
    return {
        "First Name": person["first_name"],
        "Last Name": person["last_name"],
        "Email": email,
        "Company": org.get("name") or "",
        "Website": website,
        "Title": person.get("title") or "",
    }


def _people_with_contacts(seed: Seed) -> list[dict[str, Any]]:
    """People of the database that a seed contact already stands for (by email, else name + company)."""
    by_email = {_norm(p.get("email")): p for p in seed.people if p.get("email")}
    by_name_org = {(_norm(p.get("name")), _norm((p.get("organization") or {}).get("name"))): p for p in seed.people}
    found: list[dict[str, Any]] = []
    for contact in seed.contacts:
        name = _norm(contact.get("name") or f"{contact.get('first_name', '')} {contact.get('last_name', '')}")
        person = by_email.get(_norm(contact.get("email"))) or by_name_org.get(
            (name, _norm(contact.get("organization_name")))
        )
        if person is not None and person.get("email") and person not in found:
            found.append(person)
    return found


def example_leads(n: int = 25) -> list[dict[str, str]]:
    """Deterministic lead rows for demos, built from :data:`DEFAULT_SEED`.

    Keys: ``First Name, Last Name, Email, Company, Website, Title``. With ``n >= 3`` the rows always mix
    three kinds: people of the sandbox database (some emails with odd case or surrounding spaces, which a
    client must normalise), people who already have a contact in the default seed (so a dedupe run
    reports them as existing), and people unknown to the database (unmatched).
    """
    if n <= 0:
        return []
    seed = load_seed(DEFAULT_SEED)
    rng = random.Random(20240501)
    existing = _people_with_contacts(seed)
    n_unmatched = min(len(_UNKNOWN_PEOPLE), max(1, n // 8)) if n >= 3 else 0
    n_existing = min(len(existing), max(1, n // 8)) if n >= 2 else 0
    n_matched = n - n_unmatched - n_existing
    pool = [p for p in seed.people if p.get("email_status") == "verified" and p.get("email") and p not in existing]
    if n_matched > len(pool):
        raise ValueError(f"example_leads supports at most {len(pool) + n_existing + n_unmatched} rows")

    rows: list[dict[str, str]] = []
    for person in existing[:n_existing]:
        rows.append(_lead(person, person["email"], person["organization"].get("website_url") or ""))
    for index, person in enumerate(rng.sample(pool, n_matched)):
        email: str = person["email"]
        domain = person["organization"].get("primary_domain") or ""
        # Every third address is mangled the way spreadsheets do it: capitals, stray spaces.
        if index % 3 == 1:
            local, _, host = email.partition("@")
            email = f"{local.capitalize()}@{host.upper()}" if index % 2 else f"  {email.upper()} "
        website = (f"https://{domain}/", domain, f"http://www.{domain}")[index % 3] if domain else ""
        rows.append(_lead(person, email, website))
    for first, last, company, domain, title in _UNKNOWN_PEOPLE[:n_unmatched]:
        rows.append(
            {
                "First Name": first,
                "Last Name": last,
                "Email": f"{first.lower()}.{last.lower()}@{domain}",
                "Company": company,
                "Website": f"https://www.{domain}",
                "Title": title,
            }
        )
    rng.shuffle(rows)
    return rows

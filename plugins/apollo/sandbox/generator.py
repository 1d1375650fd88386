"""Deterministic fake people for the sandbox's database.

Generating at load time from a fixed seed keeps the packaged seed file tiny while giving every run the
same few hundred people, so example data and tests can rely on them.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

_FIRST_NAMES = (  # noqa: SIM905 - a long word list reads best as prose
    "Ava Liam Olivia Noah Emma Ethan Sophia Mason Isabella Lucas Mia Logan Amelia Elijah Harper James "
    "Evelyn Aiden Abigail Benjamin Emily Carter Ella Daniel Scarlett Henry Grace Owen Chloe Samuel Priya "
    "Arjun Mei Hiroshi Yuki Sofia Mateo Lucia Diego Fatima Omar Leila Jonas Greta Lars Ingrid Marta Pavel "
    "Anika Rafael Camila Tomas Nadia Kofi Amara Chen Wei Jin Hana Zoe"
).split()

_LAST_NAMES = (  # noqa: SIM905 - a long word list reads best as prose
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Patel Kim Schmidt Muller Rossi Novak "
    "Tanaka Okafor Haddad Lindqvist"
).split()

# name|domain|industry|employees|city|state|country code; phone numbers are derived from the position.
_ORGANIZATION_TABLE = """
Brightforge Labs|brightforge.io|computer software|85|Austin|Texas|US
Northwind Analytics|northwindanalytics.com|information technology & services|240|Seattle|Washington|US
Copperline Logistics|copperline.co|logistics & supply chain|1300|Chicago|Illinois|US
Helio Health|heliohealth.com|hospital & health care|560|Boston|Massachusetts|US
Quantrell Capital|quantrell.com|financial services|120|New York|New York|US
Pinecrest Outdoor|pinecrestoutdoor.com|retail|410|Denver|Colorado|US
Lumen Robotics|lumenrobotics.ai|machinery|75|Pittsburgh|Pennsylvania|US
Saltmarsh Media|saltmarsh.media|marketing & advertising|48|Los Angeles|California|US
Tidewater Energy|tidewaterenergy.com|oil & energy|2200|Houston|Texas|US
Orchard Education|orchardedu.org|education management|320|Atlanta|Georgia|US
Vantage Freight|vantagefreight.com|transportation/trucking/railroad|900|Memphis|Tennessee|US
Kestrel Security|kestrelsec.com|computer & network security|150|Arlington|Virginia|US
Bluefin Foods|bluefinfoods.com|food & beverages|780|Portland|Oregon|US
Meridian Legal Group|meridianlegal.com|law practice|95|Philadelphia|Pennsylvania|US
Granite Peak Construction|granitepeak.build|construction|640|Salt Lake City|Utah|US
Nimbus Cloudworks|nimbuscloudworks.com|computer software|330|San Francisco|California|US
Aurora Biotech|aurorabio.com|biotechnology|210|San Diego|California|US
Fieldstone Insurance|fieldstoneins.com|insurance|1500|Hartford|Connecticut|US
Redwood Hospitality|redwoodhospitality.com|hospitality|2600|Las Vegas|Nevada|US
Cobalt Payments|cobaltpay.io|financial services|260|Miami|Florida|US
Harbor & Finch|harborfinch.co.uk|management consulting|180|London|England|UK
Wolkenwerk|wolkenwerk.de|information technology & services|140|Berlin|Berlin|DE
Maple Ridge Software|mapleridge.ca|computer software|90|Toronto|Ontario|CA
Solstice Renewables|solsticerenew.com|renewables & environment|370|Phoenix|Arizona|US
Ironclad Manufacturing|ironcladmfg.com|mechanical or industrial engineering|1100|Detroit|Michigan|US
Lattice Data|latticedata.io|computer software|60|Boulder|Colorado|US
Verdant Agritech|verdantagri.com|farming|230|Des Moines|Iowa|US
Crescent Realty|crescentrealty.com|real estate|310|Charlotte|North Carolina|US
"""
_COUNTRIES = {"US": "United States", "UK": "United Kingdom", "DE": "Germany", "CA": "Canada"}


def _org_specs() -> list[tuple[str, str, str, int, str, str, str]]:
    specs = []
    for line in _ORGANIZATION_TABLE.strip().splitlines():
        name, domain, industry, employees, city, state, country = line.split("|")
        specs.append((name, domain, industry, int(employees), city, state, _COUNTRIES[country]))
    return specs


# (title, seniority, departments, subdepartments, functions)
_ROLES: tuple[tuple[str, str, str, str, str], ...] = (
    ("Chief Executive Officer", "c_suite", "c_suite", "executive", "entrepreneurship"),
    ("Chief Technology Officer", "c_suite", "c_suite", "technology_executive", "engineering"),
    ("VP of Sales", "vp", "master_sales", "sales", "sales"),
    ("Head of Marketing", "head", "master_marketing", "marketing", "marketing"),
    ("Director of Engineering", "director", "master_engineering_technical", "engineering", "engineering"),
    (
        "Senior Software Engineer",
        "senior",
        "master_engineering_technical",
        "software_development",
        "engineering",
    ),
    ("Account Executive", "senior", "master_sales", "account_management", "sales"),
    ("Sales Development Representative", "entry", "master_sales", "sales_development", "sales"),
    ("Marketing Manager", "manager", "master_marketing", "marketing", "marketing"),
    ("Product Manager", "manager", "master_product_management", "product_management", "product_management"),
    ("Data Analyst", "entry", "master_information_technology", "data_science", "data_science"),
    ("Customer Success Manager", "manager", "master_operations", "customer_success", "support"),
    ("Operations Manager", "manager", "master_operations", "operations", "operations"),
    ("Technical Recruiter", "entry", "master_human_resources", "talent_acquisition", "human_resources"),
    ("Finance Director", "director", "master_finance", "finance", "finance"),
    ("Founder", "founder", "c_suite", "founder", "entrepreneurship"),
)

_EMAIL_FORMATS = ("{f}.{l}", "{f}", "{fi}{l}", "{f}{li}")


def object_id(rng: random.Random) -> str:
    """A 24-hex-char id shaped like a MongoDB ObjectId (timestamp prefix), as Apollo's ids are."""
    timestamp = rng.randint(0x57000000, 0x65000000)
    return f"{timestamp:08x}{rng.getrandbits(64):016x}"


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _digits(phone: str) -> str:
    return "+" + "".join(ch for ch in phone if ch.isdigit())


def _organization(rng: random.Random, index: int, spec: tuple[str, str, str, int, str, str, str]) -> dict[str, Any]:
    name, domain, industry, employees, city, state, country = spec
    # 555-01xx numbers are reserved for fiction.
    phone = f"+1 202-555-{100 + index:04d}"
    return {
        "id": object_id(rng),
        "name": name,
        "website_url": f"http://www.{domain}",
        "blog_url": None,
        "angellist_url": None,
        "linkedin_url": f"http://www.linkedin.com/company/{_slug(name)}",
        "twitter_url": None,
        "facebook_url": None,
        "primary_phone": {"number": phone, "source": "Owler"},
        "languages": [],
        "alexa_ranking": rng.randint(5_000, 900_000),
        "phone": phone,
        "linkedin_uid": str(rng.randint(100_000, 90_000_000)),
        "founded_year": rng.randint(1985, 2021),
        "publicly_traded_symbol": None,
        "publicly_traded_exchange": None,
        "logo_url": None,
        "crunchbase_url": None,
        "primary_domain": domain,
        "sanitized_phone": _digits(phone),
        "industry": industry,
        "keywords": [],
        "estimated_num_employees": employees,
        "industries": [industry],
        "secondary_industries": [],
        "raw_address": f"{city.lower()}, {state.lower()}, {country.lower()}",
        "city": city,
        "state": state,
        "country": country,
    }


def generate_people(count: int, random_seed: int) -> list[dict[str, Any]]:
    """``count`` person objects shaped like Apollo's, identical for the same arguments."""
    rng = random.Random(random_seed)
    organizations = [_organization(rng, index, spec) for index, spec in enumerate(_org_specs())]
    used_emails: set[str] = set()
    people: list[dict[str, Any]] = []
    for _ in range(count):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        org = organizations[rng.randrange(len(organizations))]
        title, seniority, department, subdepartment, function = rng.choice(_ROLES)
        local = rng.choice(_EMAIL_FORMATS).format(
            f=first.lower(), l=last.lower(), fi=first[0].lower(), li=last[0].lower()
        )
        email = f"{local}@{org['primary_domain']}"
        suffix = 2
        while email in used_emails:
            # Two people with the same name at one company get distinct addresses, as in real mailboxes.
            email = f"{local}{suffix}@{org['primary_domain']}"
            suffix += 1
        used_emails.add(email)
        roll = rng.random()
        # A few people have no known email: real enrichment returns such matches too.
        email_status = "verified" if roll < 0.85 else "extrapolated" if roll < 0.95 else "unavailable"
        known_email = email if email_status != "unavailable" else None
        person_id = object_id(rng)
        phones = [
            {
                "raw_number": org["phone"],
                "sanitized_number": org["sanitized_phone"],
                "type": "work_hq",
                "position": 0,
                "status": "no_status",
                "dnc_status": None,
                "dnc_other_info": None,
            }
        ]
        if rng.random() < 0.35:
            mobile = f"+1 555-01{rng.randint(0, 99):02d}-{rng.randint(1000, 9999)}"
            phones.append(
                {
                    "raw_number": mobile,
                    "sanitized_number": _digits(mobile),
                    "type": "mobile",
                    "position": 1,
                    "status": "valid_number",
                    "dnc_status": None,
                    "dnc_other_info": None,
                }
            )
        has_personal = rng.random() < 0.3
        personal = [f"{first.lower()}{last.lower()}{rng.randint(1, 99)}@gmail.com"] if has_personal else []
        start_year = rng.randint(2012, 2023)
        employment_id = object_id(rng)
        linkedin = f"http://www.linkedin.com/in/{first.lower()}-{last.lower()}-{rng.getrandbits(32):08x}"
        people.append(
            {
                "id": person_id,
                "first_name": first,
                "last_name": last,
                "name": f"{first} {last}",
                "linkedin_url": linkedin,
                "title": title,
                "email_status": email_status,
                "photo_url": None,
                "twitter_url": None,
                "github_url": None,
                "facebook_url": None,
                "extrapolated_email_confidence": 0.8 if email_status == "extrapolated" else None,
                "headline": f"{title} at {org['name']}",
                "email": known_email,
                "organization_id": org["id"],
                "employment_history": [
                    {
                        "_id": employment_id,
                        "created_at": None,
                        "current": True,
                        "degree": None,
                        "description": None,
                        "emails": None,
                        "end_date": None,
                        "grade_level": None,
                        "kind": None,
                        "major": None,
                        "organization_id": org["id"],
                        "organization_name": org["name"],
                        "raw_address": None,
                        "start_date": f"{start_year}-{rng.randint(1, 12):02d}-01",
                        "title": title,
                        "updated_at": None,
                        "id": employment_id,
                        "key": employment_id,
                    }
                ],
                "state": org["state"],
                "city": org["city"],
                "country": org["country"],
                "organization": dict(org),
                "phone_numbers": phones,
                "intent_strength": None,
                "show_intent": False,
                "revealed_for_current_team": True,
                "hashed_email": hashlib.md5(email.encode()).hexdigest() if known_email else None,
                "personal_emails": personal,
                "departments": [department],
                "subdepartments": [subdepartment],
                "functions": [function],
                "seniority": seniority,
            }
        )
    return people

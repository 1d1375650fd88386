"""The API path does each piece of per-person work once: the identity of a record is computed once and carried,
answers are joined by the cheapest identity that places them (hashes and names only when needed, with the same
result as comparing every key), and httpcore's probe of the event loop imports its helper once, not per
connection."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connector_core.cli import main
from crmsync_plugins.apollo import bulk_match, identity
from crmsync_plugins.apollo.identity import (
    _by_name,
    _contradicts,
    email_hashes,
    full_name,
    identity_keys,
    join_answers,
    norm,
    norm_linkedin,
    person_key,
)

from .conftest import env, people, write_job, write_leads

PEOPLE = [
    {"id": "P1", "email": "a@x.io", "first_name": "A", "last_name": "B"},
    {"email": " Ada@Example.com ", "linkedin_url": "linkedin.com/in/ada"},
    {"hashed_email": "ABC123", "first_name": "Ada", "last_name": "L", "domain": "x.io"},
    {"linkedin_url": "https://www.linkedin.com/in/cy/"},
    {"first_name": "Bob", "last_name": "Stone", "organization_name": "Stone"},
    {"name": "Bob Stone", "organization": {"primary_domain": "stone.io"}},
    {"first_name": "Solo"},
    {},
]


@pytest.mark.parametrize("person", PEOPLE)
def test_person_key_is_the_strongest_identity_key(person: dict) -> None:
    assert person_key(person) == (identity_keys(person) or [""])[0]


def test_email_hashes_are_both_digests_sorted() -> None:
    data = b"ada@example.com"
    assert email_hashes("ada@example.com") == tuple(
        sorted((hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()))
    )


def test_each_record_identity_is_computed_once_and_each_email_hashed_once(tmp_path: Path, sandbox, monkeypatch) -> None:
    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    rows = people(30)
    write_leads(tmp_path, rows)
    spec = write_job(tmp_path, state=True)
    calls: list[str] = []

    def counted(detail: dict) -> str:
        key = person_key(detail)
        calls.append(key)
        return key

    hashed: list[str] = []

    def counted_hashes(email: str) -> tuple[str, str]:
        hashed.append(email)
        return email_hashes(email)

    monkeypatch.setattr(bulk_match, "person_key", counted)
    monkeypatch.setattr(identity, "email_hashes", counted_hashes)
    assert main(["-q", "run", str(spec)]) == 0
    assert len(calls) == 30  # asked, cached, deduplicated in flight and remembered under one computed key
    assert len(hashed) <= 30  # answers are joined by id or email: hashes only for the rare answer without
    calls.clear()
    assert main(["-q", "run", str(spec), "--full-refresh"]) == 0  # every answer from the cache
    assert len(calls) == 30


PROBE = """
import asyncio, importlib.abc, json, sys

import httpx

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxServer

lookups = []


class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sniffio":
            lookups.append(name)
        return None


sys.meta_path.insert(0, Spy())


async def calls(url):
    for _ in range(5):  # a new client each time: a new connection and its locks each time
        async with httpx.AsyncClient() as client:
            (await client.get(url + "/_sandbox/state")).raise_for_status()


with SandboxServer(ApolloSandbox()) as server:
    asyncio.run(calls(server.base_url))
print(json.dumps(len(lookups)))
"""


def test_httpcore_imports_its_event_loop_probe_once() -> None:
    # Without sniffio installed, httpcore retries the failed import (a scan of sys.path) at every connection set-up.
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) <= 1


def eager_keys(person: dict) -> list[str]:
    """identity_keys as it was written before the kinds were split (the reference)."""
    keys = []
    if person.get("id"):
        keys.append("id:" + norm(person["id"]))
    email = norm(person.get("email"))
    if email:
        keys.append("email:" + email)
        keys.extend("hash:" + digest for digest in sorted(email_hashes(email)))
    if person.get("hashed_email"):
        keys.append("hash:" + norm(person["hashed_email"]))
    linkedin = norm_linkedin(person.get("linkedin_url"))
    if linkedin:
        keys.append("linkedin:" + linkedin)
    name = full_name(person)
    if name:
        organization = person.get("organization") or {}
        domains = {norm(person.get("domain")), norm(organization.get("primary_domain"))}
        companies = {norm(person.get("organization_name")), norm(organization.get("name"))}
        keys.extend(f"name+domain:{name}|{d}" for d in sorted(domains) if d)
        keys.extend(f"name+org:{name}|{c}" for c in sorted(companies) if c)
    return keys


@pytest.mark.parametrize("person", PEOPLE)
def test_identity_keys_keep_their_order(person: dict) -> None:
    assert identity_keys(person) == eager_keys(person)


def eager_join(questions: list[dict], answers: list[dict | None]) -> dict[int, Any]:
    """The join as it was, every identity key of every question and answer computed up front (the reference)."""
    positional = len(answers) == len(questions)
    index: dict[str, list[int]] = {}
    for position, question in enumerate(questions):
        for key in eager_keys(question):
            index.setdefault(key, []).append(position)
    joined: dict[int, Any] = {}
    unplaced = []
    for position, answer in enumerate(answers):
        if answer is None:
            continue
        target = next(
            (p for key in eager_keys(answer) for p in index.get(key, ()) if p not in joined),
            None,
        )
        if target is None and positional and position not in joined and not _contradicts(questions[position], answer):
            target = position
        if target is None:
            unplaced.append(answer)
        else:
            joined[target] = answer
    orphans = 0
    for answer in unplaced:
        target = _by_name(questions, answer, joined)
        if target is None:
            orphans += 1
            target = -orphans
        joined[target] = answer
    return joined


def test_the_lazy_join_places_every_answer_as_the_eager_one_did() -> None:
    rng = random.Random(7)
    names = [("Ada", "Lee"), ("Bob", "Stone"), ("Cy", "Young"), ("Ada", "Stone")]
    for _ in range(3000):
        people = []
        for n in range(rng.randint(1, 6)):
            first, last = rng.choice(names)
            email = f"{first}.{last}{rng.randint(0, 2)}@x{n % 2}.io".lower()
            people.append(
                {
                    "id": f"id{rng.randint(0, 5)}",
                    "email": email,
                    "first_name": first,
                    "last_name": last,
                    "linkedin_url": rng.choice([None, f"https://linkedin.com/in/{first}-{last}"]),
                    "organization": {"primary_domain": f"x{n % 2}.io", "name": rng.choice(["X", "Y"])},
                    "hashed_email": rng.choice([None, hashlib.md5(email.encode()).hexdigest()]),
                }
            )
        questions = []
        for person in people:
            fields = rng.sample(["id", "email", "first_name", "last_name", "linkedin_url", "hashed_email"], 3)
            question = {field: person[field] for field in fields if person[field]}
            if rng.random() < 0.5:
                question["domain"] = person["organization"]["primary_domain"]
            questions.append(question)
        answers: list[dict | None] = [
            {k: v for k, v in p.items() if rng.random() < 0.7 or k == "id"} if rng.random() < 0.8 else None
            for p in people
        ]
        if rng.random() < 0.5:
            rng.shuffle(answers)
        if rng.random() < 0.3:
            answers = [a for a in answers if a is not None]
        assert join_answers(questions, answers) == eager_join(questions, answers), (questions, answers)


def test_request_fields_are_worked_out_once_in_a_stable_order() -> None:
    from connector_core.records import Record
    from crmsync_plugins.apollo.bulk_match import BulkMatch, BulkMatchOptions
    from crmsync_plugins.apollo.contacts import ContactsOptions, ContactsSink

    data = {"email": "a@x.io", "first_name": "Ada", "last_name": "Lee", "org": "X", "work_email": "w@x.io"}
    record = Record(data, "a@x.io", "leads", 1)
    sink = ContactsSink("contacts", ContactsOptions(connection="apollo", fields={"organization_name": "org"}), None)
    # Apollo's field order, then the mapped extras: the same request body in every process (a set's order was not).
    assert list(sink.contact(record)) == ["first_name", "last_name", "email", "organization_name"]
    assert sink._field_sources is sink._field_sources
    mapper = BulkMatch("enrich", BulkMatchOptions(connection="apollo", match={"email": "work_email"}), None)
    assert mapper.detail(record) == {"first_name": "Ada", "last_name": "Lee", "email": "w@x.io"}
    assert mapper._detail_sources is mapper._detail_sources


def eager_contact_keys(contact: dict) -> list[str]:
    """The contacts sink's join keys as they were computed before the kinds were split (the reference)."""
    keys = []
    email = norm(contact.get("email"))
    if email:
        keys.append("email:" + email)
    for crm_id in ("salesforce_id", "hubspot_id"):
        if contact.get(crm_id):
            keys.append(f"{crm_id}:{norm(contact[crm_id])}")
    name, company = full_name(contact), norm(contact.get("organization_name"))
    if name and company:
        keys.append(f"name+org:{name}|{company}")
    if name and "@" in email:
        keys.append(f"name+org:{name}|@{email.rpartition('@')[2]}")
    if name and not email:
        keys.append(f"name:{name}")
    return keys


def eager_contact_join(contacts: list[dict], answers: list[dict]) -> tuple[list[int | None], list[int | None]]:
    """Each answer's claimed position, then each open position's twin, every key computed up front."""
    by_key: dict[str, list[int]] = {}
    for position, contact in enumerate(contacts):
        for key in eager_contact_keys(contact):
            by_key.setdefault(key, []).append(position)
    claimed: set[int] = set()
    claims: list[int | None] = []
    for answer in answers:
        found = next((p for key in eager_contact_keys(answer) for p in by_key.get(key, ()) if p not in claimed), None)
        if found is not None:
            claimed.add(found)
        claims.append(found)
    twins = []
    for position in range(len(contacts)):
        if position in claimed:
            continue
        strong = [key for key in eager_contact_keys(contacts[position]) if not key.startswith("name")]
        twins.append(next((o for key in strong for o in by_key.get(key, ()) if o != position and o in claimed), None))
    return claims, twins


def test_contacts_are_joined_by_kind_as_the_eager_join_did() -> None:
    from crmsync_plugins.apollo.contacts import _ContactIndex

    rng = random.Random(11)
    for _ in range(3000):
        contacts = []
        for _ in range(rng.randint(1, 6)):
            first, last = rng.choice([("Ada", "Lee"), ("Bob", "Stone"), ("Ada", "Stone")])
            contact = {"first_name": first, "last_name": last}
            if rng.random() < 0.8:
                contact["email"] = f"{first}{rng.randint(0, 2)}@{rng.choice(['x.io', 'y.io'])}".upper()
            for field, values in (
                ("organization_name", ["X", "@x.io", " x "]),
                ("salesforce_id", ["S1", "S2"]),
                ("hubspot_id", ["H1"]),
            ):
                if rng.random() < 0.3:
                    contact[field] = rng.choice(values)
            contacts.append(contact)
        answers = [{k: v for k, v in c.items() if rng.random() < 0.7} for c in contacts if rng.random() < 0.8]
        rng.shuffle(answers)
        index = _ContactIndex(contacts)
        claims = [index.claim(answer) for answer in answers]
        twins = [index.twin(position) for position in index.unclaimed()]
        assert (claims, twins) == eager_contact_join(contacts, answers), (contacts, answers)


def _calls_started_over(sandbox: Any, monkeypatch: pytest.MonkeyPatch, gate: bool) -> int:
    """Rounds of eight calls sent together through the real sandbox (loopback HTTP); how many of them httpcore
    had to start over because another call took the connection it was handed."""
    import asyncio

    import httpcore._async.http11 as http11
    from httpcore import ConnectionNotAvailable

    from crmsync_plugins.apollo.client import ApolloClient
    from crmsync_plugins.apollo.settings import ApolloSettings

    started_over: list[int] = []
    handle = http11.AsyncHTTP11Connection.handle_async_request

    async def counted(self: Any, request: Any) -> Any:
        try:
            return await handle(self, request)
        except ConnectionNotAvailable:
            started_over.append(1)
            raise

    monkeypatch.setattr(http11.AsyncHTTP11Connection, "handle_async_request", counted)

    async def rounds() -> None:
        client = ApolloClient(ApolloSettings(api_key="k", base_url=sandbox.base_url, max_connections=8))
        if not gate:
            client._pool_entry = None
        details = [{"email": person["email"]} for person in people(8)]
        try:
            for _ in range(5):
                await asyncio.gather(*(client.post("people/bulk_match", {"details": [d]}) for d in details))
        finally:
            await client.aclose()

    asyncio.run(rounds())
    return len(started_over)


def test_calls_sent_together_each_claim_their_own_connection(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the pool entry, calls that start together are all handed the first idle connection.
    assert _calls_started_over(sandbox, monkeypatch, gate=False) > 0
    assert _calls_started_over(sandbox, monkeypatch, gate=True) == 0


def test_the_pool_entry_is_released_when_a_call_fails_before_it_has_a_connection() -> None:
    import asyncio

    import httpx

    from crmsync_plugins.apollo.client import ApolloClient
    from crmsync_plugins.apollo.errors import ApolloUnavailable
    from crmsync_plugins.apollo.settings import ApolloSettings

    async def refused() -> None:
        # Port 9 on loopback: the connection is refused, every attempt fails before a request is sent.
        settings = ApolloSettings(api_key="k", base_url="http://127.0.0.1:9", max_attempts=2, backoff_s=0.001)
        client = ApolloClient(settings)
        assert client._pool_entry is not None
        try:
            with pytest.raises(ApolloUnavailable):
                await client.post("people/bulk_match", {"details": []})
            assert not client._pool_entry.locked()
            with pytest.raises(httpx.UnsupportedProtocol):  # refused by httpx before it reaches the pool
                await client._send("GET", "ftp://example.com/")
            assert not client._pool_entry.locked()
        finally:
            await client.aclose()

    asyncio.run(refused())


def test_a_call_is_traced_only_until_it_holds_its_connection(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool entry's trace callback is dropped once it fired: the rest of the request is not traced."""
    import asyncio

    from httpcore._trace import Trace

    from crmsync_plugins.apollo.client import ApolloClient
    from crmsync_plugins.apollo.settings import ApolloSettings

    traced: list[str] = []
    atrace = Trace.atrace

    async def counted(self: Trace, name: str, info: dict[str, Any]) -> None:
        if self.trace_extension is not None:
            traced.append(name)
        await atrace(self, name, info)

    monkeypatch.setattr(Trace, "atrace", counted)

    async def calls() -> list[dict[str, Any]]:
        client = ApolloClient(ApolloSettings(api_key="k", base_url=sandbox.base_url, max_connections=2))
        details = [{"email": person["email"]} for person in people(6)]
        try:
            return list(await asyncio.gather(*(client.post("people/bulk_match", {"details": [d]}) for d in details)))
        finally:
            await client.aclose()

    answers = asyncio.run(calls())
    assert all(answer["matches"][0] for answer in answers)  # the answers are read in full
    # The step in progress when the connection was claimed ends (started + complete): two events a call, not ten.
    assert 6 <= len(traced) <= 2 * 6, traced


def test_an_apollo_run_reads_answers_into_heap_memory(tmp_path: Path, sandbox, monkeypatch) -> None:
    """The connection moves malloc's threshold before the first answer is read (see connector_core/heap.py)."""
    from crmsync_plugins.apollo import connection

    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    write_leads(tmp_path, people(3))
    spec = write_job(tmp_path, state=False)
    moved: list[bool] = []
    monkeypatch.setattr(connection, "keep_read_buffers_on_the_heap", lambda: moved.append(True))
    assert main(["-q", "run", str(spec)]) == 0
    assert moved == [True]

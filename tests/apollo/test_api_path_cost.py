"""The API path does each piece of per-person work once: the identity of a record is computed once and carried,
an email is hashed once, and httpcore's probe of the event loop imports its helper once, not per connection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector_core.cli import main
from crmsync_plugins.apollo import bulk_match
from crmsync_plugins.apollo.identity import email_hashes, identity_keys, person_key

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
    import hashlib

    data = b"ada@example.com"
    assert email_hashes("ada@example.com") == tuple(
        sorted((hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()))
    )


def test_each_record_identity_is_computed_once_and_each_email_hashed_once(
    tmp_path: Path, sandbox, monkeypatch
) -> None:
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

    monkeypatch.setattr(bulk_match, "person_key", counted)
    email_hashes.cache_clear()
    assert main(["-q", "run", str(spec)]) == 0
    assert len(calls) == 30  # asked, cached, deduplicated in flight and remembered under one computed key
    assert email_hashes.cache_info().misses <= 30  # the question and its answer share one email's hashes
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

"""Pytest fixtures for crmsync jobs and plugins, loaded in every pytest run through the ``pytest11`` entry point.

- ``crmsync_job(yaml_text, environ=None, **kwargs)`` writes a spec into the test's folder and runs it; the
  environment defaults to the test's own (so ``monkeypatch.setenv`` and ``apollo_sandbox`` apply).
- ``read_stream("out/created.jsonl")`` reads an output file of that folder (JSONL or CSV).
- ``apollo_sandbox`` serves a local Apollo on loopback for the test and points ``APOLLO_BASE_URL`` and
  ``APOLLO_API_KEY`` at it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from connector_core.report import RunReport
from connector_core.testing import read_csv, read_jsonl, run_job, write_spec

#: The key ``apollo_sandbox`` sets: the sandbox accepts any key, and this one is masked like a real one.
SANDBOX_KEY = "sandbox-test-key"


@pytest.fixture
def crmsync_job(tmp_path: Path) -> Callable[..., RunReport]:
    """Write a spec into a temporary folder and run it: ``report = crmsync_job(yaml_text)``."""

    def run(text: str, environ: Mapping[str, str] | None = None, **kwargs: Any) -> RunReport:
        return run_job(write_spec(tmp_path, text), dict(os.environ) if environ is None else environ, **kwargs)

    return run


@pytest.fixture
def read_stream(tmp_path: Path) -> Callable[[str], list[dict[str, Any]]]:
    """Read an output file of the test's folder: ``read_stream("out.jsonl")`` (``.csv`` files by header)."""

    def read(name: str) -> list[dict[str, Any]]:
        path = tmp_path / name
        return list(read_csv(path)) if path.suffix == ".csv" else read_jsonl(path)

    return read


@pytest.fixture
def apollo_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local Apollo sandbox for this test; ``APOLLO_BASE_URL``/``APOLLO_API_KEY`` point at it meanwhile."""
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxServer

    with SandboxServer(ApolloSandbox()) as server:
        monkeypatch.setenv("APOLLO_BASE_URL", server.base_url)
        monkeypatch.setenv("APOLLO_API_KEY", SANDBOX_KEY)
        yield server

"""Helpers for testing jobs and plugins; also a pytest plugin (``-p connector_core.testing``) for plugin authors."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from connector_core.engine import run_sync
from connector_core.plugin_manager import get_plugin_host
from connector_core.report import RunReport
from connector_core.spec.loader import load_spec
from connector_core.spec.model import SyncSpec


def write_spec(folder: Path, text: str, name: str = "job.yaml") -> Path:
    """Write a spec (dedented) into ``folder`` and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(path: Path, environ: Mapping[str, str] | None = None, plugins: Iterable[tuple[str, object]] = ()) -> SyncSpec:
    """Load a spec with every installed plugin plus ``plugins``."""
    return load_spec(path, get_plugin_host(extra_plugins=plugins), environ or {})


def run_job(
    path: Path,
    environ: Mapping[str, str] | None = None,
    plugins: Iterable[tuple[str, object]] = (),
    max_error_rate: float | None = None,
) -> RunReport:
    """Load and run the spec at ``path``; returns the report (the run's failures are in it, not raised)."""
    host = get_plugin_host(extra_plugins=plugins)
    return run_sync(load_spec(path, host, environ or {}), host, max_error_rate=max_error_rate)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def crmsync_job(tmp_path: Path) -> Any:
    """Write a spec into a temporary folder and run it: ``report = crmsync_job(yaml_text)``."""

    def run(text: str, environ: Mapping[str, str] | None = None, **kwargs: Any) -> RunReport:
        return run_job(write_spec(tmp_path, text), environ, **kwargs)

    return run

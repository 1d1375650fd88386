"""The test kit for jobs and plugins: helpers here, fixtures in :mod:`connector_core.testing.plugin` (a pytest
plugin loaded automatically through the ``pytest11`` entry point) and standard test classes to subclass in
:mod:`connector_core.testing.conformance`.
"""

from __future__ import annotations

import csv
import json
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from connector_core import api
from connector_core.report import RunReport
from connector_core.spec.model import SyncSpec


def write_spec(folder: Path, text: str, name: str = "job.yaml") -> Path:
    """Write a spec (dedented) into ``folder`` and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(path: Path, environ: Mapping[str, str] | None = None, plugins: Iterable[tuple[str, object]] = ()) -> SyncSpec:
    """Load a spec with every installed plugin plus ``plugins``; ``environ`` defaults to an empty environment."""
    return api.load(path, environ=environ or {}, plugins=plugins)[0]


def run_job(
    path: Path,
    environ: Mapping[str, str] | None = None,
    plugins: Iterable[tuple[str, object]] = (),
    max_error_rate: float | None = None,
    state: Path | None = None,
) -> RunReport:
    """Load and run the spec at ``path``; returns the report (the run's failures are in it, not raised).

    ``environ`` defaults to an empty environment, so a test never depends on the machine running it. The run
    keeps durable state only in ``state`` (a test's runs are independent unless it says otherwise).
    """
    return api.run(
        path,
        environ=environ or {},
        plugins=plugins,
        max_error_rate=max_error_rate,
        state=state,
        no_state=state is None,
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines to ``path`` and return it."""
    path.write_text("".join(json.dumps(dict(row)) + "\n" for row in rows), encoding="utf-8")
    return path

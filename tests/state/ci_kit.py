"""Helpers for tests that run jobs as real processes, as CI runners would: separate folders, hostnames, signals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector_core.testing import read_jsonl
from crmsync_plugins.apollo.sandbox import SandboxServer

from ..apollo.conftest import env, write_job, write_leads

#: Outputs that accumulate over runs (journaled), and those that list only the current run's records.
KEPT_OUTPUTS = ("created", "existing", "missing")
RUN_OUTPUTS = ("skipped", "errors")


def can_set_hostname() -> bool:
    """Whether this test process may run a child under its own hostname (root + ``unshare --uts``)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--uts", "hostname", "probe"], capture_output=True)
    return probe.returncode == 0


def command(spec: Path, *args: str, host: str | None = None) -> list[str]:
    """``crmsync run SPEC ARGS`` as argv, on its own hostname when ``host`` is given."""
    argv = [sys.executable, "-m", "connector_core", "run", str(spec), *args]
    if host is None:
        return argv
    return ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *argv]


def start(argv: list[str], server: SandboxServer, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv, env={**os.environ, **env(server)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def job_folder(folder: Path, rows: list[dict[str, Any]], state: str) -> Path:
    """A runner's checkout: the leads and the standard test job with the given ``state:`` settings."""
    folder.mkdir(parents=True, exist_ok=True)
    write_leads(folder, rows)
    spec = write_job(folder, enrich="concurrency: 1", contacts="batch_size: 20")
    text = spec.read_text().replace("job: apollo-test\n", f"job: apollo-test\nstate: {state}\n", 1)
    spec.write_text(text)
    return spec


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def check_exactly_once(kept_folders: list[Path], last: Path, keys: list[str], server: SandboxServer) -> None:
    """Every key ends in exactly one terminal output over all runners' folders; no contact was created twice."""
    seen: Counter[str] = Counter()
    files = [folder / "out" / f"{name}.jsonl" for folder in kept_folders for name in KEPT_OUTPUTS]
    files += [last / "out" / f"{name}.jsonl" for name in RUN_OUTPUTS]
    for path in files:
        if path.exists():
            lines = path.read_text().splitlines()
            assert len(lines) == len(set(lines)), f"duplicate line in {path}"
            seen.update(r["_key"] for r in read_jsonl(path))
    assert seen == Counter(keys), "every input record must end in exactly one terminal output"
    emails = [c["email"] for c in server.sandbox.state()["contacts"] if c.get("email")]
    assert len(emails) == len(set(emails)), "a contact was created twice"

"""Memory stays flat when a large source meets a slow sink through a mapper (a real ``crmsync run`` process).

A 300,000-row CSV goes through ``fields`` into ``apollo.contacts`` against a sandbox answering after 400 ms:
the sink takes ~250 records/s, the source could give ~100,000/s. Without back-pressure end to end the
process holds the whole file within seconds (459 MiB in 15 s before the fix); with it, it reads only as fast
as contacts are created. The run is stopped after a while: the sink would need ten minutes to finish.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from connector_core.testing import write_spec
from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

ROWS = 300_000
WATCH_S = 12.0
MAX_PEAK_MIB = 150

SPEC = """
version: 1
job: memory
public_env: [APOLLO_BASE_URL]
connections:
  apollo: {{type: apollo, base_url: "${{APOLLO_BASE_URL}}", api_key: "${{APOLLO_API_KEY}}"}}
sources:
  leads: {{type: csv, path: {csv}, key: Email}}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      first_name: {{from: First Name, strip: true}}
      last_name: {{from: Last Name, strip: true}}
      email: {{from: Email, transform: [strip, lower], required: true}}
      organization_name: {{from: Company}}
      title: {{from: Title}}
sinks:
  contacts: {{type: apollo.contacts, connection: apollo, inputs: [people]}}
"""


def write_leads(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["First Name", "Last Name", "Email", "Company", "Title", "Notes"])
        for i in range(rows):
            writer.writerow([f" Lead{i} ", f"Person{i % 977}", f"Lead{i}@Example{i % 5000}.com", f"Company {i % 5000}",
                             "Engineer", "x" * 120])  # fmt: skip


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set so far (``VmHWM``, kept by the kernel), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_peak_rss_stays_flat_for_a_large_csv_through_a_mapper_into_a_slow_sink(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    write_leads(leads, ROWS)
    spec = write_spec(tmp_path, SPEC.format(csv=leads))
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=400))) as server:
        env = {**os.environ, "APOLLO_BASE_URL": server.base_url, "APOLLO_API_KEY": "test-key"}
        run = subprocess.Popen(
            [sys.executable, "-m", "connector_core", "-q", "run", str(spec)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + WATCH_S
            peak = 0.0
            while time.monotonic() < deadline and run.poll() is None:
                peak = max(peak, peak_rss_mib(run.pid))
                time.sleep(0.2)
            assert run.poll() is None, run.stderr.read().decode() if run.stderr else ""
            peak = max(peak, peak_rss_mib(run.pid))
        finally:
            run.kill()
            run.wait(10)
        created = len(server.sandbox.contacts)
    assert created >= 1000, "the sink never got going: the test measured nothing"
    assert peak < MAX_PEAK_MIB, f"peak RSS {peak:.0f} MiB with {created} contacts created"

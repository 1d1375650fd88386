"""Start-up stays light: ``crmsync --help`` imports no engine, state, spec loader, HTTP client or component module,
and a job without an Apollo component never loads httpx. Checked by what a fresh interpreter has imported, not
by a timing (see bench/bench_startup.py for the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules that cost start-up time and that printing the help does not need.
NOT_FOR_HELP = (
    "httpx",
    "httpcore",
    "anyio",
    "cattrs",
    "yaml",
    "attrs",
    "attr",
    "asyncio",
    "sqlite3",
    "connector_core.api",
    "connector_core.engine",
    "connector_core.components",
    "connector_core.spec.loader",
    "connector_core.state.sqlite",
    "crmsync_plugins.files.csv_source",
    "crmsync_plugins.transforms.fields",
    "crmsync_plugins.apollo.client",
)

PROBE = """
import contextlib, io, json, sys
from connector_core.cli import main
with contextlib.redirect_stdout(io.StringIO()) as help_text:
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": help_text.getvalue(), "modules": sorted(sys.modules)}))
"""


def imported_by(*argv: str, cwd: Path | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["err"] = done.stderr
    return result


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["state", "show", "--help"], ["sandbox", "--help"]])
def test_the_help_imports_nothing_heavy(argv: list[str]) -> None:
    result = imported_by(*argv)
    assert result["code"] == 0 and "usage: crmsync" in result["out"]
    loaded = set(result["modules"])
    assert sorted(loaded & set(NOT_FOR_HELP)) == []
    assert "sandbox" in imported_by("--help")["out"]  # plugin commands are still listed


FILES_JOB = """
version: 1
job: files-only
{state}
sources:
  leads: {{type: csv, path: leads.csv, key: Email}}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      email: {{from: Email, transform: [strip, lower], required: true}}
sinks:
  out: {{type: jsonl, inputs: [people], path: out.jsonl}}
"""


@pytest.mark.parametrize("state", ["state: false", "state: {path: state.db}"])
def test_a_files_only_run_never_loads_httpx(tmp_path: Path, state: str) -> None:
    (tmp_path / "leads.csv").write_text("Email\n a@x.io\nB@y.io\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(FILES_JOB.format(state=state))
    result = imported_by("-q", "run", str(spec), cwd=tmp_path)
    assert result["code"] == 0, result["err"]
    assert [json.loads(line)["email"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [
        "a@x.io",
        "b@y.io",
    ]
    loaded = set(result["modules"])
    assert not loaded & {"httpx", "httpcore", "crmsync_plugins.apollo.client"}


APOLLO_JOB = """
version: 1
job: enrich
connections:
  apollo: {type: apollo, api_key: k, base_url: "http://127.0.0.1:9"}
sources:
  leads: {type: jsonl, path: leads.jsonl, key: email}
mappers:
  enrich: {type: apollo.bulk_match, connection: apollo, inputs: [leads]}
sinks:
  contacts: {type: apollo.contacts, connection: apollo, inputs: [enrich.matched]}
  out: {type: jsonl, inputs: [contacts.created], path: out.jsonl}
"""

#: Component modules of the built-in plugins that the job above does not use: registered by place
#: (``registry.add_lazy``), they are never imported for it.
UNUSED_BY_APOLLO_JOB = (
    "crmsync_plugins.apollo.organizations",
    "crmsync_plugins.files.csv_source",
    "crmsync_plugins.files.csv_sink",
    "crmsync_plugins.files.sqlite_source",
    "crmsync_plugins.files.sqlite_sink",
    "crmsync_plugins.transforms.fields",
    "crmsync_plugins.transforms.filter",
    "crmsync_plugins.transforms.dedupe",
)


def test_a_job_imports_only_the_component_modules_it_uses(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(APOLLO_JOB)
    result = imported_by("validate", str(spec), cwd=tmp_path)
    assert result["code"] == 0, result["err"]
    loaded = set(result["modules"])
    assert {
        "crmsync_plugins.apollo.bulk_match",
        "crmsync_plugins.apollo.contacts",
        "crmsync_plugins.files.jsonl_source",
    } <= loaded
    assert sorted(loaded & set(UNUSED_BY_APOLLO_JOB)) == []

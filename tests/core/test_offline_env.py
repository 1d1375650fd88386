"""Commands that call no remote service (validate, plan, state, errors) work without secrets set; run needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector_core import testing
from connector_core.cli import main
from connector_core.errors import SpecError
from connector_core.plugin_manager import get_plugin_host
from connector_core.spec.envsubst import Unresolved
from connector_core.spec.loader import load_spec

from . import kit
from .conftest import CANARY

SPEC = """\
version: 1
job: offline
connections:
  crm:
    type: t.token
    token: ${CRM_TOKEN:?set CRM_TOKEN to your API token}
sources:
  nums: {type: t.numbers, count: 3}
sinks:
  out:
    type: t.collect
    inputs: [nums]
    connection: crm
"""


def load_offline(path: Path, environ: dict[str, str] | None = None):
    return load_spec(path, get_plugin_host(extra_plugins=[kit.KIT]), environ or {}, offline=True)


def test_an_unset_secret_is_a_warning_offline(tmp_path: Path) -> None:
    path = testing.write_spec(tmp_path, SPEC)
    spec = load_offline(path)
    token = spec.connections["crm"].options.token
    assert isinstance(token, Unresolved) and token == "${CRM_TOKEN:?set CRM_TOKEN to your API token}"
    assert spec.warnings == (
        f"{path.resolve()}:6: $.connections.crm.token: environment variable CRM_TOKEN is not set: "
        "set CRM_TOKEN to your API token; `crmsync run` needs it",
    )
    assert spec.secrets == frozenset()


def test_a_set_secret_is_resolved_offline_too(tmp_path: Path) -> None:
    spec = load_offline(testing.write_spec(tmp_path, SPEC), {"CRM_TOKEN": CANARY})
    assert spec.connections["crm"].options.token == CANARY
    assert not isinstance(spec.connections["crm"].options.token, Unresolved)
    assert spec.warnings == () and spec.secrets == {CANARY}


def test_an_unset_secret_fails_a_run_load(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r":6: \$\.connections\.crm\.token: .*set CRM_TOKEN to your API token"):
        testing.load(testing.write_spec(tmp_path, SPEC), {}, [kit.KIT])


@pytest.mark.parametrize(
    ("old", "new", "spec_path"),
    [
        ("job: offline", "job: ${JOB}", "$.job"),
        ("job: offline", "job: offline\nstate: {path: '${STATE_DIR}/state.db'}", "$.state.path"),
        ("job: offline", "job: offline\nsettings: {queue_batches: '${QUEUE}'}", "$.settings.queue_batches"),
        ("type: t.numbers, count: 3", "type: '${SOURCE_TYPE}', count: 3", "$.sources.nums.type"),
        ("count: 3", "count: '${COUNT}'", "$.sources.nums.count"),
        ("inputs: [nums]", "inputs: ['${INPUT}']", "$.sinks.out.inputs[0]"),
        ("connection: crm", "connection: ${CONNECTION}", "$.sinks.out.connection"),
    ],
)
def test_only_text_options_of_plugins_may_stay_unresolved(tmp_path: Path, old: str, new: str, spec_path: str) -> None:
    # A path, a number, a type or the job name decides what an offline command does: it must be known.
    path = testing.write_spec(tmp_path, SPEC.replace(old, new))
    with pytest.raises(SpecError) as caught:
        load_offline(path, {"CRM_TOKEN": "x" * 8})
    matching = [problem for problem in caught.value.problems if f": {spec_path}: " in problem]
    assert len(matching) == 1, caught.value.problems
    assert "is not set" in matching[0]


def test_a_path_option_needs_its_variable_offline(tmp_path: Path) -> None:
    text = SPEC + "  file:\n    type: t.file\n    inputs: [nums]\n    path: ${OUT_DIR}/out.txt\n"
    with pytest.raises(SpecError) as caught:
        load_offline(testing.write_spec(tmp_path, text), {"CRM_TOKEN": "x" * 8})
    (problem,) = caught.value.problems
    assert ": $.sinks.file.path: environment variable OUT_DIR is not set" in problem


# --- the commands, in process --------------------------------------------------------------------------------


@pytest.fixture
def spec_file(tmp_path: Path, kit_cli: object, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    return testing.write_spec(tmp_path, SPEC)


def test_validate_warns_and_succeeds(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(spec_file)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "CRM_TOKEN" in line]
    assert len(warnings) == 1, captured.err
    assert "$.connections.crm.token" in warnings[0] and f"{spec_file.resolve()}:6:" in warnings[0]
    assert "valid" in captured.out


@pytest.mark.parametrize(
    "command", [["plan"], ["state", "show"], ["state", "export"], ["errors", "list"], ["state", "reset"]]
)
def test_offline_commands_need_no_secret(
    spec_file: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, str(spec_file)]) == 0, capsys.readouterr().err


def test_run_still_needs_the_secret(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(spec_file)]) == 2
    err = capsys.readouterr().err
    assert "$.connections.crm.token: environment variable CRM_TOKEN is not set: set CRM_TOKEN to your API token" in err
    assert kit.STORE["out"] == []


# --- with the real Apollo plugin, in a subprocess ------------------------------------------------------------

APOLLO_SPEC = """\
version: 1
job: leads
connections:
  apollo:
    type: apollo
    api_key: ${APOLLO_API_KEY:?set APOLLO_API_KEY}
sources:
  leads: {type: csv, path: leads.csv, key: email}
mappers:
  enrich: {type: apollo.bulk_match, connection: apollo, inputs: [leads]}
sinks:
  matched: {type: jsonl, path: matched.jsonl, inputs: [enrich.matched]}
  missing: {type: jsonl, path: missing.jsonl, inputs: [enrich.missing]}
  skipped: {type: jsonl, path: skipped.jsonl, inputs: [enrich.skipped]}
"""


def crmsync(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_core", *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_apollo_job_without_its_key(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("email,first_name\nada@example.com,Ada\n", encoding="utf-8")
    spec = testing.write_spec(tmp_path, APOLLO_SPEC)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CRMSYNC_", "APOLLO_"))}

    validated = crmsync("validate", str(spec), environ=environ)
    assert validated.returncode == 0, validated.stderr
    assert "APOLLO_API_KEY" in validated.stderr and "$.connections.apollo.api_key" in validated.stderr
    for command in (["plan"], ["state", "show"], ["errors", "list"]):
        result = crmsync(*command, str(spec), environ=environ)
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "matched.jsonl").exists()

    run = crmsync("run", str(spec), environ=environ)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert (
        "$.connections.apollo.api_key: environment variable APOLLO_API_KEY is not set: set APOLLO_API_KEY" in run.stderr
    )

    with_key = crmsync("validate", str(spec), environ={**environ, "APOLLO_API_KEY": CANARY})
    assert with_key.returncode == 0 and "APOLLO_API_KEY" not in with_key.stderr
    assert CANARY not in with_key.stdout + with_key.stderr

"""The CLI as a process: a reader that goes away early, and third-party plugins that are broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector_core.cli import EXIT_BROKEN_PIPE

JOB = """\
version: 1
job: resilience
sources:
  people: {type: csv, path: people.csv}
sinks:
  copy: {type: jsonl, inputs: [people], path: out/people.jsonl}
"""


def crmsync(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_core", *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


# A reader that closes the pipe early: `crmsync plugins | head -1`


def with_closed_stdout(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run crmsync with a stdout pipe whose reader is gone before the interpreter has even started."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CRMSYNC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "connector_core", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
    return process.returncode, err


@pytest.mark.parametrize("argv", [["plugins"], ["validate", "job.yaml"], ["demo", "--copy-to", "copy"]])
def test_closed_stdout_ends_quietly_with_the_sigpipe_code(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name\nada\n")
    (tmp_path / "job.yaml").write_text(JOB)
    code, err = with_closed_stdout(argv, tmp_path)
    assert code == EXIT_BROKEN_PIPE, err


def test_help_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    code, _ = with_closed_stdout(["run", "--help"], tmp_path)
    assert code in (0, EXIT_BROKEN_PIPE)  # argparse itself ignores the failed write


# Broken third-party plugins


def install_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Install a distribution into ``site`` the way an installer lays it out: modules plus a ``.dist-info``."""
    for module, source in modules.items():
        (site / module).mkdir(parents=True)
        (site / module / "__init__.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    points = "".join(f"{point} = {target}\n" for point, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[crmsync]\n{points}")


BROKEN_HOOK = """\
from connector_core import hookimpl


@hookimpl
def register_sources(registry):
    raise RuntimeError("salesforce credentials file is unreadable")
"""

BROKEN_COMMAND = """\
from connector_core import hookimpl


@hookimpl
def register_commands(commands):
    commands.add("sync-now", "half registered", lambda parser: None, lambda args: 0)
    raise KeyError("sync_now_settings")
"""
#: Entry point name -> what goes wrong, as the warning must tell it.
BROKEN = {
    "broken_import": "salesforce_sdk_is_not_installed",
    "broken_hook": "salesforce credentials file is unreadable",
    "broken_command": "sync_now_settings",
}


@pytest.fixture
def broken_site(tmp_path: Path) -> dict[str, str]:
    """An environment in which a distribution ``crmsync-broken`` provides two broken plugins."""
    site = tmp_path / "site"
    install_distribution(
        site,
        "crmsync-broken",
        {name: f"crmsync_{name}" for name in BROKEN},
        {
            "crmsync_broken_import": "import salesforce_sdk_is_not_installed\n",
            "crmsync_broken_hook": BROKEN_HOOK,
            "crmsync_broken_command": BROKEN_COMMAND,
        },
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMSYNC_", "PYTHONPATH"))}
    return {**env, "PYTHONPATH": str(site)}


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if "WARNING" in line]


def test_broken_plugins_are_named_with_their_distribution_and_skipped(broken_site: dict[str, str]) -> None:
    listing = crmsync("plugins", env=broken_site)
    assert listing.returncode == 0, listing.stderr
    assert "Traceback" not in listing.stderr
    for name, problem in BROKEN.items():
        [warning] = [line for line in warnings_in(listing.stderr) if f"'{name}'" in line]
        assert problem in warning and "crmsync-broken 0.3" in warning and f"CRMSYNC_DISABLE_PLUGINS={name}" in warning
    assert "source:csv" in listing.stdout and "mapper:apollo.bulk_match" in listing.stdout  # the others work
    assert listing.stdout.count("skipped:") == len(BROKEN)
    assert "sync-now" not in crmsync("--help", env=broken_site).stdout  # a half-registered command is withdrawn


def test_commands_go_on_past_broken_plugins(broken_site: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name\nada\ngrace\n")
    (tmp_path / "job.yaml").write_text(JOB)
    validate = crmsync("validate", "job.yaml", env=broken_site, cwd=tmp_path)
    assert validate.returncode == 0 and len(warnings_in(validate.stderr)) == len(BROKEN), validate.stderr
    run = crmsync("run", "job.yaml", env=broken_site, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "people.jsonl").read_text().count("\n") == 2


def test_disabling_the_broken_plugins_silences_them(broken_site: dict[str, str]) -> None:
    quiet = crmsync("plugins", env={**broken_site, "CRMSYNC_DISABLE_PLUGINS": ",".join(BROKEN)})
    assert quiet.returncode == 0 and quiet.stderr == "" and "broken" not in quiet.stdout

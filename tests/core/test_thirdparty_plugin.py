"""A real third-party distribution (tests/thirdparty/crmsync-hello) is discovered through its entry point.

The distribution must be installed in the environment running the tests; these tests fail (not skip) when it
is not, with the command that installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from connector_core import testing
from connector_core.cli import main

HELLO_DIR = Path(__file__).resolve().parents[1] / "thirdparty" / "crmsync-hello"
INSTALL = f"{sys.executable} -m pip install -e {HELLO_DIR} --no-deps"

SPEC = """\
version: 1
job: hello-job
sources:
  greet: {type: hello.greetings, count: 3, greeting: hi}
mappers:
  loud: {type: hello.shout, inputs: [greet], field: text}
sinks:
  out: {type: hello.jsonl, inputs: [loud], path: out/greetings.jsonl}
"""


@pytest.fixture(autouse=True)
def hello_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        dist = distribution("crmsync-hello")
    except PackageNotFoundError:
        pytest.fail(f"the test plugin crmsync-hello is not installed; install it with:\n    {INSTALL}")
    assert dist.version == "0.1.0"
    import crmsync_hello

    assert Path(crmsync_hello.__file__).resolve().is_relative_to(HELLO_DIR), (
        f"crmsync_hello is imported from {crmsync_hello.__file__}, not from {HELLO_DIR}; reinstall with:\n    {INSTALL}"
    )
    # Only this entry-point plugin: the test does not depend on the built-ins.
    monkeypatch.setenv("CRMSYNC_PLUGINS", "hello")


def test_entry_point_declares_the_plugin() -> None:
    points = [ep for ep in distribution("crmsync-hello").entry_points if ep.group == "crmsync"]
    assert [(ep.name, ep.value) for ep in points] == [("hello", "crmsync_hello")]


def test_plugins_command_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "hello  (crmsync-hello 0.1.0)",
        "    mapper:hello.shout",
        "    sink:hello.jsonl",
        "    source:hello.greetings",
    ]


def test_blocklist_hides_it(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_DISABLE_PLUGINS", "hello")
    assert main(["plugins"]) == 0
    assert "hello" not in capsys.readouterr().out


def test_run_a_spec_using_it_through_the_cli(tmp_path: Path) -> None:
    spec = testing.write_spec(tmp_path, SPEC)
    report_path = tmp_path / "report.json"
    env = {**os.environ, "CRMSYNC_PLUGINS": "hello"}
    command = [sys.executable, "-m", "connector_core", "run", str(spec), "--report", str(report_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path.parent)
    assert result.returncode == 0, result.stderr
    assert testing.read_jsonl(tmp_path / "out" / "greetings.jsonl") == [
        {"n": 0, "text": "HI 0"},
        {"n": 1, "text": "HI 1"},
        {"n": 2, "text": "HI 2"},
    ]
    report = json.loads(report_path.read_text())
    assert report["status"] == "success"
    assert report["delivered"] == {"out": 3}
    assert "hello-job: success" in result.stderr


def test_its_options_are_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = testing.write_spec(tmp_path, SPEC.replace("count: 3, ", ""))
    assert main(["validate", str(spec)]) == 2
    assert f"{spec}:4: $.sources.greet.count: required field missing" in capsys.readouterr().err

"""The ``crmsync`` command line, called in-process through ``main`` (and once as ``python -m``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from connector_core import hookimpl
from connector_core.cli import build_parser, main
from connector_core.plugin_manager import get_plugin_host

from . import kit
from .conftest import Jobs

JOB = """\
version: 1
job: cli-job
settings: {settings}
sources:
  nums: {{type: t.numbers, count: 10}}
mappers:
  split: {{type: t.split, inputs: [nums], reject: [3, 4], reason: invalid phone}}
sinks:
  even: {{type: t.collect, inputs: [split]}}
  odd: {{type: t.collect, inputs: [split.odd]}}
"""


@pytest.fixture
def spec(jobs: Jobs, kit_cli) -> Path:
    return jobs.write(JOB.format(settings="{}"))


def test_version_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connector_core", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"crmsync {version('crmsync')}"


def test_run_success_exit_0_with_report_and_summary(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "reports" / "run.json"
    assert main(["run", str(spec), "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["status"] == "success"
    assert report["job"] == "cli-job"
    assert report["started_at"].startswith("20") and "T" in report["started_at"]
    assert isinstance(report["duration_s"], float) and report["duration_s"] >= 0
    assert report["streams"] == {"nums": 10, "split": 4, "split.odd": 4, "errors": 2}
    assert report["delivered"] == {"even": 4, "odd": 4}
    assert report["errors"]["count"] == 2
    assert [entry["reason"] for entry in report["errors"]["first"]] == ["invalid phone"] * 2
    assert report["errors"]["first"][0]["source"] == "nums"
    assert report["failure"] is None
    assert not list(report_path.parent.glob("*.partial"))
    err = capsys.readouterr().err
    assert "cli-job: success in" in err
    assert "stream" in err and "records" in err
    assert "even (delivered)" in err
    # One row per count: the error stream's (a stream like any other), then what it holds.
    assert [line.split()[0] for line in err.splitlines() if line.strip().startswith("errors")] == ["errors"]
    assert re.search(r"^  rejected +2  \(20\.00% of the input\)$", err, re.MULTILINE)
    assert "set aside" not in err


def test_a_plan_counts_what_would_reach_each_sink_not_what_it_delivered(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plan runs no sink without a ``plan`` method: its table says what would reach it, never "delivered"."""
    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "nothing was sent or written" in out
    assert re.search(r"^  even \(would reach it\) +4$", out, re.MULTILINE), out
    assert "(delivered)" not in out
    assert kit.STORE["even"] == []  # the sink itself never ran


def test_run_failure_exit_1_when_error_rate_exceeded(
    jobs: Jobs, kit_cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jobs.write(JOB.format(settings="{max_error_rate: 0.1}"))
    report_path = tmp_path / "run.json"
    assert main(["run", str(path), "--report", str(report_path)]) == 1
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed"
    assert report["failure"] == "error rate 20.00% exceeds max_error_rate 10.00%"
    assert "failed: error rate 20.00% exceeds max_error_rate 10.00%" in capsys.readouterr().err


@pytest.mark.parametrize(("in_spec", "flag", "code"), [("0.1", "0.5", 0), ("0.5", "0.1", 1), ("{}", "0", 1)])
def test_max_error_rate_flag_overrides_the_spec(jobs: Jobs, kit_cli, in_spec: str, flag: str, code: int) -> None:
    settings = in_spec if in_spec == "{}" else f"{{max_error_rate: {in_spec}}}"
    path = jobs.write(JOB.format(settings=settings))
    assert main(["run", str(path), "--max-error-rate", flag]) == code


def test_spec_error_exit_2_message_without_traceback(jobs: Jobs, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    path = jobs.write(JOB.format(settings="{}").replace("inputs: [split.odd]", "inputs: [split.odd, ghost]"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crmsync: error: ")
    assert f"{path}:{jobs.line('ghost')}: $.sinks.odd.inputs[1]: unknown input 'ghost'" in err
    assert "Traceback" not in err
    assert kit.STORE == {}, "nothing ran"


def test_missing_spec_file_exit_2(tmp_path: Path, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [[], ["run"], ["frobnicate"], ["run", "a.yaml", "--max-error-rate", "lots"], ["validate", "a.yaml", "--nope"]],
)
def test_usage_error_exit_2(argv: list[str], kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "usage: crmsync" in err and "Traceback" not in err


def test_plugin_error_exit_2(kit_cli, spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Copycat:
        @hookimpl
        def register_sinks(registry):
            registry.add("t.collect", kit.Collect)

    kit_cli(("copycat", Copycat))
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "'copycat'" in err and "'kit'" in err and "Traceback" not in err


def test_validate_exit_0_prints_the_warning(jobs: Jobs, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    path = jobs.write(JOB.format(settings="{}").replace("  odd: {type: t.collect, inputs: [split.odd]}\n", ""))
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}: valid: job 'cli-job' with 3 components" in captured.out
    assert "warning: " in captured.err
    assert "'split.odd' is not read by any component" in captured.err
    assert kit.STORE == {}, "validate does not run the job"


def test_validate_spec_error_exit_2(jobs: Jobs, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    path = jobs.write(JOB.format(settings="{}").replace("t.split", "t.splt"))
    assert main(["validate", str(path)]) == 2
    assert "unknown mapper type 't.splt'" in capsys.readouterr().err


def test_run_logs_the_unread_output_warning(jobs: Jobs, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    path = jobs.write(JOB.format(settings="{}").replace("  odd: {type: t.collect, inputs: [split.odd]}\n", ""))
    assert main(["run", str(path)]) == 0
    assert "'split.odd' is not read by any component" in capsys.readouterr().err


def test_plugins_lists_plugins_and_components(kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "kit  ((registered in code) -)" in out
    for component in ("source:t.numbers", "mapper:t.split", "sink:t.collect", "connection:t.token"):
        assert f"    {component}\n" in out


class Greeter:
    """A plugin contributing the sub-command ``crmsync greet``."""

    @hookimpl
    def register_commands(commands):
        def configure(parser):
            parser.add_argument("name")

        def run(args):
            print(f"hello {args.name}")
            return 3

        commands.add("greet", "say hello", configure, run)


def subcommands() -> list[str]:
    host = get_plugin_host(load_entrypoints=False, extra_plugins=[kit.KIT, ("greeter", Greeter)])
    parser = build_parser(host)
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sorted(action.choices)


def test_subcommands_include_builtins_and_plugin_commands() -> None:
    assert subcommands() == [
        "describe",
        "errors",
        "greet",
        "new",
        "plan",
        "plugins",
        "run",
        "schema",
        "state",
        "validate",
    ]


@pytest.mark.parametrize("command", [[], *([name] for name in subcommands())])
def test_help_works_for_every_command(command: list[str], kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    kit_cli(("greeter", Greeter))
    with pytest.raises(SystemExit) as caught:
        main([*command, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: crmsync {' '.join(command)}".rstrip())
    if not command:
        assert "greet" in out and "say hello" in out


def test_plugin_command_runs(kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    kit_cli(("greeter", Greeter))
    assert main(["greet", "ada"]) == 3
    assert capsys.readouterr().out == "hello ada\n"


@pytest.mark.parametrize("argv", [["-v", "run"], ["run", "-v"]])
def test_verbose_flag_works_before_and_after_the_command(
    jobs: Jobs, kit_cli, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = jobs.write(JOB.format(settings="{}").replace("count: 10}", "count: 10, fail_at: 5}"))
    assert main([*argv, str(path)]) == 1
    assert "run aborted" in capsys.readouterr().err, "the debug log is on"


def test_quiet_flag_hides_warnings(jobs: Jobs, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    path = jobs.write(JOB.format(settings="{}").replace("  odd: {type: t.collect, inputs: [split.odd]}\n", ""))
    assert main(["-qq", "run", str(path)]) == 0
    err = capsys.readouterr().err
    assert "is not read" not in err
    assert "cli-job: success" in err, "the summary is always printed"

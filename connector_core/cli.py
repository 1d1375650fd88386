"""The ``crmsync`` command line. Exit codes: 0 success, 1 the run failed, 2 usage or spec error.

A command imports what it needs when it runs (the engine, the state store, the spec loader): building the parser
for ``crmsync --help`` imports none of them, nor any plugin's own dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from connector_core import __version__
from connector_core.cli_author import add_commands as add_author_commands
from connector_core.cli_state import add_commands as add_state_commands
from connector_core.errors import CrmsyncError, UsageError
from connector_core.plugin_manager import PluginHost, get_plugin_host
from connector_core.signals import DEFAULT_GRACE_S, exit_code

if TYPE_CHECKING:
    from connector_core.report import RunReport
    from connector_core.spec.model import SyncSpec

log = logging.getLogger("crmsync")


#: The exit code of a process killed by SIGPIPE (128 + 13), what ``yes | head -1`` leaves behind.
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``crmsync`` console script."""
    try:
        try:
            return _main(argv)
        finally:
            # Output is buffered: a reader that went away (`crmsync plugins | head -1`) shows up at this flush,
            # not later as an "Exception ignored" message when the interpreter exits.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_output()
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    try:
        _configure_logging(0)  # plugins that fail to load warn before the command line is even parsed
        host = get_plugin_host()
        parser = build_parser(host)
        args, extra = parser.parse_known_args(argv)
        if extra and isinstance(getattr(args, "keys", None), list):
            # argparse ends a `*` positional at the first option: `errors retry SPEC --state S KEY` keeps KEY,
            # and keys after `--` are keys even when they start with a dash.
            cut = extra.index("--") if "--" in extra else len(extra)
            before, tail = extra[:cut], extra[cut + 1 :]
            if not any(argument.startswith("-") for argument in before):
                args.keys += [*before, *tail]
                extra = []
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        _configure_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0))
        handler: Callable[[argparse.Namespace, PluginHost], int] = args.handler
        return handler(args, host)
    except CrmsyncError as exc:
        print(f"crmsync: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("crmsync: interrupted", file=sys.stderr)
        return 130


def _discard_output() -> None:
    """Point stdout and stderr at the null device, so flushing them at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def build_parser(host: PluginHost) -> argparse.ArgumentParser:
    """The argument parser, including sub-commands contributed by plugins."""
    common = argparse.ArgumentParser(add_help=False)
    # No defaults here: a sub-command's default would overwrite the count of `crmsync -v run ...`.
    suppress = argparse.SUPPRESS
    common.add_argument("-v", "--verbose", action="count", default=suppress, help="more log output (repeatable)")
    common.add_argument("-q", "--quiet", action="count", default=suppress, help="less log output (repeatable)")
    parser = argparse.ArgumentParser(
        prog="crmsync",
        description="Run YAML-described CRM sync jobs: sources -> mappers -> sinks, extended by plugins.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"crmsync {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run a sync job", parents=[common], description="Run a sync job.")
    run.add_argument("spec", type=Path, help="the job's YAML spec")
    run.add_argument("--report", type=Path, help="write the run report as JSON to this file")
    run.add_argument(
        "--max-error-rate", type=_fraction, help="fail the run when more than this fraction of records fail"
    )
    _add_state_options(run)
    run.add_argument("--full-refresh", action="store_true", help="process every record, even those already delivered")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    run.add_argument(
        "--stop-grace-s",
        type=_seconds,
        default=DEFAULT_GRACE_S,
        metavar="S",
        help="on SIGTERM/SIGINT, how long calls in flight may finish (default: %(default)s)",
    )
    run.set_defaults(handler=_run)

    validate = commands.add_parser(
        "validate", help="check a spec without running it", parents=[common], description="Validate a spec offline."
    )
    validate.add_argument("spec", type=Path, help="the job's YAML spec")
    validate.set_defaults(handler=_validate)

    plan = commands.add_parser(
        "plan",
        help="show what a run would do, without writing or paying",
        parents=[common],
        description="Read the sources, run local mappers, consult state and cache; call no write or paid API.",
    )
    plan.add_argument("spec", type=Path, help="the job's YAML spec")
    _add_state_options(plan)
    plan.add_argument("--full-refresh", action="store_true", help="plan as if nothing had been delivered")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(handler=_plan)

    add_state_commands(commands, common)
    add_author_commands(commands, common)

    plugins = commands.add_parser("plugins", help="list installed plugins", parents=[common])
    plugins.set_defaults(handler=_plugins)

    for command in host.commands().commands.values():
        sub = commands.add_parser(command.name, help=command.help, parents=[common], description=command.help)
        command.configure(sub)
        sub.set_defaults(handler=lambda args, _host, run=command.run: run(args))
    return parser


def _add_state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="FILE|URL",
        help="durable state: a SQLite file or a postgresql:// URL (default: the spec's state:, else "
        ".crmsync/state.db beside the spec)",
    )
    parser.add_argument(
        "--no-state", action="store_true", help="keep no state: a pure conversion (no resume, no skip, no cache)"
    )


def _configure_logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    levels = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
    root.setLevel(levels[max(-1, min(1, verbosity))] if verbosity > -2 else logging.ERROR)
    # One line per HTTP request is only wanted when asked for twice.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def run_spec(
    path: Path,
    host: PluginHost,
    report_path: Path | None = None,
    max_error_rate: float | None = None,
    state: str | None = None,
    full_refresh: bool = False,
    no_state: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
) -> tuple[SyncSpec, RunReport]:
    """Load and run a spec the way ``crmsync run`` does: redacted logs, report file, summary on stderr.

    Durable state is kept unless the spec says ``state: false`` or ``no_state`` is set (``state`` overrides
    where). A run stopped by a signal says so in its report (``stopped_by``).
    """
    from connector_core.api import execute
    from connector_core.spec.loader import load_spec

    spec = load_spec(path, host)
    for warning in spec.warnings:
        log.warning("%s", warning)
    if report_path is not None:
        _check_report_path(report_path)
    report = execute(
        spec,
        host,
        state=state,
        no_state=no_state,
        report=report_path,
        max_error_rate=max_error_rate,
        full_refresh=full_refresh,
        grace_s=grace_s,
    )
    print(report.summary(), file=sys.stderr)
    return spec, report


def _fraction(text: str) -> float:
    """``--max-error-rate``: a fraction between 0 and 1, as in a spec's ``settings.max_error_rate``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    """``--stop-grace-s``: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _check_report_path(path: Path) -> None:
    """Refuse a ``--report`` that cannot be written before the run sends anything, not after it."""
    if path.is_dir():
        raise UsageError(f"--report {path}: is a directory; name a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot create its folder: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--report {path}: its folder is not writable")


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    _, report = run_spec(
        args.spec,
        host,
        args.report,
        args.max_error_rate,
        args.state,
        args.full_refresh,
        no_state=args.no_state,
        grace_s=args.stop_grace_s,
    )
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2, default=str))
    return exit_code(report)


def _plan(args: argparse.Namespace, host: PluginHost) -> int:
    import json

    from connector_core.api import execute
    from connector_core.spec.loader import load_spec

    spec = load_spec(args.spec, host, offline=True)
    no_state = args.no_state or (spec.state is None and not args.state)
    # A plan only reads state: without a state file yet, it plans the first run instead of creating one.
    if not no_state:
        from connector_core.api import check_state_file
        from connector_core.state.open import state_target
        from connector_core.state.postgres import is_url

        target = state_target(spec, args.state)
        if not is_url(target) and not Path(target).exists():
            check_state_file(spec, Path(target).resolve())  # what the first run would refuse, a plan refuses too
            log.info("no state at %s yet: planning a first run", target)
            no_state = True
    report = execute(spec, host, state=args.state, no_state=no_state, full_refresh=args.full_refresh, plan=True)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        outcome = "failed" if report.status == "failed" else "nothing was sent or written"
        read = f"{report.input_records} input records read in {report.duration_s:.2f}s"
        # A sink's own checks (and any rejects they make) run only in a real run: a plan counts what reaches it.
        headline = f"plan: {spec.job} ({spec.path.name}): {read}; {outcome}"
        print(report.summary(headline=headline, delivered="would reach it"))
    return exit_code(report)


def _validate(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.spec.loader import load_spec

    spec = load_spec(args.spec, host, offline=True)
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{spec.path}: valid: job {spec.job!r} with {len(spec.components)} components")
    return 0


def _plugins(args: argparse.Namespace, host: PluginHost) -> int:
    for info in host.plugins():
        print(f"{info.name}  ({info.distribution} {info.version})")
        if info.problem:
            print(f"    skipped: {info.problem}")
        for component in info.components:
            print(f"    {component}")
    return 0

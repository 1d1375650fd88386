"""``crmsync demo`` and ``crmsync sandbox apollo``: try a job against a local Apollo, no key, no network."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: A placeholder key: the sandbox accepts any key, and this one is masked like a real one.
DEMO_KEY = "sandbox-demo-key"


def configure_sandbox(parser: argparse.ArgumentParser) -> None:
    """``crmsync sandbox apollo [options]``."""
    from crmsync_plugins.apollo.sandbox import add_arguments

    kinds = parser.add_subparsers(title="sandboxes", metavar="API", required=True)
    add_arguments(kinds.add_parser("apollo", help="the Apollo.io API", description="Serve a local Apollo.io API."))


def run_sandbox(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from crmsync_plugins.apollo.sandbox import run

    return run(args)


def configure(parser: argparse.ArgumentParser) -> None:
    """``crmsync demo [--spec FILE] [--report FILE]``."""
    parser.add_argument(
        "--spec", type=Path, default=Path("config.example.yaml"), help="the job to run (default: %(default)s)"
    )
    parser.add_argument("--report", type=Path, help="write the run report as JSON to this file")


def run(args: argparse.Namespace) -> int:
    """Start an in-process sandbox, point the spec at it through its environment, run it, show the outputs."""
    from connector_core.api import execute, load
    from connector_core.errors import UsageError
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxServer

    if not args.spec.is_file():
        raise UsageError(f"{args.spec}: not found; run the demo from the repository folder or pass --spec")
    with SandboxServer(ApolloSandbox()) as server:
        environ = {**os.environ, "APOLLO_BASE_URL": server.base_url, "APOLLO_API_KEY": DEMO_KEY}
        spec, host = load(args.spec, environ=environ)
        report = execute(spec, host, report=args.report)
    print(report.summary(), file=sys.stderr)
    print(f"\nApollo sandbox run of {spec.path.name}: {report.status}. Outputs:")
    for component in spec.components.values():
        path = getattr(component.options, "path", None)
        if component.kind == "sink" and isinstance(path, Path):
            count = report.delivered.get(component.name, 0)
            print(f"  {component.name:<10} {count:>5} records  {path}")
    return 0 if report.status == "success" else 1

"""``crmsync demo`` and ``crmsync sandbox apollo``: try a job against a local Apollo, no key, no network."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

#: A placeholder key: the sandbox accepts any key, and this one is masked like a real one.
DEMO_KEY = "sandbox-demo-key"
#: The example job ships inside the package, so the demo works from any folder after a plain ``pip install``.
EXAMPLE_DIR = Path(__file__).parent / "example"
EXAMPLE_SPEC = EXAMPLE_DIR / "config.example.yaml"
#: The JSON Schema ``--copy-to`` writes beside the spec, which points editors at it.
SCHEMA_NAME = "crmsync.schema.json"
#: The example job writes its outputs to this folder (default: ``out`` beside the spec).
OUT_ENV = "CRMSYNC_DEMO_OUT"


def configure_sandbox(parser: argparse.ArgumentParser) -> None:
    """``crmsync sandbox apollo [options]``."""
    from crmsync_plugins.apollo.sandbox.cli import add_arguments

    kinds = parser.add_subparsers(title="sandboxes", metavar="API", required=True)
    add_arguments(kinds.add_parser("apollo", help="the Apollo.io API", description="Serve a local Apollo.io API."))


def run_sandbox(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from crmsync_plugins.apollo.sandbox.cli import run

    return run(args)


def configure(parser: argparse.ArgumentParser) -> None:
    """``crmsync demo [--out DIR] [--spec FILE] [--report FILE] | --copy-to DIR``."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        metavar="DIR",
        help=f"where the example job writes its outputs (sets {OUT_ENV}; default: ./out)",
    )
    parser.add_argument("--spec", type=Path, metavar="FILE", help="run this job instead of the packaged example")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the run report as JSON to this file")
    parser.add_argument(
        "--copy-to",
        type=Path,
        metavar="DIR",
        help="copy the example job (config.example.yaml, data/leads.csv, its JSON Schema) into DIR to edit and run; "
        "runs nothing",
    )


def run(args: argparse.Namespace) -> int:
    """Start an in-process sandbox, point the spec at it through its environment, run it, show the outputs."""
    from connector_core.api import execute, load
    from connector_core.errors import UsageError
    from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxServer

    if args.copy_to is not None:
        return copy_example(args.copy_to)
    spec_path = EXAMPLE_SPEC if args.spec is None else args.spec
    if not spec_path.is_file():
        raise UsageError(f"{spec_path}: not found (pass the path of a spec file to --spec)")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a folder that cannot be made: before any sink opens there
        problem = "is a file, not a folder" if args.out.is_file() else f"cannot be made a folder ({exc.strerror})"
        raise UsageError(f"--out {args.out}: {problem}; name a folder (it is created when missing)") from None
    with SandboxServer(ApolloSandbox()) as server:
        environ = {
            **os.environ,
            "APOLLO_BASE_URL": server.base_url,
            "APOLLO_API_KEY": DEMO_KEY,
            OUT_ENV: str(args.out.resolve()),
        }
        spec, host = load(spec_path, environ=environ)
        # The in-process sandbox starts empty every time, so the demo's state would only hide its answers.
        report = execute(spec, host, report=args.report, no_state=True)
    print(report.summary(), file=sys.stderr)
    print(f"\nApollo sandbox run of {spec.path.name}: {report.status}. Outputs:")
    for component in spec.components.values():
        path = getattr(component.options, "path", None)
        if component.kind == "sink" and isinstance(path, Path):
            count = report.delivered.get(component.name, 0)
            print(f"  {component.name:<10} {count:>5} records  {path}")
    return 0 if report.status == "success" else 1


def copy_example(folder: Path) -> int:
    """Write the example job, its leads and the spec's JSON Schema into ``folder``, never overwriting a file that
    is already there. The spec's first line points editors at the schema beside it (the packaged spec's points
    at the repository's)."""
    from connector_core.errors import UsageError
    from connector_core.plugin_manager import get_plugin_host
    from connector_core.spec.schema import schema_text

    files = [path for path in sorted(EXAMPLE_DIR.rglob("*")) if path.is_file() and path.suffix in (".yaml", ".csv")]
    targets = {path: folder / path.relative_to(EXAMPLE_DIR) for path in files}
    schema = folder / SCHEMA_NAME
    existing = [str(target) for target in [*targets.values(), schema] if target.exists()]
    if existing:
        raise UsageError(f"{', '.join(existing)}: already exists; choose an empty folder for --copy-to")
    for path, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_bytes()
        if path == EXAMPLE_SPEC:
            text = re.sub(rb"^(# yaml-language-server: \$schema=).*", rb"\g<1>" + SCHEMA_NAME.encode(), text, count=1)
        target.write_bytes(text)
        print(f"wrote {target}")
    schema.write_text(schema_text(get_plugin_host()), encoding="utf-8")
    print(f"wrote {schema}")
    spec = folder / EXAMPLE_SPEC.name
    print(f"next: crmsync validate {spec}; crmsync demo --spec {spec}; or run it against Apollo (see its header)")
    return 0

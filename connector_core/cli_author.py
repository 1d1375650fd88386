"""Commands for plugin and spec authors: ``crmsync describe``, ``crmsync schema`` and ``crmsync new plugin``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector_core.errors import UsageError

if TYPE_CHECKING:
    from connector_core.plugin_manager import PluginHost


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``describe``, ``schema`` and ``new`` to the CLI."""
    describe = commands.add_parser(
        "describe",
        help="show a component type's options, outputs and plugin",
        parents=[common],
        description="Show the options (type, default, help), outputs and plugin of a component type.",
    )
    describe.add_argument("type", help="a component type, e.g. csv or apollo.bulk_match")
    describe.set_defaults(handler=_describe)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of a spec, with every installed plugin's options",
        parents=[common],
        description="Print the JSON Schema (draft 2020-12) of a spec for editors and validators.",
    )
    schema.add_argument("-o", "--output", type=Path, help="write it to this file instead of stdout")
    schema.set_defaults(handler=_schema)

    new = commands.add_parser("new", help="start a plugin from a template", parents=[common])
    kinds = new.add_subparsers(title="templates", metavar="TEMPLATE", required=True)
    plugin = kinds.add_parser(
        "plugin",
        help="a pip-installable plugin with a mapper, a sink and tests",
        parents=[common],
        description="Write ./crmsync-NAME/: pyproject with the crmsync entry point, a mapper, a sink, tests, README.",
    )
    plugin.add_argument("name", help="the plugin's name (lower case), e.g. hubspot")
    plugin.add_argument("--dir", type=Path, default=Path("."), help="where to create it (default: %(default)s)")
    plugin.set_defaults(handler=_new_plugin)


def _describe(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.describe import describe_type, find_type

    blocks = ["\n".join(describe_type(host, kind, entry)) for kind, entry in find_type(host, args.type)]
    print("\n\n".join(blocks))
    return 0


def _schema(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.spec.schema import schema_text

    text = schema_text(host)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.output}: cannot write the schema: {exc.strerror or exc}") from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _new_plugin(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.scaffold import new_plugin

    folder = new_plugin(args.name, args.dir)
    print(f"created {folder}: cd {folder} && pip install -e '.[test]' && pytest")
    return 0

"""``crmsync state`` and ``crmsync errors``: look into and manage a job's durable state.

The state modules are imported by the actions that use them: building the command line stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector_core.errors import UsageError

if TYPE_CHECKING:
    from connector_core.plugin_manager import PluginHost
    from connector_core.state.store import StateStore


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``state`` and ``errors`` to the CLI."""
    state = commands.add_parser("state", help="show, reset, export, import or unlock a job's state", parents=[common])
    actions = state.add_subparsers(title="actions", metavar="ACTION", required=True)
    show = _action(actions, "show", "runs, counts, checkpoints, cache and state size", common, _show)
    show.add_argument("--json", action="store_true", help="print JSON")
    reset = _action(actions, "reset", "forget delivered records, errors and/or the cache", common, _reset)
    reset.add_argument("--force", action="store_true", help="even while a run holds the job's lease")
    for part in ("delivered", "errors", "cache"):
        reset.add_argument(f"--{part}", action="store_true", help=f"reset only {part} (combinable)")
    export = _action(
        actions, "export", "write the job's state as JSON (to carry it between CI runners)", common, _export
    )
    export.add_argument("file", type=Path, nargs="?", help="output file (default: stdout)")
    imported = _action(actions, "import", "replace the job's state with an export", common, _import)
    imported.add_argument("file", type=Path, help="a file written by `crmsync state export`")
    imported.add_argument("--force", action="store_true", help="even while a run holds the job's lease")
    unlock_help = "remove the job's run lease (after a run on another machine died)"
    unlock = _action(actions, "unlock", unlock_help, common, _unlock)
    unlock.add_argument("--force", action="store_true", help="even if the lease is live (its run may be running)")

    errors = commands.add_parser("errors", help="list, retry or discard rejected records", parents=[common])
    actions = errors.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = _action(actions, "list", "rejected records waiting for retry (and discarded ones)", common, _errors_list)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--all", action="store_true", help="include discarded records")
    for name, help_text in (("retry", "retry on the next run (attempts reset)"), ("discard", "never retry")):
        action = _action(actions, name, help_text, common, _errors_set)
        action.add_argument("keys", nargs="*", help="record keys (default: all)")
        action.set_defaults(status="pending" if name == "retry" else "discarded")


def _action(actions: Any, name: str, help_text: str, common: argparse.ArgumentParser, handler: Any) -> Any:
    parser = actions.add_parser(name, help=help_text, description=help_text, parents=[common])
    parser.add_argument("spec", type=Path, help="the job's YAML spec")
    parser.add_argument("--state", metavar="FILE|URL", help="the state database (default: from the spec)")
    parser.set_defaults(handler=handler)
    return parser


def _open(args: argparse.Namespace, host: PluginHost) -> tuple[str, StateStore]:
    from connector_core.api import open_state
    from connector_core.spec.loader import load_spec

    spec = load_spec(args.spec, host, offline=True)
    return spec.job, open_state(spec, args.state)


def _missing(args: argparse.Namespace, host: PluginHost) -> tuple[str, str] | None:
    """``(job, path)`` when the job's state is a file that does not exist yet: the commands that only read
    (``state show``, ``errors list``) then say so instead of creating an empty state database."""
    from connector_core.spec.loader import load_spec
    from connector_core.state.open import state_target
    from connector_core.state.postgres import is_url

    spec = load_spec(args.spec, host, offline=True)
    target = state_target(spec, args.state)
    if is_url(target) or Path(target).exists():
        return None
    return spec.job, target


def _show(args: argparse.Namespace, host: PluginHost) -> int:
    missing = _missing(args, host)
    if missing is not None:
        if args.json:
            print(json.dumps({"job": missing[0], "database": missing[1], "exists": False}, indent=2))
        else:
            print(f"job {missing[0]!r}: no state at {missing[1]} yet (a run creates it)")
        return 0
    job, store = _open(args, host)
    summary = store.summary(job)
    store.close()
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"job {job!r}, state in {summary['database']}")
    lock = summary["lock"]
    held = "held by pid {pid} on {host} since {since}, lease until {until}".format(**lock) if lock else "free"
    print(f"  lock: {held}{' (expired)' if lock and lock['expired'] else ''}")
    print(f"  completed records: {summary['completed_records']}")
    for sink, count in sorted(summary["deliveries"].items()):
        print(f"  delivered to {sink}: {count}")
    for component, checkpoint in sorted(summary["checkpoints"].items()):
        print(f"  last checkpoint of {component}: {json.dumps(checkpoint)}")
    rejects = summary["rejects"]
    print(f"  rejects: {rejects.get('pending', 0)} pending, {rejects.get('discarded', 0)} discarded")
    print(f"  open write intents: {summary['open_intents']}, remembered API objects: {summary['objects']}")
    print(f"  enrichment cache entries: {summary['cache_entries']}")
    print(f"  size: {_size_line(summary['size'])}")
    print("  runs:")
    for run in summary["runs"]:
        report = run["report"] or {}
        print(
            f"    #{run['run_id']} {run['started_at']} {run['status']:<8} "
            f"input {report.get('input_records', '-')}, errors {(report.get('errors') or {}).get('count', '-')}"
        )
    return 0


def _size_line(size: dict[str, Any]) -> str:
    """``1,234,567 bytes (the database file and its -wal); 512 bytes per completed record, ...``."""
    ratios = [
        f"{size[key]:,} bytes per {what}"
        for key, what in (
            ("bytes_per_completed_record", "completed record"),
            ("bytes_per_cached_person", "cached person"),
        )
        if size[key] is not None
    ]
    return f"{size['bytes']:,} bytes ({size['measured']})" + (f"; {', '.join(ratios)}" if ratios else "")


def _reset(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.state.lease import refuse_if_live

    parts = {part for part in ("delivered", "errors", "cache") if getattr(args, part)} or {
        "delivered",
        "errors",
        "cache",
    }
    job, store = _open(args, host)
    try:
        refuse_if_live(store, job, args.force, "reset its state")
        store.reset(job, parts)
    finally:
        store.close()
    print(f"job {job!r}: reset {', '.join(sorted(parts))}")
    return 0


def _export(args: argparse.Namespace, host: PluginHost) -> int:
    job, store = _open(args, host)
    text = json.dumps(store.export(job), indent=1, default=str)
    store.close()
    if args.file:
        write_atomically(args.file, text + "\n")
        print(f"job {job!r}: state written to {args.file}", file=sys.stderr)
    else:
        print(text)
    return 0


def _import(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.state.lease import refuse_if_live

    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.file}: cannot read a state export: {exc}") from None
    job, store = _open(args, host)
    try:
        refuse_if_live(store, job, args.force, "replace its state")
        store.import_(job, data)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    finally:
        store.close()
    print(f"job {job!r}: state imported from {args.file}")
    return 0


def _unlock(args: argparse.Namespace, host: PluginHost) -> int:
    from connector_core.state.lease import refuse_if_live

    job, store = _open(args, host)
    try:
        refuse_if_live(store, job, args.force, "unlock it")
        store.release_lock(job)
    finally:
        store.close()
    print(f"job {job!r}: unlocked")
    return 0


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    partial.replace(path)


def _errors_list(args: argparse.Namespace, host: PluginHost) -> int:
    if _missing(args, host) is not None:
        if args.json:
            print("[]")
        print("0 record(s)", file=sys.stderr)
        return 0
    job, store = _open(args, host)
    rejects = store.rejects(job, None if args.all else "pending")
    store.close()
    if args.json:
        print(json.dumps(rejects, indent=2, default=str))
        return 0
    for reject in rejects:
        print(
            f"{reject['status']:<9} {reject['key']}  ({reject['source']}:{reject['position']}, "
            f"{reject['component']}, attempt {reject['attempts']}): {reject['reason']}"
        )
    print(f"{len(rejects)} record(s)", file=sys.stderr)
    return 0


def _errors_set(args: argparse.Namespace, host: PluginHost) -> int:
    status = args.status
    job, store = _open(args, host)
    unknown: list[str] = []
    try:
        if args.keys:
            known = {reject["key"] for reject in store.rejects(job)}
            asked = list(dict.fromkeys(args.keys))
            chosen = [key for key in asked if key in known]
            unknown = [key for key in asked if key not in known]
            changed = store.set_rejects(job, status, chosen) if chosen else 0
        else:
            changed = store.set_rejects(job, status)
    finally:
        store.close()
    print(f"job {job!r}: {changed} record(s) {'will be retried' if status == 'pending' else 'discarded'}")
    if unknown:
        state = f" --state {args.state}" if args.state else ""
        print(
            f"crmsync: error: no rejected record has the key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (`crmsync errors list {args.spec}{state} --all` lists them)",
            file=sys.stderr,
        )
        return 1
    return 0

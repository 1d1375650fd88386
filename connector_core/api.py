"""The public run API: load and run a spec from Python, as the CLI, the test kit and the demo do.

Nothing here reads or changes ``os.environ`` unless told to (``environ=None`` means the process environment)::

    import connector_core

    report = connector_core.run("job.yaml", environ={"APOLLO_API_KEY": key}, state="state.db")
    assert report.status == "success"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from connector_core.plugin_manager import PluginHost, get_plugin_host
from connector_core.redact import RedactingFilter, Redactor

if TYPE_CHECKING:
    from connector_core.report import RunReport
    from connector_core.spec.model import SyncSpec
    from connector_core.state.store import StateStore


def load(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    plugins: Iterable[tuple[str, object]] = (),
    host: PluginHost | None = None,
) -> tuple[SyncSpec, PluginHost]:
    """Load and validate a spec; returns it with the plugin host it was checked against.

    :param environ: the variables ``${VAR}`` references read (default: the process environment).
    :param plugins: ``(name, module_or_object)`` plugins to register besides the installed ones.
    :param host: a plugin host to reuse (``plugins`` is then ignored).
    :raises SpecError: with one line per problem.
    """
    from connector_core.spec.loader import load_spec

    host = host or get_plugin_host(extra_plugins=plugins)
    return load_spec(path, host, environ), host


def execute(
    spec: SyncSpec,
    host: PluginHost,
    *,
    state: str | Path | None = None,
    no_state: bool = False,
    report: str | Path | None = None,
    max_error_rate: float | None = None,
    full_refresh: bool = False,
    plan: bool = False,
    grace_s: float | None = None,
) -> RunReport:
    """Run (or with ``plan=True`` estimate) a loaded spec; secrets are masked in logs while it runs.

    :param state: the state store, a SQLite file or a ``postgresql://`` URL (default: the spec's ``state:``,
        else ``.crmsync/state.db`` beside the spec). Durable state is on unless the spec says ``state: false``
        or ``no_state`` is set.
    :param report: also write the run report as JSON to this file.
    :param grace_s: handle SIGINT/SIGTERM: stop reading, give calls in flight this long, then stop (the CLI's
        behaviour; only from the main thread). None leaves signals alone.
    :returns: the report; a failed run is a report with ``status == "failed"``, not an exception.
    """
    from connector_core.engine import Engine
    from connector_core.signals import GracefulStop

    stateful = not no_state and (spec.state is not None or state is not None)
    store = open_state(spec, state) if stateful else None
    try:
        engine = Engine(spec, host, state=store, max_error_rate=max_error_rate, full_refresh=full_refresh, plan=plan)
        with _redacted_logs(engine.context.redactor):
            runner = engine.run() if grace_s is None else GracefulStop(engine, grace_s).run()
            result = asyncio.run(runner)
    finally:
        if store is not None:
            store.close()
    if report is not None:
        result.write(Path(report))
    return result


def run(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    state: str | Path | None = None,
    report: str | Path | None = None,
    plugins: Iterable[tuple[str, object]] = (),
    max_error_rate: float | None = None,
    full_refresh: bool = False,
    no_state: bool = False,
) -> RunReport:
    """Load and run the spec at ``path`` (arguments as for :func:`load` and :func:`execute`)."""
    spec, host = load(path, environ=environ, plugins=plugins)
    return execute(
        spec,
        host,
        state=state,
        no_state=no_state,
        report=report,
        max_error_rate=max_error_rate,
        full_refresh=full_refresh,
    )


def open_state(spec: SyncSpec, override: str | Path | None = None) -> StateStore:
    """The job's state store: ``override`` (a file or ``postgresql://`` URL), the spec's ``state:``, or
    ``.crmsync/state.db`` beside the spec."""
    from connector_core.state.open import open_store, state_target
    from connector_core.state.postgres import is_url

    target = state_target(spec, None if override is None else str(override))
    if not is_url(target):
        check_state_file(spec, Path(target).resolve())
    return open_store(target)


def check_state_file(spec: SyncSpec, state: Path) -> None:
    """Whether ``state`` can be the job's state database, checked without creating it (a plan before the first
    run checks what the run would find): a sink writing it (or its WAL) would wait on the run's own lock, then
    fail the run; a file where its folder would be stops the run from creating it.

    :raises UsageError: naming the sink's option and the file.
    :raises StateError: naming the file and what is in the way.
    """
    from connector_core.errors import UsageError
    from connector_core.spec.loader import file_in_the_way
    from connector_core.state.store import StateError

    blocking = file_in_the_way(state)
    if blocking is not None:
        raise StateError(f"{state}: cannot open the state database: {blocking} is a file, not a folder")

    files = {state, state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")}
    for component in spec.components.values():
        output = component.output_file
        if output is not None and output.path in files:
            raise UsageError(
                f"{spec.path}: {component.path}.{output.option}: sink {component.name!r} writes {output.path}, the "
                "job's state database; give the sink a file of its own (or keep the state elsewhere: --state)"
            )


@contextlib.contextmanager
def _redacted_logs(redactor: Redactor) -> Iterator[None]:
    """Mask secrets in everything the root logger's handlers write during the run."""
    redacting = RedactingFilter(redactor)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(redacting)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(redacting)

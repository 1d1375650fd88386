"""Hook specifications: every way a plugin can extend crmsync.

A plugin is a module (or object) with functions marked ``@connector_core.hookimpl`` whose names match the
specs below, published under the ``crmsync`` entry-point group::

    [project.entry-points.crmsync]
    myplugin = "my_package.plugin"

Registration hooks (``register_*``) are called once per run, when the plugin manager is built, one plugin at a
time, and receive a registry to add components to; they cannot be wrappers. Lifecycle hooks (``before_sync``,
``after_batch``, ``on_record_error``, ``after_sync``) are called through pluggy, so ``tryfirst``/``trylast``
and wrappers (``@hookimpl(wrapper=True)``, a generator that ``yield``s once around the other implementations)
work; they are for observers (metrics, notifications, audit logs): an exception raised inside one is logged
and the run goes on. The engine calls them through the typed facade ``host.hooks``. Implementations may accept
any subset of a hook's arguments, and must be plain (not ``async``) functions: both are checked when the
plugin is registered, and a violation is an error naming the plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from connector_core.context import RunContext
    from connector_core.records import Record
    from connector_core.registry import CommandRegistry, ComponentRegistry
    from connector_core.report import RunReport

hookspec = pluggy.HookspecMarker("crmsync")


@hookspec
def register_sources(registry: ComponentRegistry) -> None:
    """Register source component types.

    Call ``registry.add(name, cls)`` for each :class:`~connector_core.components.Source` subclass the plugin
    provides, or ``registry.add_lazy(name, "package.module:Class")`` to import it only when a spec uses it. Names
    are global: registering a name another plugin already took is an error naming both.

    :param registry: the run's component registry.

    .. versionadded:: 0.1.0
    """


@hookspec
def register_mappers(registry: ComponentRegistry) -> None:
    """Register mapper component types (:class:`~connector_core.components.Mapper` subclasses).

    :param registry: the run's component registry.

    .. versionadded:: 0.1.0
    """


@hookspec
def register_sinks(registry: ComponentRegistry) -> None:
    """Register sink component types (:class:`~connector_core.components.Sink` subclasses).

    :param registry: the run's component registry.

    .. versionadded:: 0.1.0
    """


@hookspec
def register_connections(registry: ComponentRegistry) -> None:
    """Register connection types (:class:`~connector_core.components.Connection` subclasses).

    A connection is a shared resource, such as an HTTP client with its rate budget, that several components
    of one job use. Spec authors declare them under ``connections:``.

    :param registry: the run's connection registry.

    .. versionadded:: 0.1.0
    """


@hookspec
def register_commands(commands: CommandRegistry) -> None:
    """Add sub-commands to the ``crmsync`` command line.

    Call ``commands.add(name, help, configure, run)``: ``configure(parser)`` adds arguments to an
    :class:`argparse.ArgumentParser` and ``run(args)`` returns the exit code.

    :param commands: the command registry of this CLI invocation.

    .. versionadded:: 0.1.0
    """


@hookspec
def before_sync(context: RunContext) -> None:
    """Called once after every component has been opened and before the first record is read.

    :param context: the run's context (job name, spec, report in progress).

    Caveat: Not called when a component or connection fails to open (``after_sync`` still is).

    .. versionadded:: 0.1.0
    """


@hookspec
def after_batch(context: RunContext, component: str, output: str, records: list[Record]) -> None:
    """Called after a component emitted a batch of records to one of its outputs.

    Do not mutate ``records``. Called on the engine's event loop: keep it quick.

    :param context: the run's context.
    :param component: the name of the emitting component.
    :param output: the output's name (``default`` for the bare stream).
    :param records: the records emitted.

    Caveat: Hot path: the engine skips it entirely when no plugin implements it.

    .. versionadded:: 0.1.0
    """


@hookspec
def on_record_error(context: RunContext, component: str, record: Record, reason: str) -> None:
    """Called for each record sent to the job's error stream.

    :param context: the run's context.
    :param component: the component that rejected the record.
    :param record: the record, with its key and provenance.
    :param reason: why it was rejected (secrets already redacted).

    Caveat: Called once per record, so a run with many rejects calls it often: keep it quick.

    .. versionadded:: 0.1.0
    """


@hookspec
def after_sync(context: RunContext, report: RunReport) -> None:
    """Called once at the end of a run, successful or not, with the final report.

    :param context: the run's context.
    :param report: the run report, as written by ``--report``.

    Caveat: The only hook also called when the run aborted.

    .. versionadded:: 0.1.0
    """


def _spec_names() -> list[str]:
    return [name for name, value in globals().items() if hasattr(value, "crmsync_spec")]


HOOK_NAMES: list[str] = _spec_names()
__all__ = ["HOOK_NAMES", "hookspec"]

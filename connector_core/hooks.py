"""Lifecycle hooks as typed methods, called through pluggy, and the checks a hook implementation must pass.

The engine calls ``host.hooks.after_sync(context=..., report=...)`` rather than a hook by its string name: a
typo is a type error, and the call goes through ``pm.hook`` so ``wrapper=True``/``hookwrapper=True``
implementations, ``tryfirst``/``trylast`` and pluggy's ordering all apply. Observers must not break a run: every
plain implementation of a lifecycle hook is guarded at registration, so one that raises is logged (naming its
plugin, secrets masked) and the others still run.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from connector_core.errors import PluginError

if TYPE_CHECKING:
    from connector_core.context import RunContext
    from connector_core.records import Record
    from connector_core.report import RunReport

log = logging.getLogger("crmsync.plugins")

#: Hooks called once per run while registries are built; each implementation is called on its own so a name
#: clash can name the plugin, so wrappers cannot apply to them.
REGISTRATION_HOOKS = frozenset(
    {"register_sources", "register_mappers", "register_sinks", "register_connections", "register_commands"}
)
#: Hooks that observe a run; called through pluggy with wrappers and ordering.
LIFECYCLE_HOOKS = frozenset({"before_sync", "after_batch", "on_record_error", "after_sync"})


def check_and_guard(pm: pluggy.PluginManager, plugin: object, name: str, trace: Callable[[str], None]) -> None:
    """Refuse what crmsync cannot honour in ``plugin``'s hook implementations, and guard its observers.

    :raises PluginError: naming the plugin and the hook, with how to fix it.
    """
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                _check(caller.name, impl, name)
                if caller.name in LIFECYCLE_HOOKS and not (impl.wrapper or impl.hookwrapper):
                    # pluggy calls impl.function (public, typed Final): swapping it at registration is the
                    # one way to isolate each observer while wrappers still wrap the whole call.
                    impl.function = _guarded(caller.name, name, impl.function, impl.argnames, trace)  # type: ignore[misc]


def _check(hook: str, impl: pluggy.HookImpl, plugin_name: str) -> None:
    function = impl.function
    where = f"plugin {plugin_name!r}: {hook}"
    if hook in REGISTRATION_HOOKS and (impl.wrapper or impl.hookwrapper):
        raise PluginError(f"{where} cannot be a wrapper (registration hooks run once per plugin); drop wrapper=True")
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise PluginError(f"{where} is async, but hooks are called synchronously; make it a plain def")
    if inspect.isgeneratorfunction(function) and not (impl.wrapper or impl.hookwrapper):
        raise PluginError(f"{where} yields but is not marked as a wrapper; use @hookimpl(wrapper=True)")


def _guarded(
    hook: str, plugin_name: str, function: Callable[..., Any], argnames: tuple[str, ...], trace: Callable[[str], None]
) -> Callable[..., Any]:
    context_index = argnames.index("context") if "context" in argnames else None

    @functools.wraps(function)
    def call(*args: Any) -> None:
        trace(f"{hook} -> {plugin_name}")
        try:
            function(*args)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            context = args[context_index] if context_index is not None else None
            redactor = getattr(context, "redactor", None)
            message = redactor.text(message) if redactor else message
            log.warning("plugin %r failed in %s: %s", plugin_name, hook, message)

    return call


class LifecycleHooks:
    """The run's lifecycle hooks as typed calls (see :mod:`connector_core.hookspecs` for each contract)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._hook = pm.hook

    @property
    def observes_batches(self) -> bool:
        """Whether anything implements ``after_batch``: the engine's hot path skips the call when not."""
        return bool(self._hook.after_batch.get_hookimpls())

    @property
    def observes_errors(self) -> bool:
        """Whether anything implements ``on_record_error``: a batch of rejects skips the calls when not."""
        return bool(self._hook.on_record_error.get_hookimpls())

    def before_sync(self, *, context: RunContext) -> None:
        """Components are open; no record was read yet."""
        self._call("before_sync", context=context)

    def after_batch(self, *, context: RunContext, component: str, output: str, records: list[Record]) -> None:
        """``component`` emitted ``records`` to ``output``."""
        self._call("after_batch", context=context, component=component, output=output, records=records)

    def on_record_error(self, *, context: RunContext, component: str, record: Record, reason: str) -> None:
        """``component`` sent ``record`` to the error stream."""
        self._call("on_record_error", context=context, component=component, record=record, reason=reason)

    def after_sync(self, *, context: RunContext, report: RunReport) -> None:
        """The run ended with ``report``."""
        self._call("after_sync", context=context, report=report)

    def _call(self, hook: str, **kwargs: Any) -> None:
        # Plain implementations are guarded one by one; what still escapes comes from a wrapper.
        try:
            getattr(self._hook, hook)(**kwargs)
        except Exception as exc:
            context = kwargs["context"]
            message = context.redactor.text(f"{type(exc).__name__}: {exc}") if context is not None else str(exc)
            log.warning("a wrapper of %s failed: %s", hook, message)

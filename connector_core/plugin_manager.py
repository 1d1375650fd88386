"""The plugin manager factory: one manager per run, plugins discovered through the ``crmsync`` entry points."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import NamedTuple

import pluggy

from connector_core import hookspecs
from connector_core.errors import PluginError
from connector_core.hooks import LifecycleHooks, check_and_guard
from connector_core.local_plugins import import_plugin_file
from connector_core.registry import CommandRegistry, ComponentRegistry, NameClash

log = logging.getLogger("crmsync.plugins")

ENTRY_POINT_GROUP = "crmsync"
#: Comma-separated plugin names: when set, only these entry-point plugins load.
ALLOW_ENV = "CRMSYNC_PLUGINS"
#: Comma-separated plugin names that never load.
BLOCK_ENV = "CRMSYNC_DISABLE_PLUGINS"
#: When set to 1, every hook call is printed to stderr.
TRACE_ENV = "CRMSYNC_TRACE_PLUGINS"
#: The distribution shown for plugins passed to :func:`get_plugin_host` in code rather than installed.
IN_CODE = "(registered in code)"
#: The distribution of the built-in plugins.
OWN_DISTRIBUTION = "crmsync"


class PluginInfo(NamedTuple):
    """What ``crmsync plugins`` shows about one plugin (a named tuple: ``crmsync --help`` imports no attrs)."""

    name: str
    distribution: str
    version: str
    components: tuple[str, ...] = ()
    #: Why the plugin was skipped (it failed to import or to register), or None when it works.
    problem: str | None = None


class PluginHost:
    """A pluggy manager plus the registries its registration hooks filled."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
        self.pm = pm
        self._infos = infos
        # Registration hooks are called implementation by implementation, not through pm.hook: traced by hand.
        self._trace = pm.trace.root.get("hook")
        #: The lifecycle hooks as typed calls: ``host.hooks.after_sync(context=..., report=...)``.
        self.hooks = LifecycleHooks(pm)

    # Registries are filled on first use: `crmsync --help` should not import every component's dependencies (nor
    # the component contracts themselves).
    @functools.cached_property
    def sources(self) -> ComponentRegistry:
        """Source types by name."""
        from connector_core.components import Source

        return self._registry("register_sources", ComponentRegistry("source", Source))

    @functools.cached_property
    def mappers(self) -> ComponentRegistry:
        """Mapper types by name."""
        from connector_core.components import Mapper

        return self._registry("register_mappers", ComponentRegistry("mapper", Mapper))

    @functools.cached_property
    def sinks(self) -> ComponentRegistry:
        """Sink types by name."""
        from connector_core.components import Sink

        return self._registry("register_sinks", ComponentRegistry("sink", Sink))

    @functools.cached_property
    def connections(self) -> ComponentRegistry:
        """Connection types by name."""
        from connector_core.components import Connection

        return self._registry("register_connections", ComponentRegistry("connection", Connection))

    def _registry(self, hook_name: str, registry: ComponentRegistry) -> ComponentRegistry:
        registry.on_broken = self._skip  # a lazily registered type that fails to load: as a failing hook
        self._call_registration(hook_name, registry)
        return registry

    def _call_registration(self, hook_name: str, registry: ComponentRegistry | CommandRegistry) -> None:
        # Called implementation by implementation so a clash can name the plugin that caused it, and so one
        # broken plugin loses only its own registrations instead of stopping every command.
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            registry.current_plugin = impl.plugin_name
            self._trace(f"{hook_name} -> {impl.plugin_name}")
            try:
                impl.function(registry)
            except NameClash as exc:
                raise NameClash(f"{exc}; disable one of them with {BLOCK_ENV}=NAME") from None
            except Exception as exc:
                registry.withdraw(impl.plugin_name)
                detail = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                self._skip(impl.plugin_name, f"failed in {hook_name}: {detail}")

    def _skip(self, name: str, problem: str) -> None:
        """Take a plugin out whole: no types, commands or observer calls from a plugin that is half broken."""
        self.pm.unregister(name=name)
        for cached in ("sources", "mappers", "sinks", "connections"):
            registry = self.__dict__.get(cached)  # only the registries already built hold its types
            if registry is not None:
                registry.withdraw(name)
        info = self._infos.get(name) or PluginInfo(name, IN_CODE, "-")
        self._infos[name] = info._replace(problem=problem)
        _warn_skipped(info, problem)

    def commands(self) -> CommandRegistry:
        """Sub-commands contributed by plugins."""
        registry = CommandRegistry()
        self._call_registration("register_commands", registry)
        return registry

    def add_local_plugin(self, path: Path) -> str:
        """Register the plugin module in the file ``path`` (a spec's ``plugins:`` entry); returns its name.

        Registries already built are rebuilt on next use, so the plugin's components become available.
        """
        name = f"local:{path.name}"
        if self.pm.has_plugin(name):
            return name
        _register(self.pm, import_plugin_file(path), name)
        self._infos[name] = PluginInfo(name, "(local file)", str(path))
        for registry in ("sources", "mappers", "sinks", "connections"):
            self.__dict__.pop(registry, None)
        return name

    def plugin_info(self, name: str) -> PluginInfo | None:
        """The distribution and version of the plugin registered as ``name``, or None."""
        return self._infos.get(name)

    def plugins(self) -> list[PluginInfo]:
        """Every loaded plugin with the component types it registered."""
        by_plugin: dict[str, list[str]] = {}
        for registry in (self.sources, self.mappers, self.sinks, self.connections):
            for entry in registry.entries.values():
                by_plugin.setdefault(entry.plugin, []).append(f"{registry.kind}:{entry.name}")
        return [
            info._replace(components=tuple(sorted(by_plugin.get(name, []))))
            for name, info in sorted(self._infos.items())
        ]


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable, "").strip()
    return {name.strip() for name in value.split(",") if name.strip()} if value else None


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    # pluggy checks hook argument names at registration: a typo there is the plugin's error, not a crash.
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None
    try:
        check_and_guard(pm, plugin, name, pm.trace.root.get("hook"))
    except PluginError:
        pm.unregister(plugin)
        raise


def _warn_skipped(info: PluginInfo, problem: str) -> None:
    """One warning line: which plugin, from which distribution, what went wrong and how to silence it."""
    if info.distribution == IN_CODE:
        log.warning("plugin %r %s; it is skipped", info.name, problem)
    else:
        log.warning(
            "plugin %r (distribution %s %s) %s; it is skipped. Fix or uninstall it, or disable it with %s=%s",
            *(info.name, info.distribution, info.version, problem, BLOCK_ENV, info.name),
        )


def _distribution(ep: EntryPoint) -> str:
    """The name of the distribution that declares ``ep``."""
    return ep.dist.name if ep.dist else "?"


def built_in_plugins() -> list[str]:
    """The names of crmsync's own plugins, as installed."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if _distribution(ep) == OWN_DISTRIBUTION)


def _load_entry_point(pm: pluggy.PluginManager, ep: EntryPoint) -> PluginInfo:
    """Import and register one entry-point plugin; a broken one is skipped with a warning, never fatal."""
    dist = ep.dist
    info = PluginInfo(ep.name, _distribution(ep), dist.version if dist else "?")
    try:
        plugin = ep.load()
    except Exception as exc:
        problem = f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
    else:
        try:
            _register(pm, plugin, ep.name)
            pm.check_pending()
            return info
        except (PluginError, pluggy.PluginValidationError) as exc:
            if pm.is_registered(plugin):
                pm.unregister(plugin)
            problem = f"cannot be registered: {exc}"
    _warn_skipped(info, problem)
    return info._replace(problem=problem)


def get_plugin_host(load_entrypoints: bool = True, extra_plugins: Iterable[tuple[str, object]] = ()) -> PluginHost:
    """Build a fresh plugin manager for one run.

    :param load_entrypoints: discover plugins published under the ``crmsync`` entry-point group, honouring
        the ``CRMSYNC_PLUGINS`` allowlist and ``CRMSYNC_DISABLE_PLUGINS`` blocklist. One that fails to import
        or to register is skipped with a warning naming it, so a broken plugin never stops every command.
    :param extra_plugins: ``(name, module_or_object)`` pairs to register as well (handy in tests).
    """
    pm = pluggy.PluginManager("crmsync")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    if load_entrypoints:
        allow, block = _names_from_env(ALLOW_ENV), _names_from_env(BLOCK_ENV) or set()
        # crmsync's own plugins first: a plugin taking a built-in's name is the one skipped, whatever the order
        # the installed distributions are found in.
        found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: _distribution(ep) != OWN_DISTRIBUTION)
        for ep in found:
            if ep.name in block or (allow is not None and ep.name not in allow):
                continue
            if ep.name in infos:
                if _distribution(ep) != infos[ep.name].distribution:  # one distribution found twice is not a clash
                    log.warning(
                        "plugin %r of distribution %s is skipped: %s's plugin has that name; rename its entry point",
                        *(ep.name, _distribution(ep), infos[ep.name].distribution),
                    )
                continue
            infos[ep.name] = _load_entry_point(pm, ep)
    for name, plugin in extra_plugins:
        if pm.get_plugin(name) is plugin:  # installed, and handed in too (a test written before installing)
            continue
        _register(pm, plugin, name)
        infos[name] = PluginInfo(name, IN_CODE, "-")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
    if os.environ.get(TRACE_ENV) == "1":
        pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
        pm.enable_tracing()
    return PluginHost(pm, infos)

"""Registries handed to the registration hooks; they remember which plugin registered what."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, cast

from connector_core.errors import PluginError

if TYPE_CHECKING:
    from connector_core.components import ComponentClass


class NameClash(PluginError):
    """Two plugins registered the same name: neither is broken on its own, so the user has to choose."""


# Plain named tuples, not attrs classes: registries are built for `crmsync --help`, which must not import attrs.
class Registration(NamedTuple):
    """One registered component type: its name, class and the plugin that provided it."""

    name: str
    cls: ComponentClass
    plugin: str


class ComponentRegistry:
    """Component types of one kind (sources, mappers, sinks or connections), by name.

    A type is registered with its class (:meth:`add`) or by where its class is (:meth:`add_lazy`): then its module
    is imported only when a spec uses the type, so a job pays for importing the components it runs, not every
    component of every plugin installed.
    """

    def __init__(self, kind: str, base: type) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Registration] = {}
        #: Types registered by place and not imported yet: name → (``"module:Class"``, plugin).
        self._lazy: dict[str, tuple[str, str]] = {}
        #: Set by the plugin manager while a plugin's hook runs, so clashes can name both plugins.
        self.current_plugin = "?"
        #: Called with (plugin, problem) when a lazily registered type fails to load; the plugin manager skips
        #: the plugin as a whole, as when its registration hook fails. Without one, :meth:`get` raises.
        self.on_broken: Callable[[str, str], None] | None = None

    @property
    def entries(self) -> dict[str, Registration]:
        """Every registration by name (lazily registered types are imported here)."""
        for name in list(self._lazy):
            self.get(name)
        return self._entries

    def add(self, name: str, cls: type) -> None:
        """Register ``cls`` under ``name``; it must subclass the registry's base and declare Options."""
        registration = self._registration(name, cls, self.current_plugin)
        self._check_free(name)
        self._entries[name] = registration

    def add_lazy(self, name: str, target: str) -> None:
        """Register the class at ``target`` (``"package.module:Class"``) under ``name`` without importing it:
        it is imported, and checked as :meth:`add` checks a class, when a spec first uses ``name``."""
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered {self.kind} {name!r} at {target!r}; "
                "expected 'package.module:Class'"
            )
        self._check_free(name)
        self._lazy[name] = (target, self.current_plugin)

    def withdraw(self, plugin: str) -> None:
        """Forget every type ``plugin`` registered (its registration hook failed half-way)."""
        self._entries = {name: entry for name, entry in self._entries.items() if entry.plugin != plugin}
        self._lazy = {name: entry for name, entry in self._lazy.items() if entry[1] != plugin}

    def get(self, name: str) -> Registration | None:
        """The registration for ``name``, or None (also when its lazily registered class fails to load)."""
        entry = self._entries.get(name)
        if entry is not None or name not in self._lazy:
            return entry
        target, plugin = self._lazy.pop(name)
        module, _, attribute = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attribute)
            entry = self._registration(name, cls, plugin)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            problem = f"failed to load {self.kind} {name!r} from {target}: {detail}"
            if self.on_broken is None:
                raise PluginError(f"plugin {plugin!r} {problem}") from None
            self.on_broken(plugin, problem)
            return None
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted((*self._entries, *self._lazy))

    def _check_free(self, name: str) -> None:
        previous = self._entries.get(name)
        owner = previous.plugin if previous is not None else self._lazy.get(name, ("", None))[1]
        if owner is not None:
            raise NameClash(
                f"{self.kind} type {name!r} is registered by both plugin {owner!r} and plugin {self.current_plugin!r}"
            )

    def _registration(self, name: str, cls: object, plugin: str) -> Registration:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"plugin {plugin!r} registered {self.kind} {name!r} as {cls!r}, "
                f"which is not a subclass of {self.base.__name__}"
            )
        import attrs  # imported by the component classes anyway; not needed to list commands

        registered = cast("ComponentClass", cls)
        if not attrs.has(registered.Options):
            raise PluginError(f"{self.kind} {name!r} ({plugin}): Options must be an attrs class")
        return Registration(name, registered, plugin)


class Command(NamedTuple):
    """A CLI sub-command contributed by a plugin."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    plugin: str


class CommandRegistry:
    """Sub-commands contributed through ``register_commands``."""

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self.current_plugin = "?"

    def add(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None:
        """Add the sub-command ``crmsync NAME``."""
        previous = self.commands.get(name)
        if previous is not None:
            raise NameClash(
                f"command {name!r} is registered by both plugin {previous.plugin!r} and plugin {self.current_plugin!r}"
            )
        self.commands[name] = Command(name, help, configure, run, self.current_plugin)

    def withdraw(self, plugin: str) -> None:
        """Forget every command ``plugin`` added (its registration hook failed half-way)."""
        self.commands = {name: command for name, command in self.commands.items() if command.plugin != plugin}

"""Registries handed to the registration hooks; they remember which plugin registered what."""

from __future__ import annotations

import argparse
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
    """Component types of one kind (sources, mappers, sinks or connections), by name."""

    def __init__(self, kind: str, base: type) -> None:
        self.kind = kind
        self.base = base
        self.entries: dict[str, Registration] = {}
        #: Set by the plugin manager while a plugin's hook runs, so clashes can name both plugins.
        self.current_plugin = "?"

    def add(self, name: str, cls: type) -> None:
        """Register ``cls`` under ``name``; it must subclass the registry's base and declare Options."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"plugin {self.current_plugin!r} registered {self.kind} {name!r} as {cls!r}, "
                f"which is not a subclass of {self.base.__name__}"
            )
        import attrs  # imported by the component classes anyway; not needed to list commands

        registered = cast("ComponentClass", cls)
        if not attrs.has(registered.Options):
            raise PluginError(f"{self.kind} {name!r} ({self.current_plugin}): Options must be an attrs class")
        previous = self.entries.get(name)
        if previous is not None:
            raise NameClash(
                f"{self.kind} type {name!r} is registered by both plugin {previous.plugin!r} "
                f"and plugin {self.current_plugin!r}"
            )
        self.entries[name] = Registration(name, registered, self.current_plugin)

    def withdraw(self, plugin: str) -> None:
        """Forget every type ``plugin`` registered (its registration hook failed half-way)."""
        self.entries = {name: entry for name, entry in self.entries.items() if entry.plugin != plugin}

    def get(self, name: str) -> Registration | None:
        """The registration for ``name``, or None."""
        return self.entries.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self.entries)


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

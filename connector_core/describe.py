"""What ``crmsync describe TYPE`` prints: a component type's options, outputs and the plugin providing it."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connector_core.components import Component, ComponentClass, Mapper
from connector_core.errors import UsageError
from connector_core.options import OptionInfo, describe
from connector_core.plugin_manager import PluginHost
from connector_core.registry import ComponentRegistry, Registration


def registries(host: PluginHost) -> tuple[ComponentRegistry, ...]:
    """Every component registry of ``host``, in spec order."""
    return host.connections, host.sources, host.mappers, host.sinks


def find_type(host: PluginHost, type_name: str) -> list[tuple[str, Registration]]:
    """``(kind, registration)`` for every kind that has ``type_name`` (``jsonl`` is a source and a sink).

    :raises UsageError: when no installed plugin provides ``type_name``.
    """
    found = [(registry.kind, entry) for registry in registries(host) if (entry := registry.get(type_name))]
    if not found:
        known = sorted({name for registry in registries(host) for name in registry.names()})
        raise UsageError(f"no installed plugin provides a type {type_name!r} (known types: {', '.join(known)})")
    return found


def describe_type(host: PluginHost, kind: str, entry: Registration) -> Iterator[str]:
    """The lines ``crmsync describe`` prints for one registration."""
    info = host.plugin_info(entry.plugin)
    origin = f"{info.distribution} {info.version}" if info else "?"
    yield f"{kind} {entry.name}  (plugin {entry.plugin}, {origin})"
    summary = (inspect.getdoc(entry.cls) or "").split("\n\n")[0].replace("\n", " ")
    if summary:
        yield f"  {summary}"
    options = describe(entry.cls.Options)
    yield "  options:" if options else "  options: none"
    width = max((len(option.key) for option in options), default=0)
    for option in options:
        yield f"    {option.key:<{width}}  {option.type}  {_default(option)}{_flags(option)}"
        if option.help:
            yield f"    {'':<{width}}  {option.help}"
    common = _common_options(kind, entry.cls)
    if common:
        yield f"  common options: {common}"
    if issubclass(entry.cls, Component):
        # As a spec addresses them: by the component's name (the default output) or name.output.
        outputs = ["NAME" if output == "default" else f"NAME.{output}" for output in entry.cls.outputs]
        named = "  (NAME: the component's name in the spec)" if outputs else ""
        yield f"  outputs: {', '.join(outputs) or 'none'}{named}"


def _default(option: OptionInfo) -> str:
    if option.required:
        return "(required)"
    if option.secret:
        return "(optional)"
    return f"(default: {json.dumps(_jsonable(option.default), default=str)})"


def _flags(option: OptionInfo) -> str:
    flags = []
    if option.secret:
        flags.append("secret: masked in logs and reports")
    if option.connection:
        wanted = option.connection if isinstance(option.connection, str) else "any"
        flags.append(f"names a connection of type {wanted}")
    return f"  [{'; '.join(flags)}]" if flags else ""


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _common_options(kind: str, cls: ComponentClass) -> str:
    if kind == "source":
        return "key (record key fields)"
    if issubclass(cls, Mapper):
        limit = f", at most {cls.max_batch_size}" if cls.max_batch_size else ""
        return f"inputs, batch_size (default {cls.batch_size}{limit}), concurrency (default {cls.concurrency})"
    return ""

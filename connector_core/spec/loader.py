"""Load a sync spec file: YAML, env interpolation, structure, plugin options and graph checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cattrs

from connector_core.errors import PluginError, SpecError
from connector_core.options import check_connection_references, secret_values
from connector_core.plugin_manager import PluginHost
from connector_core.redact import Redactor
from connector_core.registry import ComponentRegistry
from connector_core.spec.converter import make_converter, structure_errors
from connector_core.spec.envsubst import EnvSubstitution
from connector_core.spec.graph import check_graph
from connector_core.spec.model import ERRORS_STREAM, ComponentSpec, RawSpec, SyncSpec
from connector_core.spec.yaml_source import line_of, parse_yaml

#: Keys every component understands; everything else is the plugin's own options.
_COMMON_KEYS = {
    "source": ("type", "key"),
    "mapper": ("type", "inputs", "batch_size", "concurrency"),
    "sink": ("type", "inputs", "batch_size", "concurrency"),
    "connection": ("type",),
}
_SECTIONS = (("connections", "connection"), ("sources", "source"), ("mappers", "mapper"), ("sinks", "sink"))


class _Problems:
    """Collects ``file:line: path: message`` lines."""

    def __init__(self, path: Path, lines: dict[str, int]) -> None:
        self.path, self.lines, self.items = path, lines, []
        #: Values interpolated from the environment: never shown in a message.
        self.redactor = Redactor()
        #: Paths whose env variable is missing: a type error there is a consequence, not another problem.
        self.unset: set[str] = set()

    def add(self, spec_path: str, message: str) -> None:
        line = line_of(self.lines, spec_path)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(self.redactor.text(f"{where}: {spec_path}: {message}"))

    def add_structure(self, spec_path: str, message: str) -> None:
        if spec_path not in self.unset:
            self.add(spec_path, message)


def load_spec(path: str | Path, host: PluginHost, environ: Mapping[str, str] | None = None) -> SyncSpec:
    """Load and validate the spec at ``path`` against the plugins in ``host``.

    :raises SpecError: with one readable line per problem.
    """
    path = Path(path).resolve()
    data, lines = parse_yaml(path)
    problems = _Problems(path, lines)
    if not isinstance(data, dict):
        raise SpecError([f"{path}:1: $: a spec must be a mapping with version, job and components"])
    public = data.get("public_env") if isinstance(data.get("public_env"), list) else []
    env = EnvSubstitution(os.environ if environ is None else environ, frozenset(map(str, public)))
    data = env.apply(data)
    problems.redactor = Redactor(env.secrets)
    for spec_path, message in env.problems:
        problems.add(spec_path, message)
        problems.unset.add(spec_path)

    converter = make_converter(path.parent)
    try:
        raw = converter.structure(data, RawSpec)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        for spec_path, message in structure_errors(exc, "$"):
            problems.add_structure(spec_path, message)
        raise SpecError(problems.items) from None
    settings = raw.settings
    for setting in ("queue_batches", "source_batch_size"):
        if getattr(settings, setting) < 1:
            problems.add(f"$.settings.{setting}", "must be a positive integer")
    if settings.max_error_rate is not None and not 0 <= settings.max_error_rate <= 1:
        problems.add("$.settings.max_error_rate", "must be a fraction between 0 and 1")

    for index, plugin_path in enumerate(raw.plugins):
        try:
            host.add_local_plugin(plugin_path)
        except PluginError as exc:
            problems.add(f"$.plugins[{index}]", str(exc))
    registries = {
        "connection": host.connections,
        "source": host.sources,
        "mapper": host.mappers,
        "sink": host.sinks,
    }
    connections: dict[str, ComponentSpec] = {}
    components: dict[str, ComponentSpec] = {}
    declared: set[str] = set()
    for section, kind in _SECTIONS:
        for name, body in getattr(raw, section).items():
            where = f"$.{section}.{name}"
            if "." in name or name == ERRORS_STREAM:
                problems.add(where, f"invalid component name {name!r} ('.' and {ERRORS_STREAM!r} are reserved)")
                continue
            target = connections if kind == "connection" else components
            if name in declared:
                problems.add(where, f"component name {name!r} is used twice")
                continue
            declared.add(name)
            spec = _component(name, kind, body, where, registries[kind], converter, problems)
            if spec is not None:
                target[name] = spec

    for spec in components.values():
        for message_path, message in check_connection_references(spec, connections):
            problems.add(message_path, message)
    broken = frozenset(declared - set(components) - set(connections))
    graph_problems, warnings = check_graph(components, broken)
    for spec_path, message in graph_problems:
        problems.add(spec_path, message)
    if not any(spec.kind == "source" for spec in components.values()) and not problems.items:
        problems.add("$.sources", "a job needs at least one source")
    if problems.items:
        raise SpecError(problems.items)
    all_specs = [*connections.values(), *components.values()]
    return SyncSpec(
        job=raw.job,
        path=path,
        settings=raw.settings,
        connections=connections,
        components=components,
        secrets=frozenset(env.secrets).union(*(secret_values(spec.options) for spec in all_specs)),
        state=raw.state,
        warnings=tuple(f"{path}: {warning}" for warning in warnings),
    )


def _component(
    name: str,
    kind: str,
    body: dict[str, Any],
    where: str,
    registry: ComponentRegistry,
    converter: cattrs.Converter,
    problems: _Problems,
) -> ComponentSpec | None:
    if not isinstance(body, dict):
        problems.add(where, f"a {kind} must be a mapping with a 'type'")
        return None
    common = {key: body[key] for key in _COMMON_KEYS[kind] if key in body}
    options = {key: value for key, value in body.items() if key not in common}
    type_name = common.get("type")
    if not isinstance(type_name, str):
        problems.add(f"{where}.type", f"missing {kind} type (known: {', '.join(registry.names()) or 'none'})")
        return None
    registration = registry.get(type_name)
    if registration is None:
        known = ", ".join(registry.names()) or "none"
        problems.add(f"{where}.type", f"unknown {kind} type {type_name!r} (known {kind} types: {known})")
        return None
    ok = True
    inputs = common.get("inputs", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if kind in ("mapper", "sink") and (not isinstance(inputs, list) or not inputs):
        problems.add(f"{where}.inputs", "needs a list of input streams")
        ok = False
    key = common.get("key", [])
    key = [key] if isinstance(key, str) else key
    # A bad batch_size or concurrency is reported but the component is kept, so its inputs are still checked
    # (the spec is rejected anyway).
    for field in ("batch_size", "concurrency"):
        value = common.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.add(f"{where}.{field}", "must be a positive integer")
    largest = getattr(registration.cls, "max_batch_size", None)
    if largest is not None and isinstance(common.get("batch_size"), int) and common["batch_size"] > largest:
        problems.add(f"{where}.batch_size", f"{type_name} accepts at most {largest} records per call")
    try:
        structured = converter.structure(options, registration.cls.Options)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        for spec_path, message in structure_errors(exc, where):
            problems.add_structure(spec_path, message)
        return None
    if not ok:
        return None
    return ComponentSpec(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        type=type_name,
        cls=registration.cls,
        options=structured,
        inputs=tuple(str(ref) for ref in inputs),
        key=tuple(str(field) for field in key),
        batch_size=common.get("batch_size"),
        concurrency=common.get("concurrency"),
        path=where,
    )

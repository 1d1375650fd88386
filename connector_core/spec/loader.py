"""Load a sync spec file: YAML, env interpolation, structure, plugin options and graph checks."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from connector_core.errors import PluginError, SpecError
from connector_core.options import check_connection_references, secret_values
from connector_core.plugin_manager import PluginHost
from connector_core.redact import Redactor
from connector_core.registry import ComponentRegistry
from connector_core.spec.converter import make_converter, structure_errors, yaml_name
from connector_core.spec.envsubst import EnvSubstitution
from connector_core.spec.graph import check_graph
from connector_core.spec.model import ERRORS_STREAM, ComponentSpec, RawSpec, SyncSpec
from connector_core.spec.suggest import did_you_mean
from connector_core.spec.yaml_source import line_of, parse_yaml

#: Keys every component understands; everything else is the plugin's own options.
_COMMON_KEYS = {
    "source": ("type", "key"),
    "mapper": ("type", "inputs", "batch_size", "concurrency"),
    "sink": ("type", "inputs", "batch_size", "concurrency"),
    "connection": ("type",),
}
_SECTIONS = (("connections", "connection"), ("sources", "source"), ("mappers", "mapper"), ("sinks", "sink"))
_ALL_COMMON_KEYS = {key for keys in _COMMON_KEYS.values() for key in keys}
#: A plugin's own option (not a common key, not the name of a connection), at any depth below it.
_PLUGIN_OPTION = re.compile(r"\$\.(?P<section>connections|sources|mappers|sinks)\.[^.\[]+\.(?P<key>[^.\[]+)")


class _Problems:
    """Collects ``file:line: path: message`` lines."""

    def __init__(self, path: Path, lines: dict[str, int]) -> None:
        self.path, self.lines = path, lines
        self.items: list[str] = []
        #: Values interpolated from the environment: never shown in a message.
        self.redactor = Redactor()
        #: Paths whose env variable is missing: a type error there is a consequence, not another problem.
        self.unset: set[str] = set()
        #: Offline loading: paths left unresolved (→ why); a type error there means the value is needed.
        self.deferred: dict[str, str] = {}

    def where(self, spec_path: str) -> str:
        line = line_of(self.lines, spec_path)
        return f"{self.path}:{line}: {spec_path}" if line else f"{self.path}: {spec_path}"

    def add(self, spec_path: str, message: str) -> None:
        if spec_path in self.unset:
            return  # its value is missing, already said: an unknown type '' or input '' follows from that
        self.items.append(self.redactor.text(f"{self.where(spec_path)}: {message}"))

    def add_structure(self, pairs: list[tuple[str, str]]) -> None:
        for spec_path, message in pairs:
            self.add(spec_path, self.deferred.pop(spec_path, message))


def load_spec(
    path: str | Path, host: PluginHost, environ: Mapping[str, str] | None = None, *, offline: bool = False
) -> SyncSpec:
    """Load and validate the spec at ``path`` against the plugins in ``host``.

    :param offline: for commands that call no remote service (``validate``, ``plan``, ``state``, ``errors``):
        an unset environment variable in a plugin's text option (an API key) is a warning in
        :attr:`SyncSpec.warnings`, and the value stays as written (an :class:`Unresolved` placeholder). Anywhere
        else (job, state, settings, type, inputs, paths, numbers) it is an error, as it always is for a run.
    :raises SpecError: with one readable line per problem.
    """
    path = Path(path).resolve()
    data, lines = parse_yaml(path)
    problems = _Problems(path, lines)
    if not isinstance(data, dict):
        raise SpecError([f"{path}:1: $: a spec must be a mapping with version, job and components"])
    public = data.get("public_env")
    public = public if isinstance(public, list) else []
    environ = os.environ if environ is None else environ
    env = EnvSubstitution(environ, frozenset(map(str, public)), _is_plugin_option if offline else None)
    data = env.apply(data)
    problems.redactor = Redactor(env.secrets)
    for spec_path, message in env.problems:
        problems.add(spec_path, message)
    problems.unset.update(spec_path for spec_path, _ in env.problems)
    problems.deferred = dict(env.deferred)

    converter = make_converter(path.parent)
    raw = _structure_top(data, converter, problems)
    for index, plugin_path in enumerate(raw.plugins if raw is not None else ()):
        try:
            host.add_local_plugin(plugin_path)
        except PluginError as exc:
            problems.add(f"$.plugins[{index}]", str(exc))
    connections, components, declared = _components(data, host, converter, problems)
    for spec in components.values():
        for message_path, message in check_connection_references(spec, connections):
            problems.add(message_path, message)
    for spec in components.values():
        if spec.key and not problems.items:  # reads the input: only worth it for an otherwise valid spec
            check = getattr(spec.cls, "key_problem", None)
            problem = check(spec.options, spec.key) if check is not None else None
            if problem:
                problems.add(f"{spec.path}.key", problem)
    if not problems.items:
        for spec_path, message in _shared_targets(components):
            problems.add(spec_path, message)
    broken = frozenset(declared - set(components) - set(connections))
    graph_problems, warnings = check_graph(components, broken)
    for spec_path, message in graph_problems:
        problems.add(spec_path, message)
    if not any(spec.kind == "source" for spec in components.values()) and not problems.items:
        problems.add("$.sources", "a job needs at least one source")
    if problems.items or raw is None:
        raise SpecError(problems.items)
    all_specs = [*connections.values(), *components.values()]
    unset = [
        f"{problems.where(spec_path)}: {why}; `crmsync run` needs it" for spec_path, why in problems.deferred.items()
    ]
    return SyncSpec(
        job=raw.job,
        path=path,
        settings=raw.settings,
        connections=connections,
        components=components,
        secrets=frozenset(env.secrets).union(*(secret_values(spec.options) for spec in all_specs)),
        state=raw.state,
        warnings=(*unset, *(f"{path}: {warning}" for warning in warnings)),
    )


def _shared_targets(components: dict[str, ComponentSpec]) -> list[tuple[str, str]]:
    """Sinks writing a file a source of the job reads, a file an earlier sink writes (see
    :meth:`Sink.output_file`, :meth:`Source.input_file`), or a file something on disk is in the way of, as
    problems."""
    problems: list[tuple[str, str]] = []
    inputs = {read.path: spec.name for spec in components.values() if (read := spec.input_file) is not None}
    writers: dict[Path, str] = {}
    for spec in components.values():
        output = spec.output_file
        if output is None:
            continue
        where = f"{spec.path}.{output.option}"
        blocked = _in_the_way(output.path)
        if blocked:
            fix = "point it at a file in a folder"
            problems.append((where, f"sink {spec.name!r} writes {output.path}, but {blocked}; {fix}"))
        elif output.path in inputs:
            problems.append(
                (
                    where,
                    f"sink {spec.name!r} writes {output.path}, the input of source {inputs[output.path]!r}: the "
                    "run would replace its input with its output; give the sink a file of its own",
                )
            )
        elif output.path in writers:
            problems.append(
                (
                    where,
                    f"sink {writers[output.path]!r} writes {output.path} too: each would overwrite what the other "
                    "wrote; give each sink a file of its own",
                )
            )
        writers.setdefault(output.path, spec.name)
    return problems


def _in_the_way(path: Path) -> str | None:
    """What on disk keeps a sink from writing ``path`` (a folder there, a file where a folder of it would be)."""
    if path.is_dir():
        return f"{path} is a folder"
    blocking = file_in_the_way(path)
    return None if blocking is None else f"{blocking} is a file, not a folder"


def file_in_the_way(path: Path) -> Path | None:
    """The file where a folder of ``path`` would be (so ``path`` cannot be created), if there is one."""
    folder = next((parent for parent in path.parents if parent.exists()), None)
    return folder if folder is not None and not folder.is_dir() else None


def _is_plugin_option(spec_path: str) -> bool:
    match = _PLUGIN_OPTION.match(spec_path)
    if match is None:
        return False
    kind = dict(_SECTIONS)[match.group("section")]
    return match.group("key") not in (*_COMMON_KEYS[kind], "connection")


def _structure_top(data: dict[str, Any], converter: cattrs.Converter, problems: _Problems) -> RawSpec | None:
    """The top level and settings, problems reported; None when it does not structure (components are still
    checked, so that every problem is reported at once)."""
    try:
        raw = converter.structure(data, RawSpec)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        problems.add_structure(structure_errors(exc, "$"))
        return None
    settings = raw.settings
    for setting in ("queue_batches", "source_batch_size"):
        if getattr(settings, setting) < 1:
            problems.add(f"$.settings.{setting}", "must be a positive integer")
    if settings.max_error_rate is not None and not 0 <= settings.max_error_rate <= 1:
        problems.add("$.settings.max_error_rate", "must be a fraction between 0 and 1")
    return raw


def _components(
    data: dict[str, Any], host: PluginHost, converter: cattrs.Converter, problems: _Problems
) -> tuple[dict[str, ComponentSpec], dict[str, ComponentSpec], set[str]]:
    """``(connections, components, declared names)``; a component that does not load is reported, left out."""
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
        bodies = data.get(section)
        if not isinstance(bodies, dict):
            continue  # reported by the top-level structure
        for name, body in bodies.items():
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
    return connections, components, declared


def _component(
    name: str,
    kind: str,
    body: Any,
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
        hint = did_you_mean(type_name, registry.names())
        problems.add(f"{where}.type", f"unknown {kind} type {type_name!r}{hint} (known {kind} types: {known})")
        return None
    ok = _check_streams(kind, common, where, problems)
    # A bad batch_size or concurrency is reported but the component is kept, so its inputs are still checked
    # (the spec is rejected anyway).
    for field in ("batch_size", "concurrency"):
        value = common.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.add(f"{where}.{field}", "must be a positive integer")
    largest = getattr(registration.cls, "max_batch_size", None)
    if largest is not None and isinstance(common.get("batch_size"), int) and common["batch_size"] > largest:
        problems.add(f"{where}.batch_size", f"{type_name} accepts at most {largest} records per call")
    options_class: type = registration.cls.Options
    option_names = {yaml_name(field.name) for field in attrs.fields(options_class)}
    for key in sorted(set(options) & _ALL_COMMON_KEYS - option_names):
        owners = " and ".join(f"{other}s" for other, keys in _COMMON_KEYS.items() if key in keys)
        problems.add(f"{where}.{key}", f"unknown key: {key!r} is only for {owners}")
        del options[key]
    try:
        structured: Any = converter.structure(options, options_class)
    except Exception as exc:  # a plugin's validator may raise anything; the user gets a line, not a traceback
        problems.add_structure(structure_errors(exc, where, _COMMON_KEYS[kind]))
        return None
    if not ok:
        return None
    return ComponentSpec(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        type=type_name,
        cls=registration.cls,
        options=structured,
        inputs=tuple(_names(common.get("inputs", [])) or ()),
        key=tuple(_names(common.get("key", [])) or ()),
        batch_size=common.get("batch_size"),
        concurrency=common.get("concurrency"),
        path=where,
    )


def _check_streams(kind: str, common: dict[str, Any], where: str, problems: _Problems) -> bool:
    """Whether ``inputs`` (mappers, sinks) and ``key`` (sources) are a name or a list of names."""
    ok = True
    if kind in ("mapper", "sink") and not _names(common.get("inputs")):
        problems.add(f"{where}.inputs", "needs a list of input streams")
        ok = False
    if _names(common.get("key", [])) is None:
        problems.add(f"{where}.key", "needs a field name or a list of field names")
        ok = False
    return ok


def _names(value: Any) -> list[str] | None:
    """A name or a list of names as a list; None when ``value`` is neither."""
    names = [value] if isinstance(value, str) else value
    return names if isinstance(names, list) and all(isinstance(item, str) for item in names) else None

"""Checks on the job graph: inputs that exist, outputs components really have, no cycles, nothing unread."""

from __future__ import annotations

from connector_core.components import DEFAULT
from connector_core.spec.model import ERRORS_STREAM, ComponentSpec
from connector_core.spec.suggest import did_you_mean


def parse_stream(ref: str) -> tuple[str, str]:
    """``contacts.created`` → ``("contacts", "created")``; a bare name is the default output."""
    component, _, output = ref.partition(".")
    return component, output or DEFAULT


def stream_name(component: str, output: str) -> str:
    """The inverse of :func:`parse_stream`: how a stream is named in specs and reports."""
    return component if output == DEFAULT else f"{component}.{output}"


def check_graph(
    components: dict[str, ComponentSpec], broken: frozenset[str] = frozenset()
) -> tuple[list[tuple[str, str]], list[str]]:
    """Return ``(problems, warnings)``; each problem is a ``(spec path, message)`` pair.

    ``broken`` names components declared in the spec that failed to load (already reported): reading them is
    not reported again as an unknown input.
    """
    problems: list[tuple[str, str]] = []
    read: set[tuple[str, str]] = set()
    for spec in components.values():
        for index, ref in enumerate(spec.inputs):
            where = f"{spec.path}.inputs[{index}]"
            if ref in spec.inputs[:index]:
                problems.append((where, f"input {ref!r} is listed twice"))
                continue
            if ref == ERRORS_STREAM:
                if spec.kind != "sink":
                    problems.append((where, "only sinks may read the error stream"))
                continue
            name, output = parse_stream(ref)
            producer = components.get(name)
            if producer is None and name in broken:
                continue
            if producer is None:
                known = ", ".join(sorted(components)) or "none"
                hint = did_you_mean(name, components)
                problems.append((where, f"unknown input {ref!r}{hint} (components: {known})"))
            elif output not in producer.outputs:
                have = ", ".join(stream_name(name, o) for o in producer.outputs) or "none"
                problems.append((where, f"{name!r} has no output {output!r} (its outputs: {have})"))
            else:
                read.add((name, output))
    problems.extend(_cycles(components))
    warnings = [
        f"{spec.path}: output {stream_name(spec.name, output)!r} is not read by any component"
        for spec in components.values()
        for output in spec.outputs
        if (spec.name, output) not in read and output not in getattr(spec.cls, "quiet_outputs", ())
    ]
    return problems, warnings


def _cycles(components: dict[str, ComponentSpec]) -> list[tuple[str, str]]:
    upstream = {
        name: {parse_stream(ref)[0] for ref in spec.inputs if parse_stream(ref)[0] in components}
        for name, spec in components.items()
    }
    state: dict[str, int] = {}  # 1: being visited, 2: done
    problems: list[tuple[str, str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for parent in sorted(upstream[name]):
            if state.get(parent) == 1:
                loop = [*trail[trail.index(parent) :], parent] if parent in trail else [name, parent]
                problems.append((f"{components[name].path}.inputs", "cycle: " + " -> ".join(loop)))
            elif parent not in state:
                visit(parent, [*trail, parent])
        state[name] = 2

    for name in components:
        if name not in state:
            visit(name, [name])
    return problems


def topological_order(components: dict[str, ComponentSpec]) -> list[str]:
    """Component names, every producer before its consumers (the graph is known to be acyclic)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for ref in components[name].inputs:
            parent = parse_stream(ref)[0]
            if parent in components:
                visit(parent)
        order.append(name)

    for name in components:
        visit(name)
    return order

"""Declarative component options: help text, secrets and connection references as attrs field metadata.

A component declares its options as an attrs class; :func:`option` adds what crmsync reads from each field::

    @attrs.frozen
    class Options:
        connection: str = option(help="the hubspot connection to use", connection="hubspot")
        token: str = option(help="API token; write ${HUBSPOT_TOKEN}", secret=True)
        dry_run: bool = option(False, help="send nothing")

The spec loader checks connection references against ``connections:`` (and their type), the redactor masks
secret values wherever they came from, and ``crmsync describe`` / ``crmsync schema`` show the help. Nothing
depends on an option's *name*.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from connector_core.spec.model import ComponentSpec

#: Metadata keys of an option (``attrs.field(metadata={HELP: ...})`` works as well as :func:`option`).
HELP = "help"
SECRET = "secret"
CONNECTION = "connection"
CHOICES = "choices"


#: An option that takes one name or a list of names (``by: email`` or ``by: [email, phone]``); the spec
#: converter structures either form. Read it with :func:`names`.
Names = str | list[str]


def names(value: Names | tuple[str, ...] | None) -> tuple[str, ...]:
    """The names in a :data:`Names` option, as a tuple (``"a"`` → ``("a",)``, None → ``()``)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def option(
    default: Any = attrs.NOTHING,
    *,
    help: str = "",
    secret: bool = False,
    connection: str | bool = False,
    factory: Callable[[], Any] | None = None,
    validator: Any = None,
    choices: Iterable[str] = (),
) -> Any:
    """An attrs field with crmsync metadata.

    :param default: the value when the spec omits the key (omit for a required option).
    :param help: one line for ``crmsync describe``, the JSON Schema and editors.
    :param secret: the value is masked in logs, reports and errors even when written literally in the spec.
    :param connection: the value names a connection under ``connections:``; a string also requires that
        connection's type (e.g. ``"apollo"``), ``True`` accepts any type.
    :param factory: builds a mutable default (``factory=list``).
    :param validator: an attrs validator.
    :param choices: the names a text option (or each name of a :data:`Names` option) may take, for the JSON
        Schema, when the type cannot say it (e.g. names a registry holds); the validator still checks them.
    """
    metadata: dict[str, Any] = {HELP: help}
    if secret:
        metadata[SECRET] = True
    if connection:
        metadata[CONNECTION] = connection
    if choices:
        metadata[CHOICES] = tuple(choices)
    if factory is not None:
        return attrs.field(factory=factory, validator=validator, metadata=metadata)
    return attrs.field(default=default, validator=validator, metadata=metadata)


@attrs.frozen
class OptionInfo:
    """One option as ``crmsync describe`` shows it."""

    #: The key in the spec (``from`` for a field named ``from_``).
    key: str
    type: str
    required: bool
    default: Any
    help: str
    secret: bool
    connection: str | bool


def spec_key(field: attrs.Attribute[Any]) -> str:
    """The spec key of a field: Python keywords are written with a trailing ``_`` (``from_`` reads ``from``)."""
    return field.name.rstrip("_") if field.name.endswith("_") and not field.name.startswith("_") else field.name


def resolved_fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    """The attrs fields of ``cls`` with their annotations resolved (modules may use postponed annotations)."""
    # An annotation only a type checker can resolve is shown as written.
    with contextlib.suppress(NameError, TypeError):
        attrs.resolve_types(cls)
    return tuple(attrs.fields(cls))


def describe(cls: type) -> list[OptionInfo]:
    """The options of the attrs class ``cls``, in declaration order."""
    comments = _attribute_comments(cls)
    infos = []
    for field in resolved_fields(cls):
        declared: Any = field.default
        if declared is attrs.NOTHING:
            required, default = True, None
        elif isinstance(declared, attrs.Factory):  # type: ignore[arg-type]  # a class, typed as a function
            required, default = False, declared.factory()
        else:
            required, default = False, declared
        infos.append(
            OptionInfo(
                key=spec_key(field),
                type=type_label(field.type),
                required=required,
                default=default,
                help=field.metadata.get(HELP) or comments.get(field.name, ""),
                secret=bool(field.metadata.get(SECRET)),
                connection=field.metadata.get(CONNECTION, False),
            )
        )
    return infos


def type_label(annotation: Any) -> str:
    """A short, readable form of a type annotation: ``list[str] | None``, ``Path``, ``'a' | 'b'``."""
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, str):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(type_label(arg) for arg in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_label(arg) for arg in args)}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def secret_values(options: Any) -> Iterator[str]:
    """The string values of every field marked ``secret`` in ``options`` (nested attrs options included)."""
    if not attrs.has(type(options)):
        return
    for field in attrs.fields(type(options)):
        value = getattr(options, field.name)
        if field.metadata.get(SECRET) and isinstance(value, str):
            yield value
        elif attrs.has(type(value)):
            yield from secret_values(value)


def connection_references(options: Any) -> Iterator[tuple[str, str, str | bool]]:
    """``(spec key, connection name, required connection type or True)`` for every connection reference."""
    if not attrs.has(type(options)):
        return
    for field in attrs.fields(type(options)):
        wanted = field.metadata.get(CONNECTION)
        value = getattr(options, field.name)
        if wanted and isinstance(value, str):
            yield spec_key(field), value, wanted


def check_connection_references(
    spec: ComponentSpec, connections: dict[str, ComponentSpec]
) -> Iterator[tuple[str, str]]:
    """``(spec path, problem)`` for each connection ``spec`` references that is not declared or of another type."""
    for key, name, wanted in connection_references(spec.options):
        declared = connections.get(name)
        if declared is None:
            known = ", ".join(sorted(connections)) or "none declared"
            yield f"{spec.path}.{key}", f"unknown connection {name!r} (connections: {known})"
        elif isinstance(wanted, str) and declared.type != wanted:
            yield (
                f"{spec.path}.{key}",
                f"connection {name!r} is of type {declared.type!r}; {spec.type} needs {wanted!r}",
            )


@functools.cache
def _attribute_comments(cls: type) -> dict[str, str]:
    """Help for options declared without it: a ``#:`` comment above a field, or a docstring below it (the
    conventions Sphinx autodoc reads)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = [line.strip() for line in inspect.getsource(klass).splitlines()]
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for index, line in enumerate(lines):
            if line.startswith("#:"):
                pending.append(line[2:].strip())
                continue
            match = _FIELD_LINE.match(line)
            if match and pending:
                comments[match.group(1)] = " ".join(pending)
            elif match and index + 1 < len(lines) and lines[index + 1].startswith('"""'):
                comments[match.group(1)] = _docstring_at(lines, index + 1)
            pending = []
    return comments


def _docstring_at(lines: list[str], start: int) -> str:
    text = []
    for line in lines[start:]:
        text.append(line)
        if line.endswith('"""') and (len(text) > 1 or (len(line) > 3 and line.count('"""') == 2)):
            break
    return " ".join(text).strip('" ')


_FIELD_LINE = re.compile(r"([A-Za-z_]\w*)\s*:")

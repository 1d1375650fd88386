"""One output field of the ``fields`` mapper: its rule (:class:`FieldRule`), and the rule resolved into the
functions that compute it (:func:`compile_rule`), which hold the complete semantics of a rule."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import attrs

from connector_core.options import Names, names

from .functions import CASTS, TRANSFORMS, CastError
from .values import is_empty

#: Computes one output field from the input record and the fields computed before it.
FieldFunction = Callable[[Mapping[str, Any], dict[str, Any]], Any]


def _known_transforms(_: Any, __: attrs.Attribute[Any], value: Names) -> None:
    unknown = [name for name in names(value) if name not in TRANSFORMS]
    if unknown:
        raise ValueError(
            f"unknown transform {', '.join(map(repr, unknown))} (known transforms: {', '.join(TRANSFORMS)})"
        )


def _valid_template(_: Any, __: attrs.Attribute[Any], template: str | None) -> None:
    if template is None:
        return
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # unbalanced braces
        raise ValueError(f"invalid template {template!r}: {exc}") from None
    if any(not name or name.isdigit() for name in names):
        raise ValueError(f"template {template!r} must name its fields: {{First Name}}, not {{}} or {{0}}")


@attrs.frozen
class FieldRule:
    """How one output field is computed.

    In order: take the value (``from``, ``value`` or ``template``; by default the input field of the same
    name), apply the transforms to a non-empty value, use ``default`` if the result is empty, reject the record
    if it is still empty and ``required``, then convert it to ``type``.
    """

    from_: str | None = None
    """Input field to read (YAML key ``from``); defaults to the output field's own name."""
    value: Any = None
    """A literal value instead of an input field."""
    template: str | None = attrs.field(default=None, validator=_valid_template)
    """``str.format`` template over the input record and the fields computed before this one, e.g.
    ``"{First Name} {Last Name}"``. A missing field rejects the record; a null one renders empty."""
    default: Any = None
    """Used when the value is missing or empty (null, blank text, empty list)."""
    required: bool = False
    """Reject the record when the value is still empty after transforms and default."""
    strip: bool = False
    """Shorthand for the ``strip`` transform (runs before ``transform``)."""
    lower: bool = False
    """Shorthand for the ``lower`` transform (runs before ``transform``)."""
    upper: bool = False
    """Shorthand for the ``upper`` transform (runs before ``transform``)."""
    transform: Names = attrs.field(factory=list, validator=_known_transforms)
    """A transform name or a list of them, applied in order; see ``TRANSFORMS`` for the names."""
    type: Literal["str", "int", "float", "bool"] | None = None
    """Convert the final value; a value that does not convert rejects the record."""

    def __attrs_post_init__(self) -> None:
        sources = {"from": self.from_, "value": self.value, "template": self.template}
        given = [key for key, value in sources.items() if value is not None]
        if len(given) > 1:
            raise ValueError(f"a field takes one of from, value and template, not {' and '.join(given)}")
        if self.lower and self.upper:
            raise ValueError("lower and upper exclude each other")

    @property
    def steps(self) -> tuple[str, ...]:
        """The transform chain: shorthands first, then ``transform``."""
        flags = (("strip", self.strip), ("lower", self.lower), ("upper", self.upper))
        return tuple(name for name, on in flags if on) + names(self.transform)


class RecordRejected(Exception):
    """Raised by a field function to send the record to the error stream with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TemplateScope:
    """What a template sees: computed fields over input fields, null as empty text."""

    __slots__ = ("data", "done")

    def __init__(self, data: Mapping[str, Any], done: dict[str, Any]) -> None:
        self.data, self.done = data, done

    def __getitem__(self, key: str) -> Any:
        value = self.done[key] if key in self.done else self.data[key]
        return "" if value is None else value


class CompiledRule(NamedTuple):
    """A rule resolved into functions: the value is ``get(source)``, or ``produce(data, done)`` for literals and
    templates; ``finish(value)`` then applies transforms, default, required and cast (None when there is nothing
    to do); ``convert`` is the cast alone (None without ``type``). ``finish`` is the reference semantics of a
    rule: the compiled mapper (:mod:`.field_chain`) inlines its common case and calls it for the rest.
    """

    field: str
    rule: FieldRule
    source: str
    produce: FieldFunction | None
    finish: Callable[[Any], Any] | None
    convert: Callable[[Any], Any] | None


def compile_rule(name: str, rule: FieldRule) -> CompiledRule:
    """Resolve every option of ``rule`` now, so the per-record work is minimal."""
    convert = _converter(name, rule)
    return CompiledRule(name, rule, rule.from_ or name, _producer(name, rule), _finisher(name, rule, convert), convert)


def _converter(name: str, rule: FieldRule) -> Callable[[Any], Any] | None:
    if rule.type is None:
        return None
    cast, type_name = CASTS[rule.type], rule.type

    def convert(value: Any) -> Any:
        try:
            return cast(value)
        except CastError:
            raise RecordRejected(f"field {name!r}: cannot convert {value!r} to {type_name}") from None

    return convert


def _finisher(name: str, rule: FieldRule, convert: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    steps = [TRANSFORMS[step] for step in rule.steps]
    default, required = rule.default, rule.required
    if not steps and convert is None and default is None and not required:
        return None
    origin = f"from template {rule.template!r}" if rule.template else f"from {rule.from_ or name!r}"

    def finish(value: Any) -> Any:
        if (value.__class__ is str and value and not value.isspace()) or not is_empty(value):
            for step in steps:
                value = step(value)
            if not steps or (value.__class__ is str and value and not value.isspace()) or not is_empty(value):
                return value if convert is None else convert(value)
        if default is not None:
            return default if convert is None else convert(default)
        if required:
            raise RecordRejected(f"field {name!r} is required ({origin})")
        return None if convert is not None else value  # "" is no number: empty is null once a type is set

    return finish


def _producer(name: str, rule: FieldRule) -> FieldFunction | None:
    if rule.value is not None:
        literal = rule.value
        return lambda data, done: literal
    if rule.template is not None:
        render = rule.template.format_map

        def template(data: Mapping[str, Any], done: dict[str, Any]) -> str:
            try:
                return render(_TemplateScope(data, done))
            except KeyError as exc:
                raise RecordRejected(f"field {name!r}: template refers to missing field {exc.args[0]!r}") from None
            except (ValueError, TypeError, AttributeError, IndexError) as exc:
                raise RecordRejected(f"field {name!r}: cannot render template: {exc}") from None

        return template
    return None  # read the input field inline

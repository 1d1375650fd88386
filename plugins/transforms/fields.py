"""The ``fields`` mapper: build each output record field by field from declarative rules."""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.options import Names, names, option
from connector_core.records import Record

from .field_chain import compile_fields
from .field_rules import compile_rule
from .functions import TRANSFORMS

if TYPE_CHECKING:
    from connector_core.context import RunContext


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
        fields = list(_replacement_fields(template))
    except ValueError as exc:  # unbalanced braces
        raise ValueError(f"invalid template {template!r}: {exc}") from None
    if any(not name or name.isdigit() for name, _, _ in fields):
        raise ValueError(f"template {template!r} must name its fields: {{First Name}}, not {{}} or {{0}}")
    # Known when the spec loads, unlike most format specs (they depend on each value's type): caught here, these
    # would reject every record of the run.
    bad = [f"!{conversion}" for _, conversion, _ in fields if conversion not in (None, "r", "s", "a")]
    if bad:
        raise ValueError(f"template {template!r}: unknown conversion {', '.join(bad)} (use !s, !r or !a)")
    for name, conversion, spec in fields:
        if conversion and spec and "{" not in spec:  # a conversion makes the value text
            try:
                format("", spec)
            except ValueError as exc:
                raise ValueError(f"template {template!r}: {{{name}!{conversion}:{spec}}}: {exc}") from None


def _replacement_fields(template: str) -> Iterator[tuple[str, str | None, str]]:
    """``(name, conversion, format spec)`` of each replacement field, those nested in format specs too."""
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            yield name, conversion, spec or ""
            if spec and "{" in spec:
                yield from _replacement_fields(spec)


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
    transform: Names = option(factory=list, validator=_known_transforms, choices=TRANSFORMS)
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


@attrs.frozen
class FieldsOptions:
    """Options of the ``fields`` mapper."""

    # `| None` so that `email:` with nothing after it is accepted; the mapper reads it as an empty rule.
    fields: dict[str, FieldRule | None] = attrs.Factory(dict)
    """Output field name → rule, computed in this order (a template can use fields listed before it). An empty
    rule (``email:`` or ``email: {}``) copies the input field of the same name."""
    keep: bool = False
    """Keep the input's other fields too; by default the output has only the listed fields."""
    drop: list[str] = attrs.Factory(list)
    """With ``keep``: input fields to leave out."""

    def __attrs_post_init__(self) -> None:
        if self.drop and not self.keep:
            raise ValueError("drop only applies with keep: true (without keep, only the listed fields are output)")
        if not self.fields and not self.keep:
            raise ValueError("list some fields, or set keep: true (otherwise every record would come out empty)")


class FieldsMapper(Mapper[FieldsOptions]):
    """Reshapes records: renames, literals, templates, transforms, defaults, required fields and casts.

    A record whose rule fails (required field empty, bad cast, template field missing) goes to the error stream
    with the reason; the others go to the default output with the same key and provenance.
    """

    Options: ClassVar[type] = FieldsOptions

    @classmethod
    def reads_keys(cls, options: FieldsOptions) -> bool:
        return False  # records keep the key they came with, unread

    def __init__(self, name: str, options: FieldsOptions, context: RunContext) -> None:
        super().__init__(name, options, context)
        rules = [compile_rule(field, rule or FieldRule()) for field, rule in options.fields.items()]
        self._process = compile_fields(rules, options.keep, frozenset(options.drop))

    def process(self, batch: list[Record], out: Emitter) -> None:
        self._process(batch, out)

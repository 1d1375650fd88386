"""The ``fields`` mapper: build each output record field by field from declarative rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.records import Record

from .field_chain import compile_fields
from .field_rules import FieldRule, compile_rule

if TYPE_CHECKING:
    from connector_core.context import RunContext


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

    def __init__(self, name: str, options: FieldsOptions, context: RunContext) -> None:
        super().__init__(name, options, context)
        rules = [compile_rule(field, rule or FieldRule()) for field, rule in options.fields.items()]
        self._process = compile_fields(rules, options.keep, frozenset(options.drop))

    def process(self, batch: list[Record], out: Emitter) -> None:
        self._process(batch, out)

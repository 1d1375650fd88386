"""The ``filter`` mapper: route records to ``default`` or ``rejected`` by conditions on their fields."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.records import Record
from connector_core.spec.model import Scalar

from .values import as_number, as_text, is_empty

if TYPE_CHECKING:
    from connector_core.context import RunContext

Predicate = Callable[[Mapping[str, Any]], bool]

#: Operator names as written in YAML (``in`` is the attribute ``in_``).
OPERATORS = ("eq", "ne", "in", "not_in", "exists", "empty", "contains", "regex", "gt", "gte", "lt", "lte")


@attrs.frozen
class Condition:
    """A test on one field, with exactly one operator.

    ``eq``/``ne``/``in``/``not_in`` compare as numbers when both sides read as numbers (``"42"`` equals
    ``42``), else as text. ``gt``/``gte``/``lt``/``lte`` with a number compare numerically and never pass a
    value that is not a number (``"n/a"``); with text they compare as text (ISO dates order correctly). An
    empty value never passes them.
    """

    field: str
    """The field to test."""
    eq: Scalar | None = None
    """Equal to this value."""
    ne: Scalar | None = None
    """Not equal to this value; a record without the field passes."""
    in_: list[Scalar] | None = None
    """Equal to one of these values (YAML key ``in``)."""
    not_in: list[Scalar] | None = None
    """Equal to none of these values."""
    exists: bool | None = None
    """``true``: the field is present and not null; ``false``: it is absent or null."""
    empty: bool | None = None
    """``true``: the field is absent, null, blank text or an empty list; ``false``: it has a value."""
    contains: Scalar | None = None
    """Text containing this substring (case-sensitive), or a list with this element."""
    regex: str | None = None
    """Text matching this regular expression anywhere (``re.search``); anchor with ``^``/``$``."""
    gt: Scalar | None = None
    """Greater than."""
    gte: Scalar | None = None
    """Greater than or equal."""
    lt: Scalar | None = None
    """Less than."""
    lte: Scalar | None = None
    """Less than or equal."""

    def __attrs_post_init__(self) -> None:
        given = self.operators()
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"a condition takes exactly one operator of {', '.join(OPERATORS)} (found: {found})")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None

    def operators(self) -> list[str]:
        """The operators this condition sets, by YAML name."""
        return [name for name in OPERATORS if getattr(self, "in_" if name == "in" else name) is not None]


@attrs.frozen
class FilterOptions:
    """Options of the ``filter`` mapper."""

    where: list[Condition]
    """The conditions."""
    match: Literal["all", "any"] = "all"
    """Pass records meeting ``all`` conditions, or ``any`` of them."""

    def __attrs_post_init__(self) -> None:
        if not self.where:
            raise ValueError("where needs at least one condition")


class _Value:
    """A value from the spec, pre-parsed once for the comparisons."""

    __slots__ = ("number", "text")

    def __init__(self, value: Any) -> None:
        self.text = as_text(value)
        self.number = as_number(value)

    def equals(self, value: Any) -> bool:
        if self.number is not None:
            number = as_number(value)
            if number is not None:
                return number == self.number
        return as_text(value) == self.text


def compile_condition(condition: Condition) -> Predicate:
    """One predicate function per condition, with the operand parsed ahead of time."""
    field = condition.field
    (name,) = condition.operators()
    operand = getattr(condition, "in_" if name == "in" else name)
    if name in ("eq", "ne"):
        expected = _Value(operand)
        if name == "eq":
            return lambda data: field in data and expected.equals(data[field])
        return lambda data: field not in data or not expected.equals(data[field])
    if name in ("in", "not_in"):
        choices = [_Value(item) for item in operand]

        def member(data: Mapping[str, Any]) -> bool:
            return field in data and any(choice.equals(data[field]) for choice in choices)

        return member if name == "in" else lambda data: not member(data)
    if name == "exists":
        return lambda data: (data.get(field) is not None) is operand
    if name == "empty":
        return lambda data: is_empty(data.get(field)) is operand
    if name == "contains":
        needle = as_text(operand)

        def contains(data: Mapping[str, Any]) -> bool:
            value = data.get(field)
            if isinstance(value, list):
                return any(as_text(item) == needle for item in value)
            return value is not None and needle in as_text(value)

        return contains
    if name == "regex":
        search = re.compile(operand).search
        return lambda data: data.get(field) is not None and search(as_text(data[field])) is not None
    return _ordering(field, _ORDERINGS[name], _Value(operand))


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _ordering(field: str, compare: Callable[[Any, Any], bool], bound: _Value) -> Predicate:
    def check(data: Mapping[str, Any]) -> bool:
        value = data.get(field)
        if is_empty(value):
            return False
        if bound.number is None:
            return compare(as_text(value), bound.text)
        number = as_number(value)
        # "n/a" > 100 is neither true nor false; comparing it as text ("n/a" > "100") would pass it.
        return number is not None and compare(number, bound.number)

    return check


class FilterMapper(Mapper[FilterOptions]):
    """Sends records that match to the default output and the others to ``rejected``.

    ``rejected`` is a quiet output: leaving it unread is the usual way to drop records.
    """

    Options: ClassVar[type] = FilterOptions
    outputs: ClassVar[tuple[str, ...]] = ("default", "rejected")
    quiet_outputs: ClassVar[tuple[str, ...]] = ("rejected",)

    @classmethod
    def reads_keys(cls, options: FilterOptions) -> bool:
        return False  # conditions read the data only

    def __init__(self, name: str, options: FilterOptions, context: RunContext) -> None:
        super().__init__(name, options, context)
        predicates = [compile_condition(condition) for condition in options.where]
        combine = all if options.match == "all" else any
        self._matches: Predicate = lambda data: combine(predicate(data) for predicate in predicates)

    def process(self, batch: list[Record], out: Emitter) -> None:
        matches = self._matches
        passed: list[Record] = []
        rejected: list[Record] = []
        for record in batch:
            (passed if matches(record.data) else rejected).append(record)
        out.emit_many(passed)
        out.emit_many(rejected, "rejected")

"""One rule of the ``fields`` mapper resolved into the functions that compute its field (:func:`compile_rule`),
which hold the complete semantics of a rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .functions import CASTS, TRANSFORMS, CastError
from .values import is_empty

if TYPE_CHECKING:
    from .fields import FieldRule

#: Computes one output field from the input record and the fields computed before it.
FieldFunction = Callable[[Mapping[str, Any], dict[str, Any]], Any]


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

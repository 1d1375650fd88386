"""The cattrs converter for specs: strict types (unknown keys, a list for a value, ``2.5`` for an integer are
errors), ``from_``-style fields read as ``from``, paths resolved against the spec's folder, and errors in
plain words (``expected one of: all, any; got 'some'``) instead of library internals."""

from __future__ import annotations

import datetime
import re
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import is_mapping, is_sequence, list_structure_factory, mapping_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, override

from connector_core.spec.envsubst import Unresolved
from connector_core.spec.model import Scalar
from connector_core.spec.suggest import did_you_mean


class Mismatch(ValueError):
    """A value of the wrong type or outside its choices; the message is meant for the user as it is."""


def make_converter(base_dir: Path) -> cattrs.Converter:
    """A converter that forbids extra keys, maps ``from_``-style field names to ``from`` in YAML, and turns
    relative :class:`~pathlib.Path` values into paths under ``base_dir``."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook_func(_is_name_or_list, _structure_names)

    def structure_path(value: Any, _: type) -> Path:
        if isinstance(value, Unresolved):
            raise Mismatch(f"expected a path, got {value!r} (an unset environment variable)")
        if not isinstance(value, str | Path):
            raise Mismatch(f"expected a path, got {describe(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base_dir / path

    def structure_literal(type_: Any) -> Callable[[Any, Any], Any]:
        choices = get_args(type_)

        def structure(value: Any, _: Any) -> Any:
            # `type(...) is` too: 1 == True, but `auth: 1` is not the choice `true`.
            if any(value == choice and type(value) is type(choice) for choice in choices):
                return value
            words = [str(choice) for choice in choices]
            hint = did_you_mean(value, words) if isinstance(value, str) else ""
            raise Mismatch(f"expected one of: {', '.join(words)}; got {describe(value)}{hint}")

        return structure

    def strict(inner: Callable[[Any, Any], Any], kind: type, name: str) -> Callable[[Any, Any], Any]:
        # cattrs would turn the string "abc" into the list ['a', 'b', 'c']; a spec means a list.
        def structure(value: Any, target: Any) -> Any:
            if not isinstance(value, kind):
                raise Mismatch(f"expected {name}, got {describe(value)}")
            return inner(value, target)

        return structure

    def attrs_hook_factory(cls: type) -> Any:
        # Python keywords cannot be field names, so `from_` in a class reads the key `from` in YAML.
        renames = {
            field.name: override(rename=yaml_name(field.name))
            for field in attrs.fields(cls)
            if yaml_name(field.name) != field.name
        }
        structure: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls,
            converter,
            _cattrs_forbid_extra_keys=True,
            **renames,  # type: ignore[arg-type]
        )
        return strict(structure, dict, "a mapping")

    converter.register_structure_hook(Path, structure_path)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook_func(_is_scalar, _structure_scalar)
    converter.register_structure_hook_factory(_is_literal, structure_literal)
    converter.register_structure_hook_factory(
        _is_list, lambda type_: strict(list_structure_factory(type_, converter), list, "a list")
    )
    converter.register_structure_hook_factory(
        is_mapping, lambda type_: strict(mapping_structure_factory(type_, converter), dict, "a mapping")
    )
    converter.register_structure_hook_factory(attrs.has, attrs_hook_factory)
    _register_state_switch(converter)
    return converter


def _register_state_switch(converter: cattrs.Converter) -> None:
    """``state:`` is a mapping of settings, empty or ``true`` for the defaults, or ``false`` to turn state off."""
    from connector_core.spec.model import StateSettings

    def structure_state(value: Any, _: type) -> StateSettings | None:
        if value is None or value is True or value == {}:
            return StateSettings()
        if value is False:
            return None
        if not isinstance(value, dict):
            raise TypeError(f"expected a mapping of state settings, or false to turn state off; got {value!r}")
        return converter.structure(value, StateSettings)

    converter.register_structure_hook(StateSettings | None, structure_state)


def yaml_name(field: str) -> str:
    """The YAML key of an attrs field: ``from_`` → ``from``."""
    return field.rstrip("_") if field.endswith("_") and not field.startswith("_") else field


def describe(value: Any) -> str:
    """A short description of a spec value for messages: ``'abc'``, ``3``, ``true``, ``a list``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return repr(value) if isinstance(value, int | float) else str(value)


def structure_errors(exc: BaseException, prefix: str, known: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Flatten a cattrs error into ``(spec path, message)`` pairs, paths rooted at ``prefix``.

    ``known`` adds key names accepted besides the class's fields (a component's common keys), for the
    "did you mean" of unknown keys.
    """
    pairs: list[tuple[str, str]] = []
    _flatten(exc, prefix, None, pairs, tuple(known))
    return pairs


def _flatten(exc: BaseException, path: str, type_: Any, pairs: list[tuple[str, str]], known: tuple[str, ...]) -> None:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                child = f"{path}.{yaml_name(note.name)}"
            else:
                child = f"{path}[{note.index}]" if isinstance(note.index, int) else f"{path}.{note.index}"
            _flatten(sub, child, note.type, pairs, known)
        for sub in without:
            _flatten(sub, path, None, pairs, known)
    elif isinstance(exc, ForbiddenExtraKeysError):
        names = [yaml_name(field.name) for field in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            pairs.append((f"{path}.{key}", "unknown key" + did_you_mean(key, [*names, *known])))
    else:
        pairs.append((path, _explain(exc, type_)))


def _explain(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError) and type_ is not None:
        return "required field missing"
    if isinstance(exc, Mismatch):
        return str(exc)
    if type_ is not None:
        return f"expected {type_name(type_)}"
    # Raised by an options class itself (a plugin's validator or __attrs_post_init__): it explains itself,
    # unless it is a plugin's bug (a KeyError, an AttributeError...).
    if type(exc) in (ValueError, TypeError) and exc.args:
        return str(exc)
    return f"invalid options ({type(exc).__name__}: {exc})"


def type_name(type_: Any) -> str:
    """A type in words: ``list[str] | None`` → ``a list``."""
    if type_ in _TYPE_WORDS:
        return _TYPE_WORDS[type_]
    origin = get_origin(type_)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in get_args(type_) if arg is not type(None))
    if origin is Literal:
        return "one of: " + ", ".join(str(choice) for choice in get_args(type_))
    if origin is list or origin is tuple or type_ in (list, tuple):
        return "a list"
    if origin is dict or type_ is dict or attrs.has(type_):
        return "a mapping"
    return getattr(type_, "__name__", str(type_))


_TYPE_WORDS: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    Path: "a path",
}


def _structure_str(value: Any, _: type) -> str:
    # YAML turns `on`, `1`, `2024-01-01` into other types; only plain scalars are accepted as strings.
    if isinstance(value, dict | list) or value is None:
        raise Mismatch(f"expected a string, got {describe(value)}")
    return value if isinstance(value, str) else str(value)


def _structure_bool(value: Any, _: type) -> bool:
    # cattrs' default is bool(value): the string "false" (e.g. from ${FLAG}) would be true.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Mismatch(f"expected true or false, got {describe(value)}")


def _structure_int(value: Any, _: type) -> int:
    # cattrs' default is int(value): 2.5 would become 2 and true would become 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)  # from an environment variable
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise Mismatch(f"expected an integer, got {describe(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    raise Mismatch(f"expected a number, got {describe(value)}")


def _is_literal(type_: Any) -> bool:
    return get_origin(type_) is Literal


def _is_list(type_: Any) -> bool:
    return is_sequence(type_) and get_origin(type_) in (list, None)


def _is_scalar(type_: Any) -> bool:
    return get_origin(type_) in (Union, types.UnionType) and set(get_args(type_)) - {type(None)} == _SCALARS


def _structure_scalar(value: Any, type_: Any) -> Any:
    if value is None and type(None) in get_args(type_):
        return None
    if isinstance(value, datetime.date):
        return str(value)  # YAML reads 2024-01-01 as a date; compare it as the text written
    if isinstance(value, str | int | float):
        return value
    raise Mismatch(f"expected a single value (text, number, true or false), got {describe(value)}")


_SCALARS = set(get_args(Scalar))
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _is_name_or_list(annotation: Any) -> bool:
    """Whether ``annotation`` is ``str | list[str]``, optionally ``| None`` (``connector_core.options.Names``)."""
    if get_origin(annotation) not in (Union, UnionType):
        return False
    return set(get_args(annotation)) - {type(None)} == {str, list[str]}


def _structure_names(value: Any, union: Any) -> Any:
    # cattrs has no strategy for `str | list[str]`, a common option shape; numbers (a YAML `2024`) read as text.
    if value is None and type(None) in get_args(union):
        return None
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str | int | float) and not isinstance(item, bool) for item in items):
        raise TypeError(f"expected a name or a list of names, got {value!r}")
    return [str(item) for item in items] if isinstance(value, list) else str(value)

"""The cattrs converter for specs: strict (unknown keys are errors), paths resolved against the spec's folder."""

from __future__ import annotations

import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception


def make_converter(base_dir: Path) -> cattrs.Converter:
    """A converter that forbids extra keys, maps ``from_``-style field names to ``from`` in YAML, and turns
    relative :class:`~pathlib.Path` values into paths under ``base_dir``."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook_func(_is_name_or_list, _structure_names)

    def structure_path(value: Any, _: type) -> Path:
        if not isinstance(value, str | Path):
            raise TypeError(f"expected a path string, got {type(value).__name__}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base_dir / path

    def structure_str(value: Any, _: type) -> str:
        # YAML turns `on`, `1`, `2024-01-01` into other types; only plain scalars are accepted as strings.
        if isinstance(value, dict | list) or value is None:
            raise TypeError(f"expected a string, got {type(value).__name__}")
        return value if isinstance(value, str) else str(value)

    def structure_bool(value: Any, _: type) -> bool:
        # cattrs' default is bool(value): the string "false" (e.g. from ${FLAG}) would be true.
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise TypeError(f"expected true or false, got {type(value).__name__}")

    converter.register_structure_hook(Path, structure_path)
    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(bool, structure_bool)

    def attrs_hook_factory(cls: type) -> Any:
        # Python keywords cannot be field names, so `from_` in a class reads the key `from` in YAML.
        renames = {
            field.name: override(rename=field.name.rstrip("_"))
            for field in attrs.fields(cls)
            if field.name.endswith("_") and not field.name.startswith("_")
        }
        return make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True, **renames)

    converter.register_structure_hook_factory(attrs.has, attrs_hook_factory)
    return converter


def structure_errors(exc: Exception, prefix: str) -> list[tuple[str, str]]:
    """Flatten a cattrs error into ``(spec path, message)`` pairs, paths rooted at ``prefix``."""
    pairs = []
    for line in cattrs.transform_error(exc, path=prefix, format_exception=_explain):
        message, _, path = line.rpartition(" @ ")
        path = _KEY_STYLE.sub(r".\1", path or prefix)
        path = _KEYWORD_FIELD.sub("", path)
        extra = _EXTRA_KEYS.fullmatch(message)
        if extra:
            pairs.extend((f"{path}.{key}", "unknown key") for key in extra.group(1).split(", "))
        else:
            pairs.append((path, message or line))
    return pairs


def _explain(exc: BaseException, type_: type | None) -> str:
    if get_origin(type_) is Literal:
        return "expected one of " + ", ".join(repr(choice) for choice in get_args(type_))
    # A plugin's validator explains itself in its ValueError; cattrs' default would say only "invalid value".
    if type(exc) is ValueError and exc.args:
        return str(exc)
    return format_exception(exc, type_)


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_KEY_STYLE = re.compile(r"\['([^']*)'\]")
_KEYWORD_FIELD = re.compile(r"_(?=\.|\[|$)")
_EXTRA_KEYS = re.compile(r"extra fields found \((.*)\)")


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

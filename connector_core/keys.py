"""Record keys from a source's ``key`` fields: computing them, spotting blank ones, checking the fields exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from operator import methodcaller
from typing import Any

from connector_core.records import content_keys
from connector_core.spec.suggest import closest

#: Computes a record's key from its data; None when a key field is blank.
KeyFunction = Callable[[dict[str, Any]], str | None]
#: Computes the keys of many records.
KeysFunction = Callable[[list[dict[str, Any]]], list[str | None]]


def is_blank(value: Any) -> bool:
    """Whether a key value is missing: null, or text that is empty or only whitespace."""
    return value is None or (value.__class__ is str and (not value or value.isspace()))


def key_function(fields: tuple[str, ...]) -> KeyFunction:
    """The key of a record: its ``fields`` joined by ``|`` (when a value holds a ``|``, each ``|`` and ``\\`` of
    the values is escaped by ``\\``); None when any of them is blank (absent, null or blank text), since records
    without a value would all share one key and overwrite each other downstream.

    Chosen once per source, since it runs for every record read.
    """
    if len(fields) == 1:
        (field,) = fields

        def one_field(data: dict[str, Any]) -> str | None:
            value = data.get(field)
            if value.__class__ is str:
                return value if value and not value.isspace() else None
            return None if value is None else str(value)

        return one_field

    def several_fields(data: dict[str, Any]) -> str | None:
        values = [data.get(field) for field in fields]
        if any(is_blank(value) for value in values):
            return None
        joined = "|".join(texts := list(map(str, values)))
        if joined.count("|") == len(fields) - 1:
            return joined
        # A value holds the separator: every value is escaped, so that ("x|y", "z") and ("x", "y|z") stay two keys.
        # Such a key holds more separators than the fields' plain join ever does, so the two kinds never meet, and
        # the keys of values without one are the ones an earlier crmsync stored.
        return "|".join(text.replace("\\", "\\\\").replace("|", "\\|") for text in texts)

    return several_fields


def keys_function(fields: tuple[str, ...]) -> KeysFunction:
    """The keys of many records at once: :func:`key_function`'s for ``fields``, or content hashes without
    ``fields``. One key field holding non-blank text in every record (every CSV row with its key) is read in C
    loops, without a Python frame per record."""
    if not fields:
        return content_keys  # type: ignore[return-value]  # a list[str] is a list[str | None] to its readers
    key = key_function(fields)
    if len(fields) > 1:
        return partial(_each, key)
    value_of = methodcaller("get", fields[0])

    def one_field_keys(rows: list[dict[str, Any]]) -> list[str | None]:
        values = list(map(value_of, rows))
        if set(map(type, values)) == {str}:
            if all(map(str.strip, values)):
                return values
            # Some are blank (a messy file): None for those, without a call per record.
            return [value if value.strip() else None for value in values]
        return list(map(key, rows))

    return one_field_keys


def _each(key: KeyFunction, rows: list[dict[str, Any]]) -> list[str | None]:
    return list(map(key, rows))


def blank_fields(fields: tuple[str, ...], data: dict[str, Any]) -> list[str]:
    """The key ``fields`` that are blank in ``data``."""
    return [field for field in fields if is_blank(data.get(field))]


def missing_key_columns(key: tuple[str, ...], columns: list[str], where: str) -> str | None:
    """A message when some ``key`` fields are not among ``columns`` (found in ``where``), else None."""
    missing = [field for field in key if field not in columns]
    if not missing:
        return None
    parts = []
    for field in missing:
        part = f"{field!r}"
        guess = closest(field, columns)
        if guess is not None:
            part += f" (did you mean {guess!r}?)"
        parts.append(part)
    noun = "column" if len(missing) == 1 else "columns"
    return f"key {noun} {', '.join(parts)} not in {where}; its columns are: {', '.join(columns) or 'none'}"

"""Small value helpers the mappers share: emptiness, text and number views of a field, option normalisers."""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def is_empty(value: Any) -> bool:
    """Missing for ``default`` and ``required``: null, a blank string, or an empty list or mapping."""
    if value.__class__ is str:  # the common case first; isspace() avoids the copy strip() would make
        return not value or value.isspace()
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


def as_text(value: Any) -> str:
    """The text form used to compare values: null is empty, booleans are ``true``/``false``, nested data JSON."""
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 5.0 from JSON should compare equal to "5" from CSV
    if isinstance(value, dict | list):
        # sort_keys: two mappings with the same content must compare (and dedupe) as equal.
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def as_number(value: Any) -> float | None:
    """``value`` as a number when it is one or reads as one (``"42"``, ``" 1.5e3 "``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    # The regex keeps words like "infinity" and "nan" (a company could be called that) out of numeric compares.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def normalized(value: Any) -> str:
    """Text for case- and space-insensitive comparison (emails, names)."""
    return as_text(value).strip().lower()

"""The named transforms and type casts of the ``fields`` mapper.

A transform takes a non-empty value and returns the new value (None or ``""`` when there is nothing left,
e.g. the domain of a string without ``@``). A cast raises :class:`CastError` for values it cannot convert.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from .names import split_name
from .values import as_text, normalized

Transform = Callable[[Any], Any]

_NON_DIGITS = re.compile(r"[^0-9]+")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_PATH_START = re.compile(r"[/?#]")
#: The common shape of a URL, matched in one step: an optional scheme (taken whole if present: the possessive
#: ``?+`` never retries without it), slashes, user info up to the last ``@`` before the path, a host of
#: letters, digits, dots and hyphens, an optional numeric port, then the end or a path, query or fragment. Its
#: host is what the general parse would find; anything else (IPv6, spaces, odd characters) takes the general
#: parse.
_PLAIN_URL = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?+/*(?:[^/?#]*@)?([a-z0-9.-]+)(?::[0-9]*)?(?:[/?#]|\Z)", re.IGNORECASE
)


def email_domain(value: Any) -> str | None:
    """``Ada <ada@Sub.Example.com>`` → ``sub.example.com``."""
    _, at, domain = (value if value.__class__ is str else as_text(value)).rpartition("@")
    if not at:
        return None
    return domain.strip().rstrip(">").strip().rstrip(".").lower() or None


def url_domain(value: Any) -> str | None:
    """``https://user:pw@www.Example.com:8080/path?q=1`` → ``example.com``; also takes bare ``example.com/x``."""
    text = (value if value.__class__ is str else as_text(value)).strip()
    plain = _PLAIN_URL.match(text)
    if plain is None:
        return parsed_url_domain(text)
    return plain[1].rstrip(".").lower().removeprefix("www.") or None


def parsed_url_domain(value: Any) -> str | None:
    """:func:`url_domain` by the general parse, step by step: what the one-step match must agree with."""
    text = _SCHEME.sub("", as_text(value).strip(), count=1).lstrip("/")
    host = _PATH_START.split(text, maxsplit=1)[0].rpartition("@")[2]
    if host.startswith("["):  # an IPv6 literal keeps its colons
        host = host[: host.find("]") + 1]
    else:
        host = host.partition(":")[0]
    host = host.strip().rstrip(".").lower()
    return host.removeprefix("www.") or None


def first_name(value: Any) -> str | None:
    """The first name of a full name (see :func:`~crmsync_plugins.transforms.names.split_name`)."""
    return split_name(as_text(value))[0]


def last_name(value: Any) -> str | None:
    """The last name of a full name; None for a single word."""
    return split_name(as_text(value))[1]


def md5(value: Any) -> str:
    """Hex MD5 of the normalised (stripped, lowercased) value, the form hashed-email matching expects."""
    return hashlib.md5(normalized(value).encode(), usedforsecurity=False).hexdigest()


def sha256(value: Any) -> str:
    """Hex SHA-256 of the normalised (stripped, lowercased) value."""
    return hashlib.sha256(normalized(value).encode()).hexdigest()


def digits(value: Any) -> str:
    """Only the ASCII digits (phone numbers): ``+1 (555) 010-9999`` → ``15550109999``."""
    return _NON_DIGITS.sub("", value if value.__class__ is str else as_text(value))


#: :func:`digits` of a value known to be text, for the compiled ``fields`` mapper to call without a frame.
digits_of_text = partial(_NON_DIGITS.sub, "")


def _text_method(method: Callable[[str], str]) -> Transform:
    def apply(value: Any) -> str:
        return method(value) if value.__class__ is str else method(as_text(value))

    apply.__doc__ = f"``str.{method.__name__}`` of the value as text."
    return apply


#: Every transform by the name used in specs. Each returns text, or None when nothing is left.
TRANSFORMS: dict[str, Transform] = {
    "strip": _text_method(str.strip),
    "lower": _text_method(str.lower),
    "upper": _text_method(str.upper),
    "email_domain": email_domain,
    "url_domain": url_domain,
    "first_name": first_name,
    "last_name": last_name,
    "md5": md5,
    "sha256": sha256,
    "digits": digits,
}

#: The transforms whose result is always text (never None), whatever the value.
TEXT_RESULT = frozenset({"strip", "lower", "upper", "md5", "sha256", "digits"})


class CastError(ValueError):
    """A value does not convert to the requested type."""


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


#: The most digits ``int()`` reads from text (CPython's default limit against slow conversions).
_MAX_INT_DIGITS = 4300


def to_int(value: Any) -> int:
    """Integers, integral floats and their text forms (``"42"``, ``"42.0"``, ``"4.2e1"``), exactly: text is never
    read through a float, whose 53 bits would round an ID such as ``"123456789012345678"``."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and the infinities
            raise CastError
        return int(value)
    if not isinstance(value, str):
        raise CastError
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = Decimal(value)
    except ArithmeticError:  # not a number at all
        raise CastError from None
    # No integer of more digits than Python reads from text (``"1e999999999"`` would take all the memory).
    if not number.is_finite() or number.adjusted() >= _MAX_INT_DIGITS or number != number.to_integral_value():
        raise CastError
    return int(number)


def to_float(value: Any) -> float:
    """Numbers and their text forms; a float JSON can write (not NaN, not infinite: ``"nan"``, ``"1e999"``)."""
    if not isinstance(value, int | float | str):
        raise CastError
    try:
        number = float(value)
    except (ValueError, OverflowError):  # not numeric text; an integer beyond a float's range
        raise CastError from None
    if not math.isfinite(number):
        raise CastError
    return number


def to_bool(value: Any) -> bool:
    """Booleans, 0/1 and the usual words (true/false, yes/no, y/n, on/off), any case."""
    if isinstance(value, bool):
        return value
    text = as_text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CastError


#: Casts by the name used in the ``type`` option.
CASTS: dict[str, Callable[[Any], Any]] = {"str": as_text, "int": to_int, "float": to_float, "bool": to_bool}

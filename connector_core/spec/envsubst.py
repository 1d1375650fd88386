"""``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` interpolation in every string of a spec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}|\$\$")


class EnvSubstitution:
    """Interpolates a parsed spec; remembers the values taken from the environment and the problems met.

    Values that came from the environment are secrets (for redaction) unless the variable is listed in
    ``public``; defaults written in the spec are not secrets.
    """

    def __init__(self, environ: Mapping[str, str], public: frozenset[str] = frozenset()) -> None:
        self.environ = environ
        self.public = public
        self.secrets: set[str] = set()
        self.problems: list[tuple[str, str]] = []

    def apply(self, value: Any, path: str = "$") -> Any:
        """Return ``value`` with every string interpolated, recursing into mappings and lists."""
        if isinstance(value, str):
            return self._string(value, path) if "$" in value else value
        if isinstance(value, dict):
            return {key: self.apply(item, f"{path}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [self.apply(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    def _string(self, text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"  # an escaped dollar sign
            name, op, arg = match.group("name"), match.group("op"), match.group("arg")
            found = self.environ.get(name)
            if found not in (None, ""):
                if name not in self.public:
                    self.secrets.add(found)
                return found
            if op == ":-":
                return arg
            reason = f"is not set: {arg}" if op == ":?" and arg else "is not set"
            self.problems.append((path, f"environment variable {name} {reason}"))
            return ""

        return _PATTERN.sub(replace, text)

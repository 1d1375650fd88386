"""``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` interpolation in every string of a spec."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

#: ``$$``, or ``${`` up to the next brace (``}`` closes it; ``{`` or the end of the text means malformed).
_TOKEN = re.compile(r"\$\$|\$\{(?P<body>[^{}]*)(?P<end>[{}]?)")
_REFERENCE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>.*))?", re.DOTALL)
_NAME_START = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMS = "write ${NAME}, ${NAME:-default} or ${NAME:?message}, and $$ for a literal $"


class Unresolved(str):
    """Text still holding a ``${VAR}`` whose variable is not set, left by an offline load (``validate``,
    ``plan``, ``state``): a placeholder that a run never sees, because a run resolves every variable."""


class EnvSubstitution:
    """Interpolates a parsed spec; remembers the values taken from the environment and the problems met.

    Values that came from the environment are secrets (for redaction) unless the variable is listed in
    ``public``; defaults written in the spec are not secrets. When ``defer`` says yes for a spec path, an unset
    variable there is not a problem: the text stays as written, as :class:`Unresolved`, and is listed in
    ``deferred``.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        public: frozenset[str] = frozenset(),
        defer: Callable[[str], bool] | None = None,
    ) -> None:
        self.environ = environ
        self.public = public
        self.defer = defer
        self.secrets: set[str] = set()
        #: ``(spec path, message)`` of unset variables and malformed references.
        self.problems: list[tuple[str, str]] = []
        #: Spec path → why its value is still :class:`Unresolved`.
        self.deferred: dict[str, str] = {}

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
        unresolved = False

        def replace(match: re.Match[str]) -> str:
            nonlocal unresolved
            token = match.group(0)
            if token == "$$":
                return "$"  # an escaped dollar sign
            reference = _REFERENCE.fullmatch(match.group("body"))
            if match.group("end") != "}" or reference is None:
                self.problems.append((path, _malformed(match, text)))
                return token
            name, op, arg = reference.group("name", "op", "arg")
            found = self.environ.get(name)
            if found not in (None, ""):
                if name not in self.public:
                    self.secrets.add(found)
                return found
            if op == ":-":
                return arg
            reason = f"environment variable {name} is not set" + (f": {arg}" if op == ":?" and arg else "")
            if self.defer is not None and self.defer(path):
                self.deferred.setdefault(path, reason)
                unresolved = True
                return token
            self.problems.append((path, reason))
            return ""

        result = _TOKEN.sub(replace, text)
        return Unresolved(result) if unresolved else result


def _malformed(match: re.Match[str], text: str) -> str:
    body, end = match.group("body"), match.group("end")
    if end == "{":
        shown, why = text[match.start() : match.end() + 20], "a ${...} cannot contain another one"
    elif end == "":
        shown, why = text[match.start() : match.start() + 30], "it is not closed with }"
    elif not body:
        shown, why = "${}", "it names no variable"
    elif not _NAME_START.match(body):
        shown, why = match.group(0), "a variable name is letters, digits and _, not starting with a digit"
    else:
        shown, why = match.group(0), "after the name comes } or :- or :?"
    return f"malformed {shown!r}: {why}; {_FORMS}"

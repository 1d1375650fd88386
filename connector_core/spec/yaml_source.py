"""Read a spec file into data, keeping the line of every value, and explain anything unreadable in one line.

Refused with ``file:line`` and a hint: files that are not UTF-8 text (binary, UTF-16/32, Latin-1), YAML syntax
errors, more than one document, nesting deeper than :data:`~.yaml_tree.MAX_DEPTH`, more than
:data:`~.yaml_tree.MAX_VALUES` values (alias bombs included), duplicate keys, keys YAML does not read as text
(``on:``, ``1:``, ``~:``) and tags.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from connector_core.errors import SpecError
from connector_core.spec.yaml_tree import MAX_DEPTH, MAX_VALUES, Refused, TreeBuilder

#: Larger files are refused before parsing; a spec is a few kilobytes.
MAX_BYTES = 1024 * 1024

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SAVE_AS_UTF8 = "save it as UTF-8"


def parse_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """Return the document and a map from spec path (``$.sinks.out.path``) to its 1-based line number.

    :raises SpecError: one line per problem, each starting with ``path:line:``.
    """
    text = _read_text(path)
    try:
        loader = _SpecLoader(text)  # its reader refuses control characters right here
        try:
            root = loader.get_single_node()
            if root is None:
                raise SpecError(
                    [f"{path}:1: $: the spec is empty: it must be a mapping with version, job and components"]
                )
            builder = TreeBuilder(loader)
            data = builder.build(root, loader.alias_lines)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        line, message = _explain_yaml_error(exc, text)
        raise SpecError([f"{path}:{line}: invalid YAML: {message}"]) from None
    except Refused as exc:
        where = f"{exc.spec_path}: " if exc.spec_path else ""
        raise SpecError([f"{path}:{exc.line}: {where}{exc.message}"]) from None
    if builder.problems:
        unique = dict.fromkeys(f"{path}:{line}: {where}: {message}" for line, where, message in builder.problems)
        raise SpecError(list(unique))
    return data, builder.lines


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of ``path``, or of its nearest ancestor that the YAML has (a missing key's parent)."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            break
        path = path[:cut]
    return lines.get("$")


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError([f"{path}: cannot read the spec: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_BYTES:
        raise SpecError([f"{path}: the file is larger than {MAX_BYTES // 2**20} MiB; a spec is a small YAML file"])
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise SpecError(
                [f"{path}:1: the spec is {encoding} encoded (it starts with a byte order mark); {_SAVE_AS_UTF8}"]
            )
    if b"\0" in raw:
        raise SpecError([_nul_problem(path, raw)])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        raise SpecError(
            [f"{path}:{line}: the spec is not UTF-8 text (byte 0x{byte:02X} at column {column}); {_SAVE_AS_UTF8}"]
        ) from None


def _nul_problem(path: Path, raw: bytes) -> str:
    """A NUL byte: UTF-16 text without a byte order mark (every other byte NUL), or a binary file."""
    head = raw[:4096]
    even, odd = head[0::2], head[1::2]
    for half, other in ((even, odd), (odd, even)):
        if half and half.count(0) > 0.4 * len(half) and other.count(0) < 0.1 * max(len(other), 1):
            return f"{path}:1: the spec looks UTF-16 encoded (NUL bytes between the letters); {_SAVE_AS_UTF8}"
    line = raw[: raw.index(b"\0")].count(b"\n") + 1
    return f"{path}:{line}: the spec is a binary file (it has NUL bytes), not YAML text"


class _SpecLoader(yaml.SafeLoader):
    """The safe loader, refusing documents nested deeper than :data:`MAX_DEPTH` or with over
    :data:`MAX_VALUES` nodes while composing (PyYAML's composer recurses once per level), and flow
    collections (``[[[...``) nested deeper while scanning (the scanner's work grows with the square of it)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0
        #: The line of each alias, by ``(id(parent), index or id(key node))``; see :meth:`TreeBuilder.build`.
        self.alias_lines: dict[tuple[int, int], int] = {}

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise Refused(self.get_mark().line + 1, None, _TOO_DEEP)
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH or self._nodes > MAX_VALUES:
                line = self._next_event_line()
                raise Refused(line, None, _TOO_DEEP if self._depth > MAX_DEPTH else _TOO_LARGE)
            if parent is not None and self.check_event(yaml.AliasEvent):
                position = index if isinstance(index, int) else id(index)
                self.alias_lines[(id(parent), position)] = self._next_event_line()
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _next_event_line(self) -> int:
        """The 1-based line where the next parser event starts."""
        # types-PyYAML leaves Parser.peek_event unannotated.
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        assert event.start_mark is not None, "the parser marks where every event starts"
        return event.start_mark.line + 1


_TOO_DEEP = f"the spec is nested too deeply (at most {MAX_DEPTH} levels)"
_TOO_LARGE = f"the spec is too large (at most {MAX_VALUES:,} values)"
_HINTS = (
    ("mapping values are not allowed", "a value containing ': ' must be in quotes, or this line is indented wrongly"),
    ("could not find expected ':'", "a key needs ':' after it, or the line is indented wrongly"),
    ("expected <block end>", "check the indentation: keys of one mapping line up, list items start with '- '"),
    ("did not find expected key", "check the indentation: keys of one mapping line up, list items start with '- '"),
    ("did not find expected '-'", "check the indentation: every item of a list starts with '- '"),
    ("that cannot start any token", "indent with spaces, not tabs, and quote values starting with @ or `"),
    ("found undefined alias", "an alias *name needs an anchor &name earlier in the file"),
    ("expected a single document", "a spec is one YAML document: remove the second '---'"),
    ("expected ',' or", "separate the items of [...] and {...} with commas"),
)
#: Problems found after the place that caused them: the line where the construct started is the useful one.
_STARTED_EARLIER = ("could not find expected ':'", "<stream end>", "end of stream")


def _explain_yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """``(line, message)`` for a PyYAML error: one line, the problem in YAML's words plus a hint for people."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return line, f"control character #x{exc.character:04x} is not allowed in YAML; remove it"
    problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"{context}, {problem}" if context else problem
    mark, started = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    hint = next((hint for needle, hint in _HINTS if needle in message), None)
    if started is not None and any(needle in problem for needle in _STARTED_EARLIER):
        line = started.line + 1
        if "end of stream" in problem or "<stream end>" in problem:
            hint = "a quote or bracket opened here is not closed"
    source_lines = text.splitlines()
    line = min(line, max(len(source_lines), 1))
    source_line = source_lines[line - 1] if source_lines else ""
    if "${" in source_line and ("flow" in message or "{" in problem):
        hint = 'a ${VAR} inside {...} or [...] must be in quotes: key: "${VAR}"'
    return line, f"{message}; {hint}" if hint else message

"""Turn composed YAML nodes into plain data, refusing what a spec must not contain.

PyYAML's own constructor silently keeps the last of two equal keys, reads ``on:`` as the key ``True`` and
expands aliases without limit (a 500-byte "billion laughs" spec takes minutes and all memory). This builder
checks the node graph first (size and depth after alias expansion, in time linear in the file), then builds
dicts, lists and scalars while recording the line of every spec path and every duplicate or non-text key.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: Values (scalars and collections) a spec may have once aliases are expanded. Real specs have a few hundred;
#: PyYAML needs about a second for 10,000.
MAX_VALUES = 10_000
#: Nesting levels a spec may have, aliases expanded; real specs need fewer than ten.
MAX_DEPTH = 100

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")}
_KEY_KINDS = {f"{_TAG}int": "a number", f"{_TAG}float": "a number", f"{_TAG}timestamp": "a date"}
_MERGE = f"{_TAG}merge"
_INDEX_RUN = re.compile(r"(\[\d+\])(?:\[\d+\]){2,}(\[\d+\])")


class Refused(Exception):
    """The document exceeds :data:`MAX_VALUES` or :data:`MAX_DEPTH`, or contains itself; ``spec_path`` is None
    while composing (paths are not known yet)."""

    def __init__(self, line: int, spec_path: str | None, message: str) -> None:
        super().__init__(message)
        self.line, self.spec_path, self.message = line, spec_path, message


class TreeBuilder:
    """Builds the data of one document; ``problems`` are ``(line, spec path, message)`` triples."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        #: Spec path (``$.sinks.out.path``) → 1-based line.
        self.lines: dict[str, int] = {}
        self.problems: list[tuple[int, str, str]] = []
        self._measured: dict[yaml.Node, tuple[int, int]] = {}
        self._alias_lines: dict[tuple[int, int], int] = {}

    def build(self, root: yaml.Node, alias_lines: dict[tuple[int, int], int]) -> Any:
        """Check the expanded size of ``root``, then build its data.

        :param alias_lines: where each alias is written, by ``(id(parent node), index or id(key node))``: an
            alias is the very node it refers to, whose own line is the anchor's.
        :raises Refused: before any expansion happens.
        """
        self._alias_lines = alias_lines
        self._measure(root, "$", 1, _line(root), set())
        return self._build(root, "$")

    def _measure(
        self, node: yaml.Node, path: str, level: int, line: int, open_nodes: set[yaml.Node]
    ) -> tuple[int, int]:
        """``(values, depth)`` of ``node`` with aliases expanded, each distinct node measured once; ``level`` is
        how deep it sits, ``line`` where it is written.

        An alias always follows its anchor in the document, so it refers to a node already measured: the
        recursion goes no deeper than the file's own nesting (which the composer bounds), and only an alias can
        take the expanded depth past :data:`MAX_DEPTH`.
        """
        known = self._measured.get(node)
        if known is not None:
            if level + known[1] - 1 > MAX_DEPTH:
                raise Refused(line, _short(path), f"this alias nests the spec deeper than {MAX_DEPTH} levels")
            return known
        if node in open_nodes:
            raise Refused(line, _short(path), "this alias is inside the collection it names (&name ... *name)")
        size, depth = 1, 0
        if isinstance(node, yaml.CollectionNode):
            open_nodes.add(node)
            for child, child_path, child_line in self._children(node, path):
                child_size, child_depth = self._measure(child, child_path, level + 1, child_line, open_nodes)
                size, depth = size + child_size, max(depth, child_depth)
            open_nodes.discard(node)
        if size > MAX_VALUES:
            raise Refused(
                line,
                _short(path),
                f"aliases (*name) expand this to more than {MAX_VALUES:,} values, an alias bomb; "
                "write the values out or use fewer aliases",
            )
        self._measured[node] = (size, depth + 1)
        return size, depth + 1

    def _children(self, node: yaml.CollectionNode, path: str) -> list[tuple[yaml.Node, str, int]]:
        """``(child, its path, the line it is written on)`` for keys, values and items."""
        lines = self._alias_lines
        if isinstance(node, yaml.SequenceNode):
            return [
                (item, f"{path}[{index}]", lines.get((id(node), index)) or _line(item))
                for index, item in enumerate(node.value)
            ]
        children: list[tuple[yaml.Node, str, int]] = []
        for key, value in node.value:
            label = key.value if isinstance(key, yaml.ScalarNode) else "?"
            value_path = path if key.tag == _MERGE else f"{path}.{label}"
            children.append((key, path, _line(key)))
            children.append((value, value_path, lines.get((id(node), id(key))) or _line(value)))
        return children

    def _build(self, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, _line(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_TAG}seq":
                return self._unsupported_tag(node, path)
            return [self._build(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode) or node.tag != f"{_TAG}map":
            return self._unsupported_tag(node, path)
        return self._mapping(node, path)

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        data: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            child = f"{path}.{key}"
            line = _line(key_node)
            if key in first_line:
                self.problems.append(
                    (
                        line,
                        child,
                        f"duplicate key {key!r} (also at line {first_line[key]}): one would silently "
                        "replace the other; keep one",
                    )
                )
                continue
            first_line[key] = line
            self.lines.setdefault(child, line)
            data[key] = self._build(value_node, child)
        # `<<: *defaults` adds the keys the mapping does not set itself; of several merged mappings the first wins.
        for merge in merges:
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.problems.append((_line(merge), path, "'<<' merges a mapping or a list of mappings"))
                    continue
                for key, value in self._mapping(source, path).items():
                    data.setdefault(key, value)
        return data

    def _key(self, node: yaml.Node, path: str) -> str | None:
        """The text of a mapping key, or None (a problem is recorded) when YAML did not read it as text."""
        if not isinstance(node, yaml.ScalarNode):
            kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
            self.problems.append((_line(node), path, f"a key must be text, not a {kind}"))
            return None
        if node.tag == f"{_TAG}str":
            return str(node.value)
        if node.tag == f"{_TAG}null":
            self.problems.append((_line(node), path, "a key is empty (null): write a name before ':'"))
            return None
        if node.tag in _KEY_KINDS or node.tag == f"{_TAG}bool":
            kind = _KEY_KINDS.get(node.tag) or f"the boolean {str(self.loader.construct_object(node)).lower()}"
            self.problems.append(
                (
                    _line(node),
                    f"{path}.{node.value}",
                    f'YAML reads the key {node.value!r} as {kind}, not as text: write it in quotes ("{node.value}":)',
                )
            )
            return None
        self.problems.append((_line(node), f"{path}.{node.value}", f"a key may not have the tag {node.tag}"))
        return None

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        if node.tag not in _SCALAR_TAGS:
            return self._unsupported_tag(node, path)
        try:
            return self.loader.construct_object(node)
        except (ValueError, yaml.YAMLError) as exc:  # e.g. 2024-13-45 matches the date pattern but is no date
            self.problems.append((_line(node), path, f"{node.value!r} is not a valid value ({exc}): quote it"))
            return node.value

    def _unsupported_tag(self, node: yaml.Node, path: str) -> None:
        tag = node.tag.replace(_TAG, "!!")
        self.problems.append((_line(node), path, f"the tag {tag} is not supported in a spec; remove it"))
        return None


def _short(path: str) -> str:
    """``$.a[0][0][0][0][0]`` → ``$.a[0]...[0]``: a path deep in nested lists says nothing more."""
    return _INDEX_RUN.sub(lambda run: run.group(1) + "..." + run.group(2), path)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1

"""Turn composed YAML nodes into plain data, refusing what a spec must not contain.

PyYAML's own constructor silently keeps the last of two equal keys, reads ``on:`` as the key ``True`` and
expands aliases without limit (a 500-byte "billion laughs" spec takes minutes and all memory). This builder
checks the node graph first (size and depth after alias expansion, in time linear in the file), then builds
dicts, lists and scalars while recording the line of every spec path and every duplicate or non-text key.
"""

from __future__ import annotations

from typing import Any

import yaml

#: Values (scalars and collections) a spec may have once aliases are expanded; real specs have a few hundred.
MAX_VALUES = 100_000
#: Nesting levels a spec may have, aliases expanded; real specs need fewer than ten.
MAX_DEPTH = 100

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")}
_KEY_KINDS = {f"{_TAG}int": "a number", f"{_TAG}float": "a number", f"{_TAG}timestamp": "a date"}
_MERGE = f"{_TAG}merge"


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

    def build(self, root: yaml.Node) -> Any:
        """Check the expanded size of ``root``, then build its data.

        :raises Refused: before any expansion happens.
        """
        self._measure(root, "$", set())
        return self._build(root, "$")

    def _measure(self, node: yaml.Node, path: str, open_nodes: set[yaml.Node]) -> tuple[int, int]:
        """``(values, depth)`` of ``node`` with aliases expanded, each distinct node measured once.

        An alias always follows its anchor in the document, so it refers to a node already measured: the
        recursion goes no deeper than the file's own nesting (which the composer bounds).
        """
        known = self._measured.get(node)
        if known is not None:
            return known
        if node in open_nodes:
            raise Refused(_line(node), path, "this collection contains itself through an alias (&name ... *name)")
        size, depth = 1, 0
        if isinstance(node, yaml.CollectionNode):
            open_nodes.add(node)
            for child, child_path in _children(node, path):
                child_size, child_depth = self._measure(child, child_path, open_nodes)
                size, depth = size + child_size, max(depth, child_depth)
            open_nodes.discard(node)
        depth += 1
        if size > MAX_VALUES:
            raise Refused(
                _line(node),
                path,
                f"aliases (*name) expand this to more than {MAX_VALUES:,} values, an alias bomb; "
                "write the values out or use fewer aliases",
            )
        if depth > MAX_DEPTH:
            raise Refused(_line(node), path, f"aliases (*name) nest this deeper than {MAX_DEPTH} levels")
        self._measured[node] = (size, depth)
        return size, depth

    def _build(self, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, _line(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_TAG}seq":
                return self._unsupported_tag(node, path)
            return [self._build(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        if node.tag != f"{_TAG}map":
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


def _children(node: yaml.CollectionNode, path: str) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.SequenceNode):
        return [(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
    pairs: list[tuple[yaml.Node, str]] = []
    for key, value in node.value:
        label = key.value if isinstance(key, yaml.ScalarNode) else "?"
        pairs.extend([(key, path), (value, path if key.tag == _MERGE else f"{path}.{label}")])
    return pairs


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1

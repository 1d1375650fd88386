"""The ``dedupe`` mapper: the first record per key goes on, later ones go to ``duplicates``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, ClassVar

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.options import Names, names
from connector_core.records import Record

from .values import as_text, is_empty, normalized

if TYPE_CHECKING:
    from connector_core.context import RunContext


@attrs.frozen
class DedupeOptions:
    """Options of the ``dedupe`` mapper."""

    by: Names = attrs.field(factory=list)
    """A field or list of fields that identify a record; unset means the record key."""
    normalize: bool = True
    """Compare text ignoring case and surrounding spaces (``Ada@X.com `` equals ``ada@x.com``)."""


class DedupeMapper(Mapper[DedupeOptions]):
    """Passes the first record for each identity and sends later ones to the quiet ``duplicates`` output.

    Records whose ``by`` fields are all empty (or, without ``by``, whose record key is blank) have no identity
    and always pass: a hundred contacts without an email are not duplicates of each other. Memory stays small
    on large inputs: only a 16-byte hash of each identity is kept.
    """

    Options: ClassVar[type] = DedupeOptions
    outputs: ClassVar[tuple[str, ...]] = ("default", "duplicates")
    quiet_outputs: ClassVar[tuple[str, ...]] = ("duplicates",)

    def __init__(self, name: str, options: DedupeOptions, context: RunContext) -> None:
        super().__init__(name, options, context)
        self._seen: set[bytes] = set()
        self._by = names(options.by)
        self._text = normalized if options.normalize else as_text

    def identity(self, record: Record) -> str | None:
        """The text that identifies ``record``, or None when it has none."""
        fields = self._by
        if not fields:
            return None if is_empty(record.key) else self._text(record.key)
        values = [record.data.get(field) for field in fields]
        if all(is_empty(value) for value in values):
            return None
        # The unit separator keeps ("a b", "c") and ("a", "b c") apart.
        return "\x1f".join(self._text(value) for value in values)

    def process(self, batch: list[Record], out: Emitter) -> None:
        seen = self._seen
        passed, duplicates = [], []
        for record in batch:
            identity = self.identity(record)
            if identity is None:
                passed.append(record)
                continue
            digest = hashlib.blake2b(identity.encode(), digest_size=16).digest()
            if digest in seen:
                duplicates.append(record)
            else:
                seen.add(digest)
                passed.append(record)
        out.emit_many(passed)
        out.emit_many(duplicates, "duplicates")

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

    @classmethod
    def reads_keys(cls, options: DedupeOptions) -> bool:
        # Without `by` the key is the identity; with it, keys are compared only across runs (with state, which
        # keys every record anyway).
        return not options.by

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
        self._route(batch, out, remember=True)

    def plan(self, batch: list[Record], out: Emitter) -> None:
        """As :meth:`process`, but a plan writes nothing to the state."""
        self._route(batch, out, remember=False)

    def _route(self, batch: list[Record], out: Emitter, remember: bool) -> None:
        """Pass or drop each record. When the job keeps state, each identity's first record (its key) is
        remembered across runs (``remember``): a duplicate stays a duplicate on the next run although its twin
        is then skipped as unchanged, and a changed version of the first record still passes."""
        # A None context is fine: unit tests drive the mapper without an engine.
        seen, state = self._seen, self.context.state if self.context is not None else None
        digests = [self._digest(record) for record in batch]
        owners: dict[str, str] = {}
        if state is not None:
            asked = sorted({digest.hex() for digest in digests if digest is not None and digest not in seen})
            owners = {hexed: value["key"] for hexed, value in state.objects(self.name, asked).items()}
        new: dict[str, dict[str, str]] = {}
        passed, duplicates = [], []
        for record, digest in zip(batch, digests, strict=True):
            if digest is None:
                passed.append(record)
            elif digest in seen or owners.get(digest.hex(), record.key) != record.key:
                duplicates.append(record)
            else:
                seen.add(digest)
                if digest.hex() not in owners:
                    new[digest.hex()] = {"key": record.key}
                passed.append(record)
        if state is not None and remember and new:
            state.put_objects(self.name, new)
        out.emit_many(passed)
        out.emit_many(duplicates, "duplicates")

    def _digest(self, record: Record) -> bytes | None:
        identity = self.identity(record)
        return None if identity is None else hashlib.blake2b(identity.encode(), digest_size=16).digest()

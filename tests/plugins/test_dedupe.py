"""The ``dedupe`` mapper."""

from __future__ import annotations

from typing import Any

from crmsync_plugins.transforms.dedupe import DedupeMapper, DedupeOptions

from .kit import MapperFactory, Pipeline, Write, run_mapper

ROWS: list[dict[str, Any]] = [
    {"id": 1, "email": "Ada@Example.com", "name": "Ada"},
    {"id": 2, "email": " ada@example.com ", "name": "Ada L."},
    {"id": 3, "email": "grace@example.com", "name": "Grace"},
    {"id": 4, "email": "", "name": "Nobody"},
    {"id": 5, "email": None, "name": "Nobody"},
    {"id": 6, "email": "grace@example.com", "name": "Grace H."},
]


def ids(routed: dict[str, list[dict[str, Any]]], output: str) -> list[int]:
    return [row["id"] for row in routed.get(output, [])]


def test_first_occurrence_wins_and_text_is_normalised(mapper: MapperFactory) -> None:
    routed, _ = mapper(DedupeMapper, {"by": "email"})(*ROWS)
    assert ids(routed, "default") == [1, 3, 4, 5]
    assert ids(routed, "duplicates") == [2, 6]


def test_without_normalize_values_compare_exactly(mapper: MapperFactory) -> None:
    routed, _ = mapper(DedupeMapper, {"by": ["email"], "normalize": False})(*ROWS)
    assert ids(routed, "duplicates") == [6]


def test_several_fields(mapper: MapperFactory) -> None:
    again = {"id": 7, "email": "ADA@example.com", "name": "ada"}
    routed, _ = mapper(DedupeMapper, {"by": ["email", "name"]})(*ROWS, again)
    # 5 repeats 4: no email either, and the same name.
    assert ids(routed, "duplicates") == [5, 7]


def test_records_without_identity_are_never_duplicates(mapper: MapperFactory) -> None:
    routed, _ = mapper(DedupeMapper, {"by": "email"})(*ROWS)
    assert {4, 5} <= set(ids(routed, "default"))


def test_by_default_the_record_key_identifies(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "id,name\n1,Ada\n2,Grace\n1,Ada again\n")
    result = pipeline({"type": "csv", "path": "in.csv", "key": "id"}, {"d": {"type": "dedupe"}})
    assert [r["name"] for r in result.records] == ["Ada", "Grace"]
    assert result.report.streams["d.duplicates"] == 1


def test_memory_holds_only_small_hashes() -> None:
    dedupe = DedupeMapper("d", DedupeOptions(by="email"), None)  # type: ignore[arg-type]
    run_mapper(dedupe, ROWS)
    assert all(isinstance(digest, bytes) and len(digest) == 16 for digest in dedupe._seen)
    assert len(dedupe._seen) == 2

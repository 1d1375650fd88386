"""The conformance classes of the test kit, run against built-in components (and shown to catch a bad one)."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import types
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from connector_core import hookimpl
from connector_core.components import Emitter, Sink
from connector_core.records import Record
from connector_core.testing import read_jsonl, write_jsonl
from connector_core.testing.conformance import MapperConformance, SinkConformance, SourceConformance


class TestJsonlSink(SinkConformance):
    component_type = "jsonl"

    def options(self, folder: Path) -> dict[str, Any]:
        return {"path": "out.jsonl"}

    def delivered(self, folder: Path) -> list[dict[str, Any]]:
        path = folder / "out.jsonl"
        return read_jsonl(path) if path.exists() else []


class TestSqliteSink(SinkConformance):
    component_type = "sqlite"
    rejected_record: ClassVar[dict[str, Any] | None] = {"_KEY": "clashes with the key column"}

    def options(self, folder: Path) -> dict[str, Any]:
        return {"path": "out.sqlite", "table": "people"}

    def delivered(self, folder: Path) -> list[dict[str, Any]]:
        if not (folder / "out.sqlite").exists():
            return []
        with contextlib.closing(sqlite3.connect(folder / "out.sqlite")) as db:
            db.row_factory = sqlite3.Row
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'people'").fetchone():
                return []
            return [dict(row) for row in db.execute("SELECT * FROM people")]


class TestCsvSource(SourceConformance):
    component_type = "csv"

    def write_input(self, folder: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
        with (folder / "in.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, ["id", "email", "name"])
            writer.writeheader()
            writer.writerows(rows)
        return {"path": "in.csv"}

    def broken_input(self, folder: Path) -> dict[str, Any] | None:
        (folder / "in.csv").write_text("id,email,name\n1,a@x.io,A\n2,b@x.io,B,extra\n3,c@x.io,C\n", encoding="utf-8")
        return {"path": "in.csv"}


class TestFieldsMapper(MapperConformance):
    component_type = "fields"
    rejected_record: ClassVar[dict[str, Any] | None] = {"email": ""}

    def options(self, folder: Path) -> dict[str, Any]:
        return {"fields": {"id": {"from": "id"}, "email": {"from": "email", "required": True}}}


class TestFilterMapper(MapperConformance):
    component_type = "filter"

    def options(self, folder: Path) -> dict[str, Any]:
        return {"where": [{"field": "id", "in": [0, 1, 2]}]}


@attrs.frozen
class NoOptions:
    pass


class Forgetful(Sink):
    """A broken sink: it writes nothing for records after the first of each batch, and reports them written."""

    Options = NoOptions

    def write(self, batch: list[Record], out: Emitter) -> None:
        with Path(self.context.spec.base_dir, "out.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(f'{{"id": {batch[0].data["id"]}}}\n')


FORGETFUL = (
    "forgetful",
    types.SimpleNamespace(register_sinks=hookimpl(lambda registry: registry.add("bad", Forgetful))),
)


class ForgetfulConformance(SinkConformance):
    component_type = "bad"
    plugins = (FORGETFUL,)

    def delivered(self, folder: Path) -> list[dict[str, Any]]:
        path = folder / "out.jsonl"
        return read_jsonl(path) if path.exists() else []


def test_the_kit_catches_a_sink_that_loses_records(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="2500 records went in"):
        ForgetfulConformance().test_large_input_in_many_batches(tmp_path)


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    rows = [{"id": 1}, {"id": 2, "name": "é"}]
    assert read_jsonl(write_jsonl(tmp_path / "x.jsonl", rows)) == rows

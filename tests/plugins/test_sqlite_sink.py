"""The ``sqlite`` sink: upserts by record key, schema growth, one transaction per run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from connector_core.components import Emitter
from crmsync_plugins.files.sqlite_sink import SqliteSink, SqliteSinkOptions

from .kit import Pipeline, Write, make_records


def rows(path: Path, query: str = "SELECT * FROM people ORDER BY _key") -> list[dict[str, Any]]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(query)]
    finally:
        db.close()


def sync(pipeline: Pipeline, write: Write, lines: list[dict[str, Any]]) -> None:
    write("in.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    sink = {"type": "sqlite", "path": "db/crm.sqlite", "table": "people"}
    report = pipeline({"type": "jsonl", "path": "in.jsonl", "key": "id"}, out=sink).report
    assert report.status == "success", report.failure


def test_upsert_updates_changed_records_and_adds_new_columns(pipeline: Pipeline, write: Write, tmp_path: Path) -> None:
    sync(pipeline, write, [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace", "tags": ["navy"]}])
    sync(pipeline, write, [{"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"}])
    assert rows(tmp_path / "db" / "crm.sqlite") == [
        {"_key": "1", "id": 1, "name": "Ada Lovelace", "tags": None, "email": "ada@example.com"},
        {"_key": "2", "id": 2, "name": "Grace", "tags": '["navy"]', "email": None},
    ]


def test_a_crash_before_commit_leaves_the_previous_state(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    first = SqliteSink("db", SqliteSinkOptions(path=path, table="people"), None)
    first.open()
    first.write(make_records({"name": "Ada"}), Emitter())
    first.close(True)
    before = rows(path)
    # A separate process writes and is killed before close(): nothing it wrote may survive.
    script = f"""
import os, pathlib
from connector_core.components import Emitter
from connector_core.records import Record
from crmsync_plugins.files.sqlite_sink import SqliteSink, SqliteSinkOptions
sink = SqliteSink("db", SqliteSinkOptions(path=pathlib.Path({str(path)!r}), table="people"), None)
sink.open()
sink.write([Record({{"name": "Grace", "email": "g@x.com"}}, "k2", "src", 1)], Emitter())
os._exit(1)
"""
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 1
    assert rows(path) == before


def test_failed_run_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    for name, success in (("Ada", True), ("Grace", False)):
        sink = SqliteSink("db", SqliteSinkOptions(path=path, table="people"), None)
        sink.open()
        sink.write(make_records({"name": name}, {"name": name, "n": 2}), Emitter())
        sink.close(success)
    assert [row["name"] for row in rows(path)] == ["Ada", "Ada"]


def test_fields_that_clash_with_the_key_column_are_rejected(tmp_path: Path) -> None:
    sink = SqliteSink("db", SqliteSinkOptions(path=tmp_path / "crm.sqlite", table="people"), None)
    sink.open()
    out = Emitter()
    sink.write(make_records({"_key": "x", "name": "Ada"}, {"name": "Grace"}, {"Email": 1, "email": 2}), out)
    sink.close(True)
    assert [failure.record.position for failure in out.failed] == [1, 3]
    assert [row["name"] for row in rows(tmp_path / "crm.sqlite")] == ["Grace"]

"""Record keys: a ``key`` naming a missing column stops the job; blank keys never collide downstream."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from connector_core.cli import main
from connector_core.components import Emitter
from connector_core.keys import key_function, keys_function
from connector_core.records import Record, content_key
from connector_core.spec.suggest import closest
from connector_core.testing import read_jsonl, write_spec
from crmsync_plugins.files.sqlite_sink import SqliteSink, SqliteSinkOptions
from crmsync_plugins.transforms.dedupe import DedupeMapper

from .kit import Pipeline, Write, build

PEOPLE = "email,name\na@x.com,Ada\nb@x.com,Bob\n"


def job(folder: Path, source: dict[str, Any], sinks: dict[str, Any] | None = None, mappers: Any = None) -> Path:
    sinks = sinks or {"out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["src"]}}
    sinks["errs"] = {"type": "jsonl", "path": "errors.jsonl", "inputs": ["errors"]}
    spec = {"version": 1, "job": "keys", "sources": {"src": source}, "mappers": mappers or {}, "sinks": sinks}
    return write_spec(folder, json.dumps(spec))


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_key_column_the_csv_lacks_stops_the_job_with_exit_2(
    tmp_path: Path, write: Write, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    write("in.csv", PEOPLE)
    spec = job(tmp_path, {"type": "csv", "path": "in.csv", "key": "emial"})
    assert main([command, str(spec)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error  # one line, no traceback
    assert f"{spec}:1: $.sources.src.key: key column 'emial' (did you mean 'email'?) not in the header" in error
    assert "of in.csv (line 1); its columns are: email, name" in error
    assert not (tmp_path / "out.jsonl").exists()


def test_the_key_check_sees_normalised_headers(tmp_path: Path, write: Write) -> None:
    write("in.csv", "E-Mail Address,Name\na@x.com,Ada\n")
    ok = job(tmp_path, {"type": "csv", "path": "in.csv", "key": "e_mail_address", "normalize_headers": "snake"})
    assert main(["run", str(ok)]) == 0
    assert [r["e_mail_address"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a@x.com"]


def test_a_key_column_the_sqlite_query_lacks_stops_the_job_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(tmp_path / "crm.db")
    db.execute("CREATE TABLE people (id INTEGER, email TEXT)")
    db.commit()
    db.close()
    source = {"type": "sqlite", "path": "crm.db", "query": "SELECT id, email FROM people", "key": ["id", "Email"]}
    assert main(["run", str(job(tmp_path, source))]) == 2
    assert (
        "key column 'Email' (did you mean 'email'?) not in the columns of the query on crm.db"
        in capsys.readouterr().err
    )


def test_closest_column() -> None:
    assert closest("emial", ["email", "name"]) == "email"
    assert closest("First Name", ["first_name", "last_name"]) == "first_name"
    assert closest("zzz", ["email", "name"]) is None


def test_jsonl_records_without_the_key_field_are_keyed_by_content(
    pipeline: Pipeline, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [{"id": 1}, {"name": "no id"}, {"id": None}, {"id": "  "}, {"id": 0}, {"id": "x"}]
    write("in.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    result = pipeline({"type": "jsonl", "path": "in.jsonl", "key": "id"})
    keys = [r["_key"] for r in result.records]
    assert keys[0] == "1" and keys[4:] == ["0", "x"]
    assert keys[1:4] == [content_key(line) for line in lines[1:4]]  # never one shared blank key
    assert result.report.extra["source src"] == {"blank_keys": 3}
    assert "src: record 2 has a blank key id" in caplog.text


def test_a_composite_key_is_blank_when_any_part_is() -> None:
    key = key_function(("first", "last"))
    assert key({"first": "Ada", "last": "Lovelace"}) == "Ada|Lovelace"
    assert key({"first": "Ada", "last": ""}) is None
    assert key({"first": "Ada"}) is None


TEN_ROWS_THREE_BLANK = "id,name\n1,a\n2,b\n,c\n4,d\n  ,e\n6,f\n7,g\n,h\n9,i\n10,j\n"


def sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT _key, name FROM people ORDER BY CAST(_key AS INTEGER)").fetchall()
    finally:
        db.close()


def test_blank_keys_do_not_collide_in_sqlite_and_the_report_matches_the_table(
    tmp_path: Path, write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    write("in.csv", TEN_ROWS_THREE_BLANK)
    sinks = {"db": {"type": "sqlite", "path": "crm.sqlite", "table": "people", "inputs": ["src"]}}
    spec = job(tmp_path, {"type": "csv", "path": "in.csv", "key": "id"}, sinks)
    report_path = tmp_path / "report.json"
    for run in range(2):  # without state, the second run updates the same rows in place
        assert main(["run", str(spec), "--no-state", "--report", str(report_path)]) == 0
        names = sorted(name for _, name in sqlite_rows(tmp_path / "crm.sqlite"))
        assert names == list("abcdefghij"), f"run {run}"
        report = json.loads(report_path.read_text())
        assert report["input_records"] == 10 == report["delivered"]["db"]
        assert report["errors"]["count"] == 0
        assert report["source src"] == {"blank_keys": 3}
        assert report["sink db"] == {"upserted": 10, "inserted": 10 - 10 * run, "updated": 10 * run}
    capsys.readouterr()


def test_a_stateful_rerun_with_blank_keys_duplicates_nothing(tmp_path: Path, write: Write) -> None:
    write("in.csv", TEN_ROWS_THREE_BLANK)
    sinks = {
        "out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["unique"]},
        "db": {"type": "sqlite", "path": "crm.sqlite", "table": "people", "inputs": ["unique"]},
    }
    mappers = {"unique": {"type": "dedupe", "inputs": ["src"]}}
    spec = job(tmp_path, {"type": "csv", "path": "in.csv", "key": "id"}, sinks, mappers)
    state = tmp_path / "state.db"
    for run in range(3):
        report_path = tmp_path / f"report{run}.json"
        assert main(["run", str(spec), "--state", str(state), "--report", str(report_path)]) == 0
        report = json.loads(report_path.read_text())
        skipped = report["state"]["skipped_unchanged"]
        delivered = report["delivered"].get("out", 0)
        assert (skipped, delivered, report["errors"]["count"]) == ((0, 10, 0) if run == 0 else (10, 0, 0))
        assert sorted(r["name"] for r in read_jsonl(tmp_path / "out.jsonl")) == list("abcdefghij")
        assert len(sqlite_rows(tmp_path / "crm.sqlite")) == 10
    # A blank-key row that changes is a new record (it has no key to be a version of): one more, nothing doubled.
    write("in.csv", TEN_ROWS_THREE_BLANK.replace(",c\n", ",c2\n"))
    assert main(["run", str(spec), "--state", str(state)]) == 0
    assert sorted(r["name"] for r in read_jsonl(tmp_path / "out.jsonl")) == [*"abc", "c2", *"defghij"]


def test_the_sqlite_sink_rejects_a_blank_record_key(tmp_path: Path) -> None:
    sink = SqliteSink("db", SqliteSinkOptions(path=tmp_path / "crm.sqlite", table="people"), None)
    sink.open()
    out = Emitter()
    records = [
        Record({"name": name}, key, "src", n) for n, (name, key) in enumerate([("a", "1"), ("b", ""), ("c", " ")])
    ]
    sink.write(records, out)
    sink.close(True)
    assert [failure.record.data["name"] for failure in out.failed] == ["b", "c"]
    assert "blank key" in out.failed[0].reason
    assert sqlite_rows(tmp_path / "crm.sqlite") == [("1", "a")]


def test_dedupe_never_takes_blank_keys_for_duplicates() -> None:
    mapper = build(DedupeMapper, {})
    records = [Record({"n": n}, key, "src", n) for n, key in enumerate(["k", "", "k", "", " "])]
    out = Emitter()
    mapper.process(records, out)
    assert [record.data["n"] for record in out.routed["default"]] == [0, 1, 3, 4]
    assert [record.data["n"] for record in out.routed["duplicates"]] == [2]


@pytest.mark.parametrize("fields", [(), ("email",), ("email", "id")])
@pytest.mark.parametrize(
    "rows",
    [
        [{"email": "a@x.io", "id": "1"}, {"email": " b@x.io ", "id": "2"}],  # text everywhere: the C loops
        [{"email": "a@x.io", "id": "1"}, {"email": "", "id": "2"}, {"email": " \t", "id": "3"}],  # blank
        [{"email": None, "id": 1}, {"id": 2}, {"email": 7, "id": 3}, {"email": ["x"], "id": 4}],  # not text
        [{"email": "\u3000", "id": "1"}, {"email": "\x85", "id": "2"}],  # Unicode whitespace only
        [{"id": "1", "email": 'ü%s"q\\'}, {"email": "x", "id": "2"}],  # fields reordered, escaped values
        [{"email": "a", "id": "1"}, {"email": "a", "name": "1"}],  # as many fields, other names
        [{"email": "a", "id": "1"}, {"email": "a", "id": "1", "x": "y"}, {"email": "a"}],  # more, fewer
        [{"email": "a"}, {"email": "b"}],  # one field
        [],
    ],
)
def test_the_keys_of_many_records_are_each_record_s(fields: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    one = key_function(fields) if fields else content_key
    assert keys_function(fields)(rows) == [one(row) for row in rows]


SEPARATOR_VALUES = ["x", "x|y", "|", "||", "x\\", "\\|", "\\", "y|z\\", "a\\|b", "1"]


def test_composite_keys_of_different_values_never_collide() -> None:
    """Every pair and triple of values built from the separator and the escape gets a key of its own."""
    for width in (2, 3):
        key = key_function(tuple(f"f{index}" for index in range(width)))
        combos: list[tuple[str, ...]] = [(value,) for value in SEPARATOR_VALUES]
        for _ in range(width - 1):
            combos = [(*combo, value) for combo in combos for value in SEPARATOR_VALUES]
        keys = {key(dict(zip((f"f{index}" for index in range(width)), combo, strict=True))) for combo in combos}
        assert len(keys) == len(combos), width


def test_composite_keys_without_the_separator_are_the_plain_join() -> None:
    """The keys an earlier crmsync stored stay the same: values without a ``|`` are joined as they are."""
    key = key_function(("first", "last", "id"))
    assert key({"first": "Ada", "last": "Love\\lace", "id": 7}) == "Ada|Love\\lace|7"
    assert key({"first": "x|y", "last": "z", "id": 7}) == "x\\|y|z|7"


def test_records_whose_composite_keys_differ_only_by_a_separator_are_both_delivered(
    tmp_path: Path, write: Write
) -> None:
    write("in.csv", 'first,last,v\n"x|y",z,1\nx,"y|z",2\n')
    sinks = {
        "db": {"type": "sqlite", "path": "out.db", "table": "t", "inputs": ["src"]},
        "out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["src"]},
    }
    spec = job(tmp_path, {"type": "csv", "path": "in.csv", "key": ["first", "last"]}, sinks)
    assert main(["run", str(spec), "--state", str(tmp_path / "state.db")]) == 0
    assert sorted(row["v"] for row in read_jsonl(tmp_path / "out.jsonl")) == ["1", "2"]
    db = sqlite3.connect(tmp_path / "out.db")
    assert sorted(row[0] for row in db.execute("SELECT v FROM t")) == ["1", "2"]
    db.close()
    write("in.csv", 'first,last,v\n"x|y",z,1\nx,"y|z",3\n')  # the second one changed: only it is delivered again
    assert main(["run", str(spec), "--state", str(tmp_path / "state.db")]) == 0
    assert [row["v"] for row in read_jsonl(tmp_path / "out.jsonl")][2:] == ["3"]
    db = sqlite3.connect(tmp_path / "out.db")
    assert sorted(row[0] for row in db.execute("SELECT v FROM t")) == ["1", "3"]
    db.close()

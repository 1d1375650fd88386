"""The ``jsonl`` and ``csv`` sinks: content, metadata and atomic commits."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from connector_core import api, hookimpl
from connector_core.components import Emitter, Mapper
from connector_core.records import Record
from connector_core.testing import read_jsonl, write_jsonl
from crmsync_plugins.files.base import FileSink, FileSinkOptions
from crmsync_plugins.files.csv_sink import CsvSink, CsvSinkOptions
from crmsync_plugins.files.jsonl_sink import JsonlSink

from .kit import Pipeline, Write, make_records
from .test_sqlite_sink import rows as table_rows

PEOPLE = '{"name": "Zoë", "tags": ["a", "b"], "address": {"city": "Paris"}, "vip": true, "age": null}\n'


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_jsonl_sink_writes_one_object_per_line_keeping_unicode(
    pipeline: Pipeline, write: Write, tmp_path: Path
) -> None:
    write("in.jsonl", PEOPLE)
    pipeline({"type": "jsonl", "path": "in.jsonl"}, out={"metadata": False})
    text = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(PEOPLE), ensure_ascii=False) + "\n"


def test_jsonl_sink_writes_unknown_types_as_strings(tmp_path: Path) -> None:
    sink = JsonlSink("out", FileSinkOptions(path=tmp_path / "out.jsonl"), None)
    sink.open()
    sink.write(make_records({"when": dt.date(2024, 5, 1)}), Emitter())
    sink.close(True)
    assert read_jsonl(tmp_path / "out.jsonl") == [{"when": "2024-05-01"}]


@pytest.mark.parametrize("count", [1, 99, 100, 101, 250])
def test_jsonl_sink_writes_a_batch_of_any_size_in_order(tmp_path: Path, count: int) -> None:
    sink = JsonlSink("out", FileSinkOptions(path=tmp_path / "out.jsonl"), None)
    sink.open()
    sink.write(make_records(*({"n": n, "name": f"Zoë {n}"} for n in range(count))), Emitter())
    sink.close(True)
    expected = "".join(json.dumps({"n": n, "name": f"Zoë {n}"}, ensure_ascii=False) + "\n" for n in range(count))
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == expected


def test_metadata_traces_rows_back_to_their_input(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "id,name\n1,Ada\n2,Grace\n")
    records = pipeline({"type": "csv", "path": "in.csv", "key": "id"}).records
    assert [(r["_key"], r["_source"], r["_position"]) for r in records] == [("1", "src", 2), ("2", "src", 3)]


def test_csv_sink_columns_from_the_first_record_and_cell_encoding(
    pipeline: Pipeline, write: Write, tmp_path: Path
) -> None:
    write("in.jsonl", PEOPLE + '{"name": "Ada", "extra": 1}\n')
    pipeline({"type": "jsonl", "path": "in.jsonl"}, out={"type": "csv", "path": "out.csv", "metadata": False})
    assert read_csv(tmp_path / "out.csv") == [
        ["name", "tags", "address", "vip", "age"],
        ["Zoë", '["a", "b"]', '{"city": "Paris"}', "true", ""],
        ["Ada", "", "", "", ""],
    ]


def test_csv_sink_explicit_columns_delimiter_and_metadata(pipeline: Pipeline, write: Write, tmp_path: Path) -> None:
    write("in.csv", "id,name,email\n7,Ada,ada@example.com\n")
    sink = {"type": "csv", "path": "out.csv", "columns": ["email", "name"], "delimiter": ";", "metadata": True}
    pipeline({"type": "csv", "path": "in.csv", "key": "id"}, out=sink)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter=";"))
    assert rows == [["email", "name", "_key", "_source", "_position"], ["ada@example.com", "Ada", "7", "src", "2"]]


def test_csv_sink_extra_error_rejects_records_with_unknown_fields(
    pipeline: Pipeline, write: Write, tmp_path: Path
) -> None:
    write("in.jsonl", '{"name": "Ada"}\n{"name": "Grace", "email": "g@x.com"}\n')
    sink = {"type": "csv", "path": "out.csv", "columns": ["name"], "extra": "error", "metadata": False}
    result = pipeline({"type": "jsonl", "path": "in.jsonl"}, out=sink)
    assert read_csv(tmp_path / "out.csv") == [["name"], ["Ada"]]
    assert result.reasons == ["fields not among the csv columns: 'email'"]
    assert result.report.delivered["out"] == 1


def test_csv_sink_without_records_writes_an_empty_file(tmp_path: Path) -> None:
    sink = CsvSink("out", CsvSinkOptions(path=tmp_path / "out.csv"), None)
    sink.open()
    sink.close(True)
    assert (tmp_path / "out.csv").read_text() == ""


def test_parent_folders_are_created(pipeline: Pipeline, write: Write, tmp_path: Path) -> None:
    write("in.jsonl", '{"a": 1}\n')
    pipeline({"type": "jsonl", "path": "in.jsonl"}, out={"path": "deep/er/out.jsonl"})
    assert read_jsonl(tmp_path / "deep" / "er" / "out.jsonl")[0]["a"] == 1


def partials(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".partial"))


def file_sink(kind: str, target: Path) -> FileSink:
    if kind == "csv":
        return CsvSink("out", CsvSinkOptions(path=target), None)
    return JsonlSink("out", FileSinkOptions(path=target), None)


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_crash_before_close_leaves_the_target_untouched(tmp_path: Path, kind: str) -> None:
    target = tmp_path / f"out.{kind}"
    sink = file_sink(kind, target)
    sink.open()
    sink.write(make_records({"n": 1}, {"n": 2}), Emitter())
    # The process "dies" here: close() never runs.
    assert not target.exists()
    assert partials(tmp_path) == [f".out.{kind}.{os.getpid()}.partial"]
    sink.close(True)
    assert target.read_text().splitlines()[-2:] == (['{"n": 1}', '{"n": 2}'] if kind == "jsonl" else ["1", "2"])
    assert partials(tmp_path) == []


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_previous_output_stays_intact_until_commit(tmp_path: Path, kind: str) -> None:
    target = tmp_path / f"out.{kind}"
    target.write_text("previous run\n")
    sink = file_sink(kind, target)
    sink.open()
    sink.write(make_records({"n": 1}), Emitter())
    assert target.read_text() == "previous run\n"
    sink.close(True)
    assert "previous run" not in target.read_text()


def test_failed_run_keeps_the_previous_file_and_sets_its_records_aside(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text('{"old": true}\n')
    sink = file_sink("jsonl", target)
    sink.open()
    sink.write(make_records({"n": 1}), Emitter())
    sink.close(False)
    assert read_jsonl(target) == [{"old": True}]
    assert read_jsonl(tmp_path / ".out.jsonl.failed") == [{"n": 1}]
    assert partials(tmp_path) == []


def test_failed_run_that_wrote_nothing_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text('{"old": true}\n')
    sink = file_sink("jsonl", target)
    sink.open()
    sink.close(False)
    assert read_jsonl(target) == [{"old": True}]
    assert partials(tmp_path) == []


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_text_file_sources_and_sinks_work_on_the_event_loop_thread(
    pipeline: Pipeline, write: Write, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # Parsing and encoding are CPU work: on threads of their own they would trade the GIL with the loop for
    # every batch (thousands of futex calls a run), so they stay where the loop runs.
    from crmsync_plugins.files.csv_source import CsvSource
    from crmsync_plugins.files.jsonl_source import JsonlSource

    threads: set[int] = set()

    def traced(original: Any) -> Any:
        def call(self: Any, *args: Any) -> Any:
            threads.add(threading.get_ident())
            return original(self, *args)

        return call

    for cls, method in ((CsvSource, "read"), (JsonlSource, "read"), (JsonlSink, "write")):
        monkeypatch.setattr(cls, method, traced(getattr(cls, method)))
    write("in.csv", "id,name\n1,Ada\n2,Grace\n")
    write("in.jsonl", '{"id": "1", "name": "Ada"}\n{"id": "2", "name": "Grace"}\n')
    records = pipeline({"type": kind, "path": f"in.{kind}", "key": "id"}, out={"metadata": False}).records
    assert [record["name"] for record in records] == ["Ada", "Grace"]
    assert threads == {threading.get_ident()}


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_partial_files_of_killed_processes_are_deleted_by_the_next_open(tmp_path: Path, kind: str) -> None:
    """A killed run leaves its partial file; the next run's sink deletes it, unless its process still runs."""
    target = tmp_path / f"out.{kind}"
    dead = tmp_path / f".out.{kind}.{_exited_pid()}.partial"
    alive_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".out.{kind}.{alive_process.pid}.partial"
        other = tmp_path / f".other.{kind}.{_exited_pid()}.partial"  # another target's: not this sink's to delete
        for path in (dead, alive, other):
            path.write_text("half a row")
        sink = file_sink(kind, target)
        sink.open()
        assert partials(tmp_path) == sorted([alive.name, other.name, f".out.{kind}.{os.getpid()}.partial"])
        sink.close(True)
    finally:
        alive_process.kill()
        alive_process.wait()


def test_a_run_after_a_killed_one_leaves_no_partial_file(tmp_path: Path) -> None:
    """End to end: SIGKILL a run while it writes, run again: one complete output and no leftover."""
    rows = "".join(f"p{n}@example.com,Name {n}\n" for n in range(300_000))
    (tmp_path / "leads.csv").write_text("Email,Name\n" + rows)
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "version: 1\njob: orphans\nsources:\n  leads: {type: csv, path: leads.csv, key: Email}\n"
        "sinks:\n  out: {type: jsonl, inputs: [leads], path: out.jsonl}\n"
    )
    command = [sys.executable, "-m", "connector_core", "-q", "run", "--no-state", str(spec)]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as killed:
        deadline = time.monotonic() + 30
        while not partials(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        killed.send_signal(signal.SIGKILL)
    assert partials(tmp_path) == [f".out.jsonl.{killed.pid}.partial"]
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert partials(tmp_path) == []
    assert sum(1 for _ in (tmp_path / "out.jsonl").open()) == 300_000


SHARED_TARGETS = [
    # (first sink, second sink, whether they clash); paths relative to the spec's folder.
    ({"type": "jsonl", "path": "o.jsonl"}, {"type": "jsonl", "path": "./o.jsonl"}, True),
    ({"type": "jsonl", "path": "o.jsonl"}, {"type": "csv", "path": "sub/../o.jsonl"}, True),
    ({"type": "csv", "path": "o.csv"}, {"type": "csv", "path": "linked/o.csv"}, True),  # `linked` is `.`
    (
        {"type": "sqlite", "path": "x.db", "table": "People"},
        {"type": "sqlite", "path": "x.db", "table": "people"},
        True,
    ),
    ({"type": "sqlite", "path": "x.db", "table": "t"}, {"type": "jsonl", "path": "x.db"}, True),
    ({"type": "sqlite", "path": "x.db", "table": "t"}, {"type": "sqlite", "path": "x.db", "table": "u"}, True),
    ({"type": "jsonl", "path": "o.jsonl"}, {"type": "jsonl", "path": "o2.jsonl"}, False),
]


@pytest.mark.parametrize(("first", "second", "clash"), SHARED_TARGETS)
def test_two_sinks_writing_one_file_are_a_spec_error(
    tmp_path: Path,
    write: Write,
    capsys: pytest.CaptureFixture[str],
    first: dict[str, Any],
    second: dict[str, Any],
    clash: bool,
) -> None:
    """Two sinks writing one file would each count records the other overwrote (two sqlite sinks, whatever their
    tables: the second one failed on the database's lock): refused when the spec loads."""
    write("in.csv", "id,name\n1,a\n2,b\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path)
    sinks = {"first": {**first, "inputs": ["src"]}, "second": {**second, "inputs": ["src"]}}
    spec = {
        "version": 1,
        "job": "shared",
        "sources": {"src": {"type": "csv", "path": "in.csv", "key": "id"}},
        "sinks": sinks,
    }
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    for command in ("validate", "run"):
        code = subprocess.run(
            [sys.executable, "-m", "connector_core", command, str(path), "--no-state"]
            if command == "run"
            else [sys.executable, "-m", "connector_core", command, str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        if not clash:
            assert code.returncode == 0, code.stderr
            continue
        assert code.returncode == 2, code.stderr
        assert code.stderr.count("\n") == 1 and "Traceback" not in code.stderr, code.stderr
        assert "$.sinks.second.path: sink 'first' writes " in code.stderr
        assert "give each sink a file of its own" in code.stderr
        assert not any(tmp_path.glob("o*.jsonl")) and not (tmp_path / "x.db").exists()


SINKS_ON_INPUTS = [
    # (source, sink writing its file, spelled another way); the input is in.csv or in.jsonl.
    ({"type": "csv", "path": "in.csv"}, {"type": "jsonl", "path": "in.csv"}),
    ({"type": "csv", "path": "in.csv"}, {"type": "csv", "path": "./sub/../in.csv"}),
    ({"type": "jsonl", "path": "in.jsonl"}, {"type": "jsonl", "path": "linked/in.jsonl"}),  # `linked` is `.`
    ({"type": "jsonl", "path": "in.jsonl"}, {"type": "sqlite", "path": "in.jsonl", "table": "t"}),
]


def spec_errors(folder: Path, spec: dict[str, Any]) -> list[str]:
    """What ``validate``, ``run`` and ``run --no-state`` print of ``spec``, each checked to be one line of a
    spec error (exit 2, no traceback)."""
    path = folder / "job.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    errors = []
    for command in (["validate", str(path)], ["run", str(path)], ["run", str(path), "--no-state"]):
        code = subprocess.run(
            [sys.executable, "-m", "connector_core", *command], capture_output=True, text=True, cwd=folder
        )
        assert code.returncode == 2, code.stderr
        assert code.stderr.count("\n") == 1 and "Traceback" not in code.stderr, code.stderr
        errors.append(code.stderr)
    return errors


@pytest.mark.parametrize(("source", "sink"), SINKS_ON_INPUTS)
def test_a_sink_writing_a_source_s_input_is_a_spec_error(
    tmp_path: Path, write: Write, source: dict[str, Any], sink: dict[str, Any]
) -> None:
    """A sink writing the file a source reads would replace the job's input with its output: refused when the
    spec loads (``validate`` and ``run``, exit 2), the input left as it was."""
    inputs = {"in.csv": "id,name\n1,a\n2,b\n", "in.jsonl": '{"id": 1}\n{"id": 2}\n'}
    for name, text in inputs.items():
        write(name, text)
    (tmp_path / "sub").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path)
    spec = {
        "version": 1,
        "job": "onto-input",
        "sources": {"src": {**source, "key": "id"}},
        "sinks": {"out": {**sink, "inputs": ["src"]}},
    }
    for error in spec_errors(tmp_path, spec):
        assert f"$.sinks.out.path: sink 'out' writes {tmp_path}/{source['path']}, the input of source 'src'" in error
        assert "give the sink a file of its own" in error
    assert {name: (tmp_path / name).read_text() for name in inputs} == inputs
    assert not (tmp_path / ".crmsync").exists()


@pytest.mark.parametrize("sink_type", ["jsonl", "csv", "sqlite"])
@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("notes.txt/out.data", "{tmp}/notes.txt is a file, not a folder"),
        ("notes.txt/deeper/still/out.data", "{tmp}/notes.txt is a file, not a folder"),
        ("sub", "{tmp}/sub is a folder"),
        ("sub/inner", "{tmp}/sub/inner is a folder"),
    ],
)
def test_a_sink_path_something_on_disk_is_in_the_way_of_is_a_spec_error(
    tmp_path: Path, write: Write, sink_type: str, target: str, problem: str
) -> None:
    """A file where the sink's folder would be, or a folder where its file would be: refused when the spec
    loads (exit 2, one line naming the option and what is in the way), before any run starts."""
    write("in.csv", "id,name\n1,a\n")
    write("notes.txt", "not a folder\n")
    (tmp_path / "sub" / "inner").mkdir(parents=True)
    options = {"table": "people"} if sink_type == "sqlite" else {}
    spec = {
        "version": 1,
        "job": "in-the-way",
        "sources": {"src": {"type": "csv", "path": "in.csv", "key": "id"}},
        "sinks": {"out": {"type": sink_type, "path": target, "inputs": ["src"], **options}},
    }
    for error in spec_errors(tmp_path, spec):
        assert f"$.sinks.out.path: sink 'out' writes {tmp_path}/{target}, but " in error
        assert problem.format(tmp=tmp_path) + "; point it at a file in a folder" in error
    assert not (tmp_path / ".crmsync").exists()


def test_a_sink_and_a_source_on_different_files_are_fine(tmp_path: Path, write: Write) -> None:
    write("in.csv", "id,name\n1,a\n")
    spec = {
        "version": 1,
        "job": "apart",
        "sources": {"src": {"type": "csv", "path": "in.csv", "key": "id"}},
        "sinks": {"out": {"type": "csv", "path": "in.csv.out", "inputs": ["src"]}},
    }
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    code = subprocess.run([sys.executable, "-m", "connector_core", "run", str(path), "--no-state"], cwd=tmp_path)
    assert code.returncode == 0
    assert (tmp_path / "in.csv.out").read_text().splitlines() == ["id,name", "1,a"]


@pytest.mark.parametrize(("delimiter", "metadata"), [(",", False), (";", True)])
def test_a_csv_file_later_runs_add_to_keeps_its_header(
    tmp_path: Path, write: Write, capsys: pytest.CaptureFixture[str], delimiter: str, metadata: bool
) -> None:
    """Without ``columns`` a later run's rows go under the header the file has, whatever fields its records
    hold: a new field is left out with a warning, a field gone is an empty cell."""
    from connector_core.cli import main

    sink = {"type": "csv", "path": "out.csv", "inputs": ["src"], "delimiter": delimiter, "metadata": metadata}
    spec = {"version": 1, "job": "header", "sources": {"src": {"type": "csv", "path": "in.csv", "key": "id"}}}
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({**spec, "sinks": {"out": sink}}), encoding="utf-8")
    state = ["--state", str(tmp_path / "state.db")]
    write("in.csv", "id,name,city\n1,a,Oslo\n2,b,Rome\n")
    assert main(["run", str(path), *state]) == 0
    write("in.csv", "id,email,name\n1,a@x,a\n2,b@x,b2\n3,c@x,c\n")  # a column more, one less
    assert main(["run", str(path), *state]) == 0
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter=delimiter))
    header = ["id", "name", "city"] + (["_key", "_source", "_position"] if metadata else [])
    assert rows[0] == header
    assert all(len(row) == len(header) for row in rows)
    assert [row[:3] for row in rows[1:]] == [
        ["1", "a", "Oslo"],
        ["2", "b", "Rome"],
        ["1", "a", ""],
        ["2", "b2", ""],
        ["3", "c", ""],
    ]
    err = capsys.readouterr().err
    assert "out: field(s) 'email' are not among the columns (taken from the header of" in err
    assert err.count("are left out") == 1


def test_fields_beyond_the_first_records_are_left_out_with_a_warning(
    pipeline: Pipeline, write: Write, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write("in.jsonl", '{"a": 1}\n{"a": 2, "b": 3}\n{"a": 4, "b": 5, "c": 6}\n')
    pipeline({"type": "jsonl", "path": "in.jsonl"}, out={"type": "csv", "path": "out.csv"})
    assert read_csv(tmp_path / "out.csv") == [["a"], ["1"], ["2"], ["4"]]
    assert "field(s) 'b' are not among the columns (taken from src:1, the first record)" in caplog.text
    assert "field(s) 'c' are not among" in caplog.text


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "UTF_16", "utf-32", "utf-8", "latin-1"])
def test_runs_adding_to_a_file_write_no_second_byte_order_mark(tmp_path: Path, write: Write, encoding: str) -> None:
    """A run's rows are appended to the file earlier runs wrote: a byte-order mark only begins the file."""
    from connector_core.cli import main

    sink = {"type": "csv", "path": "out.csv", "inputs": ["src"], "encoding": encoding}
    spec = {"version": 1, "job": "bom", "sources": {"src": {"type": "jsonl", "path": "in.jsonl", "key": "id"}}}
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({**spec, "sinks": {"out": sink}}), encoding="utf-8")
    for run, name in enumerate(["Zoë", "Ané", "Björn"]):
        write("in.jsonl", f'{{"id": {run}, "name": "{name}"}}\n')
        assert main(["-q", "run", str(path), "--state", str(tmp_path / "state.db")]) == 0
    # Decoding takes the mark that begins the file: one anywhere else would be a "\ufeff" in the text.
    assert (tmp_path / "out.csv").read_bytes().decode(encoding) == "id,name\r\n0,Zoë\r\n1,Ané\r\n2,Björn\r\n"


@pytest.mark.parametrize(
    ("sink", "state"),
    [
        ({"type": "sqlite", "path": "state.db", "table": "t"}, "state.db"),
        ({"type": "jsonl", "path": "state.db-wal"}, "./state.db"),
        ({"type": "sqlite", "path": ".crmsync/state.db", "table": "t"}, None),  # the default state
    ],
)
def test_a_sink_writing_the_state_database_is_refused(
    tmp_path: Path,
    write: Write,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sink: dict[str, Any],
    state: str | None,
) -> None:
    """It would wait 30 s on the run's own lock, then fail the run without accounting for its records."""
    from connector_core.cli import main

    write("in.csv", "id,name\n1,a\n")
    spec = {"version": 1, "job": "clash", "sources": {"src": {"type": "csv", "path": "in.csv", "key": "id"}}}
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({**spec, "sinks": {"out": {**sink, "inputs": ["src"]}}}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path), *(["--state", state] if state else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: $.sinks.out.path: sink 'out' writes {tmp_path}/" in err
    assert "the job's state database; give the sink a file of its own" in err
    assert not any(tmp_path.glob("state.db*")) and not (tmp_path / ".crmsync").exists()


@attrs.frozen
class ObstructOptions:
    path: str = ""


class Obstruct(Mapper[ObstructOptions]):
    """Passes records on; on its first batch, moves the file at ``path`` to ``path.moved`` and puts a folder (not
    empty) in its place: someone else's doing, after the sinks opened."""

    Options = ObstructOptions

    def process(self, batch: list[Record], out: Emitter) -> None:
        folder = Path(self.options.path)
        if self.options.path and not folder.is_dir():
            folder.replace(f"{folder}.moved")
            folder.mkdir()
            (folder / "theirs.txt").write_text("not crmsync's\n")
        out.emit_many(batch)


class ObstructPlugin:
    @staticmethod
    @hookimpl
    def register_mappers(registry: Any) -> None:
        registry.add("t.obstruct", Obstruct)


@pytest.mark.parametrize("state", [False, True])
@pytest.mark.parametrize("sink_type", ["csv", "jsonl"])
def test_a_file_sink_that_could_not_rename_fails_before_the_table_beside_it_commits(
    tmp_path: Path, sink_type: str, state: bool
) -> None:
    """A folder put where a file sink's output goes, during the run: the sink refuses it when it prepares, so
    the SQLite table beside it (which commits first) rolls back, and every output stays as the run before left
    it."""
    target = tmp_path / "out" / f"all.{sink_type}"
    rows = [{"id": n, "name": f"n{n}"} for n in range(40)]

    def run(count: int, obstruct: str = "") -> Any:
        write_jsonl(tmp_path / "in.jsonl", rows[:count])
        spec = {
            "version": 1,
            "job": "obstructed",
            "sources": {"src": {"type": "jsonl", "path": "in.jsonl", "key": "id"}},
            "mappers": {"gate": {"type": "t.obstruct", "inputs": ["src"], "path": obstruct}},
            "sinks": {
                "db": {"type": "sqlite", "inputs": ["gate"], "path": "db.sqlite", "table": "people"},
                "out": {"type": sink_type, "inputs": ["gate"], "path": str(target)},
            },
            "state": {"path": "state.db"} if state else False,
        }
        (tmp_path / "job.yaml").write_text(json.dumps(spec), encoding="utf-8")
        return api.run(tmp_path / "job.yaml", environ={}, plugins=[("obstruct", ObstructPlugin)])

    assert run(20).status == "success"
    table_before, file_before = table_rows(tmp_path / "db.sqlite"), target.read_bytes()
    report = run(40, obstruct=str(target))
    assert report.status == "failed"
    assert report.failure.startswith("out failed to close: IsADirectoryError"), report.failure
    assert "a folder is where the file would go" in report.failure
    assert table_rows(tmp_path / "db.sqlite") == table_before
    assert report.extra["sink db"] == {"upserted": 0, "inserted": 0, "updated": 0}
    assert (target / "theirs.txt").read_text() == "not crmsync's\n"
    # Once the folder is gone, the next run delivers the rest into both.
    (target / "theirs.txt").unlink()
    target.rmdir()
    Path(f"{target}.moved").replace(target)
    assert target.read_bytes() == file_before
    last = run(40)
    assert last.status == "success", last.failure
    assert len(table_rows(tmp_path / "db.sqlite")) == 40

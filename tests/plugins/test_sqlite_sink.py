"""The ``sqlite`` sink: upserts by record key, schema growth, one transaction per run."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from connector_core import api
from connector_core.components import Emitter
from connector_core.report import RunReport
from connector_core.testing import components as testkit
from connector_core.testing import write_jsonl
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


def test_a_value_sqlite_cannot_store_rejects_its_record_alone(tmp_path: Path) -> None:
    """One record SQLite refuses (a lone surrogate cannot be encoded; a field name holding NUL, or more fields
    than a table may have columns, cannot be a column) is rejected with the reason: the rest of its batch is
    written once, and none of the refused records' rows is left in the table."""
    sink = SqliteSink("db", SqliteSinkOptions(path=tmp_path / "crm.sqlite", table="people"), None)
    sink.open()
    out = Emitter()
    wide = {f"f{n}": n for n in range(2100)}
    batch = [
        {"id": 1, "name": "Ada"},
        {"id": 2, "name": "half \ud800 a pair"},
        {"id": 3, "name": "Grace"},
        {"id": 4, "na\x00me": "Nul"},
        {"id": 5, **wide},
        {"id": 6, "name": "Hedy"},
    ]
    sink.write(make_records(*batch), out)
    sink.close(True)
    reasons = {failure.record.position: failure.reason for failure in out.failed}
    assert sorted(reasons) == [2, 4, 5]
    assert "UnicodeEncodeError" in reasons[2] and "NUL" in reasons[4] and "columns" in reasons[5]
    assert [row["id"] for row in rows(tmp_path / "crm.sqlite", "SELECT id FROM people ORDER BY id")] == [1, 3, 6]
    assert sink.written == 3


def test_integers_beyond_64_bits_are_stored_exactly_as_text(tmp_path: Path) -> None:
    """SQLite's integers have 64 bits: a larger one (an ID, a phone number as a number) is stored as its digits
    instead of failing its batch, and with state the run succeeds the first time and every time after."""
    big = [10**20, -(2**64), 2**63, -(2**63) - 1]
    lines = [{"id": n, "n": big[n // 250] if n % 250 == 7 else n} for n in range(1000)]
    for _run in range(3):
        report = staged_job(tmp_path, lines)
        assert report.status == "success", report.failure
        assert report.errors["count"] == 0
    stored = {row["id"]: row["n"] for row in rows(tmp_path / "crm.sqlite")}
    assert len(stored) == 1000
    assert [stored[n] for n in (7, 257, 507, 757)] == [str(value) for value in big]
    assert stored[8] == 8 and stored[999] == 999
    with contextlib.closing(sqlite3.connect(tmp_path / "crm.sqlite")) as db:
        types = dict(db.execute("SELECT id, typeof(n) FROM people WHERE id IN (6, 7)").fetchall())
    assert types == {6: "integer", 7: "text"}


def staged_job(folder: Path, rows: list[dict[str, Any]], crash_after: int = 10**9) -> RunReport:
    """A stateful job writing ``rows`` into ``people`` in batches of 5; aborted after ``crash_after`` rows."""
    write_jsonl(folder / "in.jsonl", rows)
    spec = {
        "version": 1,
        "job": "staged",
        "sources": {"rows": {"type": "testkit.rows", "path": "in.jsonl", "key": "id"}},
        "mappers": {"gate": {"type": "testkit.crash", "inputs": ["rows"], "after": crash_after}},
        "sinks": {
            "db": {"type": "sqlite", "inputs": ["gate"], "path": "crm.sqlite", "table": "people", "batch_size": 5}
        },
    }
    (folder / "job.yaml").write_text(json.dumps(spec), encoding="utf-8")
    return api.run(folder / "job.yaml", environ={}, plugins=[("testkit", testkit)], state=folder / "state.db")


def table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(people)")]
    return columns, rows(path)


def has_stage(path: Path) -> bool:
    """Whether the sink keeps batches waiting for a successful run beside ``path`` (and only there)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert {name for (name,) in db.execute("SELECT name FROM sqlite_master")} <= {
            "people",
            "sqlite_autoindex_people_1",
        }
    return path.with_name(f".{path.name}.people.stage").exists()


def test_with_state_a_failed_run_leaves_the_table_as_it_was_and_the_next_run_applies_it(tmp_path: Path) -> None:
    first = [{"id": n, "name": f"n{n}", "email": f"{n}@x.com"} for n in range(10)]
    assert staged_job(tmp_path, first).status == "success"
    before = table(tmp_path / "crm.sqlite"), (tmp_path / "crm.sqlite").read_bytes()
    # The second input changes a name without its email (the stored email must stay), adds a column, and
    # holds one key twice (the later version wins, fields it lacks keep the earlier one's values).
    second = [{"id": 0, "name": "changed"}, *first[1:], *({"id": n, "phone": f"+1-{n}"} for n in range(10, 300))]
    second += [{"id": 1000, "name": "early", "title": "CTO"}, {"id": 1000, "name": "late"}]
    failed = staged_job(tmp_path, second, crash_after=250)
    assert failed.status == "failed" and failed.delivered["db"] >= 10  # batches were committed to the stage
    assert (table(tmp_path / "crm.sqlite"), (tmp_path / "crm.sqlite").read_bytes()) == before
    assert has_stage(tmp_path / "crm.sqlite")
    assert failed.extra["sink db"] == {"upserted": 0, "inserted": 0, "updated": 0}  # the table got nothing

    resumed = staged_job(tmp_path, second)
    assert resumed.status == "success", resumed.failure
    # The report counts the failed run's staged batches the resumed run applied too: all of the second input but
    # the nine records the first run delivered as they are. Updated: the changed id 0, and id 1000's second version.
    assert resumed.extra["sink db"] == {"upserted": len(second) - 9, "inserted": 291, "updated": 2}
    assert resumed.delivered["db"] == len(second) - 9  # a failed run credits nothing: its stage was dropped
    columns, stored = table(tmp_path / "crm.sqlite")
    assert columns == ["_key", "id", "name", "email", "phone", "title"] and not has_stage(tmp_path / "crm.sqlite")
    by_id = {row["id"]: row for row in stored}
    assert len(stored) == 301 and sorted(by_id) == [*range(300), 1000]
    assert by_id[0] == {"_key": "0", "id": 0, "name": "changed", "email": "0@x.com", "phone": None, "title": None}
    assert by_id[17]["phone"] == "+1-17" and by_id[17]["name"] is None
    assert (by_id[1000]["name"], by_id[1000]["title"]) == ("late", "CTO")


KILLED_RUN = """
import sys
from pathlib import Path
from connector_core import api, commit_groups
from connector_core.testing import components as testkit
commit_groups.GROUP_RECORDS = 20  # commit (and checkpoint the stage) often, so the kill finds batches credited
api.run(Path(sys.argv[1]), environ={}, plugins=[("testkit", testkit)], state=Path(sys.argv[2]))
"""


def test_the_report_of_a_run_resuming_a_killed_one_counts_the_staged_rows_it_applied(tmp_path: Path) -> None:
    """A killed run's staged batches were credited as delivered: the run after it does not deliver them again
    but applies them, and the report counts them among the upserted rows (none of which were updates)."""
    rows_in = [{"id": n, "name": f"n{n}"} for n in range(300)]
    staged_job(tmp_path, rows_in)  # writes the spec and its input; then the same job, killed half-way
    spec = json.loads((tmp_path / "job.yaml").read_text())
    (tmp_path / "state.db").unlink()
    (tmp_path / "crm.sqlite").unlink()
    spec["mappers"]["gate"].update(after=150, hard=True)
    (tmp_path / "job.yaml").write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-c", KILLED_RUN, str(tmp_path / "job.yaml"), str(tmp_path / "state.db")]
    assert subprocess.run(command, check=False).returncode == testkit.KILLED
    assert has_stage(tmp_path / "crm.sqlite")

    resumed = staged_job(tmp_path, rows_in)
    assert resumed.status == "success", resumed.failure
    credited = resumed.extra["state"]["already_delivered"]["db"]
    assert 0 < credited < 300 and resumed.delivered["db"] == 300 - credited
    assert resumed.extra["sink db"] == {"upserted": 300, "inserted": 300, "updated": 0}
    assert sorted(row["id"] for row in rows(tmp_path / "crm.sqlite")) == list(range(300))


def test_a_stage_left_by_a_forgotten_state_is_dropped(tmp_path: Path) -> None:
    rows_in = [{"id": n, "name": f"n{n}"} for n in range(300)]
    assert staged_job(tmp_path, rows_in, crash_after=250).status == "failed"
    assert has_stage(tmp_path / "crm.sqlite")
    (tmp_path / "state.db").unlink()  # the state starts over: what the stage holds was never delivered
    assert staged_job(tmp_path, rows_in[:5]).status == "success"
    assert sorted(row["id"] for row in rows(tmp_path / "crm.sqlite")) == [0, 1, 2, 3, 4]
    assert not has_stage(tmp_path / "crm.sqlite")

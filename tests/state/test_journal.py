"""File outputs of stateful jobs: part files, crash recovery by committed length, merges applied once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.testing import write_spec
from crmsync_plugins.files.atomic import JournaledFile, merge


def test_recovery_keeps_exactly_the_committed_records(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text('{"n": 0}\n')
    journal = JournaledFile(target, "utf-8", run_id=7)
    handle = journal.open()
    handle.write('{"n": 1}\n{"n": 2}\n')
    token = journal.checkpoint()  # committed with the batch
    handle.write('{"n": 3}\n{"n": ')  # written after the last commit, then the process dies
    handle.flush()
    assert target.read_text() == '{"n": 0}\n'  # the target never saw the run
    merged = merge(token)
    assert merged["merged"] is True
    assert target.read_text() == '{"n": 0}\n{"n": 1}\n{"n": 2}\n'
    assert not journal.part.exists()
    merge(token)  # a merge that already happened is recognised, not applied twice
    assert target.read_text().count('"n": 1') == 1


def test_an_outside_edit_is_detected(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    journal = JournaledFile(target, "utf-8", run_id=1)
    journal.open().write("a\n")
    token = journal.checkpoint()
    target.write_text("somebody else's content\n")
    with pytest.raises(RuntimeError, match="changed outside crmsync"):
        merge(token)


def test_stateful_csv_and_sqlite_sinks_across_runs(tmp_path: Path) -> None:
    rows = [{"id": i, "name": f"n{i}"} for i in range(5)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = write_spec(
        tmp_path,
        """
        version: 1
        job: files
        state: {}
        sources: {rows: {type: jsonl, path: in.jsonl, key: id}}
        sinks:
          sheet: {type: csv, inputs: [rows], path: out/rows.csv, columns: [id, name]}
          table: {type: sqlite, inputs: [rows], path: out/rows.db, table: people}
        """,
    )
    assert main(["-q", "run", str(spec)]) == 0
    rows.append({"id": 5, "name": "n5"})
    rows[0]["name"] = "changed"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["-q", "run", str(spec)]) == 0
    lines = (tmp_path / "out" / "rows.csv").read_text().splitlines()
    assert lines[0] == "id,name" and lines.count("id,name") == 1
    assert lines[1:] == ["0,n0", "1,n1", "2,n2", "3,n3", "4,n4", "0,changed", "5,n5"]  # an append log
    assert (tmp_path / ".crmsync" / "state.db").exists()  # the default place, beside the spec
    import sqlite3

    with sqlite3.connect(tmp_path / "out" / "rows.db") as db:
        assert db.execute("SELECT COUNT(*), MAX(name) FROM people").fetchone() == (6, "n5")
        assert db.execute("SELECT name FROM people WHERE _key = '0'").fetchone() == ("changed",)


def test_a_fresh_part_holding_exactly_its_committed_bytes_becomes_the_target_by_a_rename(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("an earlier run's file, replaced\n")
    journal = JournaledFile(target, "utf-8", run_id=3, fresh=True)
    journal.open().write('{"n": 1}\n')
    inode = journal.part.stat().st_ino
    token = journal.commit()
    assert target.read_text() == '{"n": 1}\n' and target.stat().st_ino == inode  # renamed, not copied
    assert not journal.part.exists()
    assert merge(token)["merged"] is True and target.read_text() == '{"n": 1}\n'  # a second merge changes nothing


@pytest.mark.parametrize("name", ["out[1].jsonl", "out*.jsonl", "out?.jsonl"])
def test_a_fresh_journal_deletes_its_own_stale_parts_whatever_its_name(tmp_path: Path, name: str) -> None:
    """A fresh journal deletes the parts an earlier state left beside its target: found by the target's name
    taken literally (``[``, ``*`` and ``?`` are not patterns), so another target's parts are left alone."""
    target = tmp_path / name
    stale = tmp_path / f".{name}.run1.part"
    others = [tmp_path / ".out1.jsonl.run1.part", tmp_path / ".outX.jsonl.run2.part"]
    for part in (stale, *others):
        part.write_text("left by an earlier state\n")
    journal = JournaledFile(target, "utf-8", run_id=5, fresh=True)
    journal.open().write('{"n": 1}\n')
    journal.commit()
    assert not stale.exists()
    assert all(part.exists() for part in others)
    assert target.read_text() == '{"n": 1}\n'


OUTSIDE_EDITS = """
version: 1
job: edits
sources: {rows: {type: jsonl, path: in.jsonl, key: id}}
sinks:
  out: {type: jsonl, inputs: [rows], path: out/rows.jsonl}
  sheet: {type: csv, inputs: [rows], path: out/rows.csv, columns: [id]}
"""


@pytest.mark.parametrize("sink", ["rows.jsonl", "rows.csv"])
@pytest.mark.parametrize("edit", ["append", "truncate"])
def test_an_output_edited_between_runs_stops_the_next_run_and_stays_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: str, edit: str
) -> None:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(4)))
    spec = write_spec(tmp_path, OUTSIDE_EDITS)
    assert main(["-q", "run", str(spec)]) == 0
    target = tmp_path / "out" / sink
    edited = target.read_bytes() + b"someone else's line\n" if edit == "append" else target.read_bytes()[:5]
    target.write_bytes(edited)
    with (tmp_path / "in.jsonl").open("a") as more:
        more.write(json.dumps({"id": 9}) + "\n")
    capsys.readouterr()
    assert main(["-q", "run", str(spec)]) == 1
    message = capsys.readouterr().err
    assert f"{target} changed outside crmsync since the last run" in message and "state reset" in message
    assert target.read_bytes() == edited


def test_a_missing_output_is_started_over_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(4)))
    spec = write_spec(tmp_path, OUTSIDE_EDITS)
    assert main(["-q", "run", str(spec)]) == 0
    (tmp_path / "out" / "rows.jsonl").unlink()  # a CI runner's fresh folder, or deleted
    with (tmp_path / "in.jsonl").open("a") as more:
        more.write(json.dumps({"id": 9}) + "\n")
    capsys.readouterr()
    assert main(["-q", "run", str(spec)]) == 0
    assert "rows.jsonl is missing" in capsys.readouterr().err
    assert (tmp_path / "out" / "rows.jsonl").read_text() == '{"id": 9}\n'

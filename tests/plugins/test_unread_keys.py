"""A source without ``key`` hashes each record's content to key it, unless nothing in the job reads keys.

The hash is a fifth of a stateless file job's CPU. Keys are read by the state, by lifecycle hooks handed records,
and by every mapper or sink that does not say otherwise (:meth:`Component.reads_keys`); the built-in ``fields``,
``filter`` and ``dedupe`` (with ``by``) mappers and the CSV and JSONL sinks (without ``metadata``) do not read them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector_core import keys
from connector_core.cli import main
from connector_core.records import content_key
from connector_core.testing import read_jsonl, write_spec

ROWS = [
    {"email": "a@x.com", "name": "Ada"},
    {"email": "", "name": "Bob"},  # rejected by `required`
    {"email": "c@x.com", "name": 'Cy, "the" 3rd'},
]
CSV = "email,name\n" + "".join(f'{row["email"]},"{row["name"].replace(chr(34), chr(34) * 2)}"\n' for row in ROWS)
FIELDS = {"type": "fields", "inputs": ["src"], "fields": {"email": {"required": True}, "name": {}}}

#: A mapper of another package that says nothing about keys: it may read them.
PASS_THROUGH = """\
from connector_core import hookimpl
from connector_core.components import Mapper


class PassThrough(Mapper):
    \"\"\"Hands records on as they came.\"\"\"

    def process(self, batch, out):
        out.emit_many(batch)


@hookimpl
def register_mappers(registry):
    registry.add("local.pass", PassThrough)
"""

#: A lifecycle hook handed records: it may read their keys.
ERROR_HOOK = """\
import json
from pathlib import Path

from connector_core import hookimpl


@hookimpl
def on_record_error(context, component, record, reason):
    with Path(context.spec.base_dir, "hooked.jsonl").open("a") as file:
        file.write(json.dumps(record.key) + "\\n")
"""


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the records sources key by content (their batches go through ``keys.content_keys``)."""
    counted: list[int] = []
    real: Callable[[list[dict[str, Any]]], list[str]] = keys.content_keys

    def counting(datas: list[dict[str, Any]]) -> list[str]:
        counted.append(len(datas))
        return real(datas)

    monkeypatch.setattr(keys, "content_keys", counting)
    return counted


def run_job(
    folder: Path, *args: str, mappers: Any = None, sinks: Any = None, plugins: Any = None, csv: str | None = CSV
) -> Path:
    if csv is not None:
        (folder / "in.csv").write_text(csv, encoding="utf-8")
    spec: dict[str, Any] = {
        "version": 1,
        "job": "unread-keys",
        "sources": {"src": {"type": "csv", "path": "in.csv"}},
        "mappers": mappers if mappers is not None else {"people": FIELDS},
        "sinks": {
            **(sinks or {"out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["people"]}}),
            "errs": {"type": "jsonl", "path": "errors.jsonl", "inputs": ["errors"]},
        },
        **({"plugins": plugins} if plugins else {}),
    }
    path = write_spec(folder, json.dumps(spec))
    assert main(["run", str(path), "-q", *args]) == 0
    return path


def test_a_job_that_reads_no_keys_does_not_hash_records(tmp_path: Path, hashed: list[int]) -> None:
    run_job(tmp_path, "--no-state")
    assert hashed == []
    # What the job writes is what it wrote when it hashed every record.
    assert read_jsonl(tmp_path / "out.jsonl") == [ROWS[0], ROWS[2]]
    [error] = read_jsonl(tmp_path / "errors.jsonl")
    assert error["_error"]["position"] == 3 and error["name"] == "Bob"


def test_the_filter_mapper_and_the_csv_sink_read_no_keys(tmp_path: Path, hashed: list[int]) -> None:
    mappers = {"people": {"type": "filter", "inputs": ["src"], "where": [{"field": "email", "empty": False}]}}
    sinks = {"out": {"type": "csv", "path": "out.csv", "inputs": ["people"]}}
    run_job(tmp_path, "--no-state", mappers=mappers, sinks=sinks)
    assert hashed == []
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert lines[1:] == ["a@x.com,Ada", 'c@x.com,"Cy, ""the"" 3rd"']


def content_keys_of(*rows: dict[str, str]) -> list[str]:
    return [content_key(row) for row in rows]


def test_a_sink_writing_the_key_column_gets_content_keys(tmp_path: Path, hashed: list[int]) -> None:
    sinks = {"out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["people"], "metadata": True}}
    run_job(tmp_path, "--no-state", sinks=sinks)
    assert hashed
    assert [row["_key"] for row in read_jsonl(tmp_path / "out.jsonl")] == content_keys_of(ROWS[0], ROWS[2])


def test_a_sink_keyed_by_record_gets_content_keys(tmp_path: Path, hashed: list[int]) -> None:
    sinks = {"out": {"type": "sqlite", "path": "out.db", "table": "people", "inputs": ["people"]}}
    run_job(tmp_path, "--no-state", sinks=sinks)
    assert hashed
    with sqlite3.connect(tmp_path / "out.db") as db:
        stored = sorted(row[0] for row in db.execute("SELECT _key FROM people"))
    assert stored == sorted(content_keys_of(ROWS[0], ROWS[2]))


def test_the_state_gets_content_keys_and_skips_unchanged_records_next_time(
    tmp_path: Path, hashed: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = run_job(tmp_path)
    assert hashed
    capsys.readouterr()
    assert main(["run", str(spec), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"]["skipped_unchanged"] == 2, report["state"]


@pytest.mark.parametrize("by", [["email"], []])
def test_dedupe_reads_keys_only_without_by(tmp_path: Path, hashed: list[int], by: list[str]) -> None:
    mappers = {"people": FIELDS, "unique": {"type": "dedupe", "inputs": ["people"], "by": by}}
    sinks = {"out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["unique"]}}
    (tmp_path / "in.csv").write_text(CSV + "a@x.com,Ada\n" + "A@x.com,Al\n", encoding="utf-8")
    run_job(tmp_path, "--no-state", mappers=mappers, sinks=sinks, csv=None)
    assert bool(hashed) == (not by)
    # By email the third Ada (and Al, the same email in another case) are duplicates; by content key only Ada.
    kept = [row["name"] for row in read_jsonl(tmp_path / "out.jsonl")]
    assert kept == (["Ada", 'Cy, "the" 3rd'] if by else ["Ada", 'Cy, "the" 3rd', "Al"])


def test_a_third_party_mapper_may_read_keys(tmp_path: Path, hashed: list[int]) -> None:
    (tmp_path / "pass_through.py").write_text(PASS_THROUGH, encoding="utf-8")
    mappers = {"people": FIELDS, "passed": {"type": "local.pass", "inputs": ["people"]}}
    sinks = {"out": {"type": "jsonl", "path": "out.jsonl", "inputs": ["passed"]}}
    run_job(tmp_path, "--no-state", mappers=mappers, sinks=sinks, plugins=["pass_through.py"])
    assert hashed


def test_a_hook_handed_records_gets_their_content_keys(tmp_path: Path, hashed: list[int]) -> None:
    (tmp_path / "error_hook.py").write_text(ERROR_HOOK, encoding="utf-8")
    run_job(tmp_path, "--no-state", plugins=["error_hook.py"])
    assert hashed
    hooked = [json.loads(line) for line in (tmp_path / "hooked.jsonl").read_text().splitlines()]
    assert hooked == content_keys_of(ROWS[1])

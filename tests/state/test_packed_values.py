"""The cache and remembered objects are packed: values written together are compressed together, every field
kept; a pack goes with its last entry; a schema-2 state is moved into packs; ``state show`` reports the size."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.state.open import open_store
from connector_core.state.packs import pack, unpack
from connector_core.state.sql import SqlStateStore
from connector_core.state.sqlite import SqliteStateStore
from connector_core.testing import read_jsonl

from ..apollo.conftest import env, people, write_leads, write_spec


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStateStore]:
    target = str(tmp_path / "state.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_store(target)
    assert isinstance(opened, SqlStateStore)
    opened.reset("job", {"delivered", "errors", "cache"})  # a shared PostgreSQL may hold an earlier test's values
    yield opened
    opened.close()


def packs(store: SqlStateStore) -> int:
    return int(store._exec("SELECT COUNT(*) FROM value_packs").fetchone()[0])


def test_pack_round_trips_any_json_and_refuses_an_unknown_encoding() -> None:
    values = [{"person": {"id": "1", "name": "Zoë", "n": 1.5, "tags": [], "x": None}}, {"person": None}, 3, "text"]
    assert unpack(pack(values)) == values
    assert unpack(memoryview(pack(values))) == values
    with pytest.raises(ValueError, match="unknown pack encoding"):
        unpack(b"\x09whatever")


def test_one_pack_per_write_and_a_pack_goes_with_its_last_entry(store: SqlStateStore) -> None:
    first = {f"email:p{i}@x.io": {"person": {"id": str(i), "title": "CEO"}} for i in range(10)}
    store.cache_put("ns", first)
    assert packs(store) == 1
    store.cache_put("ns", {f"email:p{i}@x.io": {"person": {"id": f"new{i}"}} for i in range(4)})
    assert packs(store) == 2  # the first pack still holds six live entries
    store.cache_put("ns", {f"email:p{i}@x.io": {"person": None} for i in range(4, 10)})
    assert packs(store) == 2  # its last entries replaced: the first pack is gone
    got = store.cache_get("ns", list(first), 60)
    assert got["email:p0@x.io"] == {"person": {"id": "new0"}} and got["email:p9@x.io"] == {"person": None}
    assert store.cache_get("other ns", list(first), 60) == {}

    store.put_objects("job", "contacts", {f"k{i}": {"output": "created", "contact": {"id": i}} for i in range(100)})
    store.put_objects("job", "contacts", {"k1": {"output": "existing", "contact": {"id": 1}}})
    assert packs(store) == 4
    assert store.objects("job", "contacts", ["k0", "k1", "nope"]) == {
        "k0": {"output": "created", "contact": {"id": 0}},
        "k1": {"output": "existing", "contact": {"id": 1}},
    }
    assert len(store.all_objects("job", "contacts")) == 100
    store.reset("job", {"delivered"})
    assert packs(store) == 2 and store.all_objects("job", "contacts") == {}
    store.reset("job", {"cache"})
    assert packs(store) == 0 and store.cache_get("ns", list(first), 60) == {}


def test_export_and_import_keep_packed_values_as_plain_rows(store: SqlStateStore) -> None:
    store.cache_put("ns", {"a": {"person": {"id": "1"}}, "b": {"person": None}})
    store.put_objects("job", "contacts", {"k": {"output": "created", "contact": {"id": "c1"}}})
    exported = store.export("job")
    assert {(row["identity"], row["value"]) for row in exported["cache"]} >= {
        ("a", '{"person": {"id": "1"}}'),
        ("b", '{"person": null}'),
    }
    assert exported["objects"] == [
        {"job": "job", "component": "contacts", "key": "k", "outcome": '{"output": "created", "contact": {"id": "c1"}}'}
    ]
    store.reset("job", {"delivered", "cache"})
    store.import_("job", json.loads(json.dumps(exported)))
    assert store.cache_get("ns", ["a", "b"], 60) == {"a": {"person": {"id": "1"}}, "b": {"person": None}}
    assert store.objects("job", "contacts", ["k"]) == {"k": {"output": "created", "contact": {"id": "c1"}}}


def test_a_schema_2_state_is_moved_into_packs(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    store = SqliteStateStore(path)
    store.close()
    db = sqlite3.connect(path)
    db.executescript(
        """
        DROP TABLE value_packs; DROP TABLE object_entries; DROP TABLE cache_entries; DROP TABLE cache_namespaces;
        CREATE TABLE objects (job TEXT NOT NULL, component TEXT NOT NULL, key TEXT NOT NULL, outcome TEXT NOT NULL,
            PRIMARY KEY (job, component, key));
        CREATE TABLE cache (namespace TEXT NOT NULL, identity TEXT NOT NULL, value TEXT NOT NULL,
            stored_at REAL NOT NULL, PRIMARY KEY (namespace, identity));
        UPDATE crmsync_meta SET value = '2' WHERE name = 'schema_version';
        """
    )
    now = __import__("time").time()
    db.executemany(
        "INSERT INTO cache VALUES (?, ?, ?, ?)",
        [("ns", f"email:p{i}", json.dumps({"person": {"id": str(i)}}), now) for i in range(150)],
    )
    db.execute("INSERT INTO objects VALUES ('job', 'contacts', 'k', ?)", (json.dumps({"output": "created"}),))
    db.commit()
    db.close()
    store = SqliteStateStore(path)
    try:
        assert store.cache_get("ns", ["email:p0", "email:p149"], 60) == {
            "email:p0": {"person": {"id": "0"}},
            "email:p149": {"person": {"id": "149"}},
        }
        assert store.objects("job", "contacts", ["k"]) == {"k": {"output": "created"}}
        assert not store._has_table("cache") and not store._has_table("objects")
        assert packs(store) == 3  # 150 cache values in packs of 100, one object
    finally:
        store.close()


ENRICH_JOB = """
version: 1
job: packed
public_env: [APOLLO_BASE_URL]
state: {path: state.db}
connections:
  apollo: {type: apollo, base_url: "${APOLLO_BASE_URL}", api_key: "${APOLLO_API_KEY}"}
sources:
  leads: {type: jsonl, path: leads.jsonl, key: email}
mappers:
  enrich: {type: apollo.bulk_match, connection: apollo, inputs: [leads], raw_field: apollo_person}
sinks:
  matched: {type: jsonl, inputs: [enrich.matched], path: out/matched.jsonl}
  missing: {type: jsonl, inputs: [enrich.missing], path: out/missing.jsonl}
"""


def test_the_cache_answers_a_rerun_with_the_whole_person_in_a_fraction_of_its_size(
    tmp_path: Path, sandbox, monkeypatch, capsys
) -> None:
    for name, value in env(sandbox).items():
        monkeypatch.setenv(name, value)
    rows = people(60)
    write_leads(tmp_path, rows)
    spec = write_spec(tmp_path, ENRICH_JOB)
    assert main(["-q", "run", str(spec)]) == 0
    first = read_jsonl(tmp_path / "out" / "matched.jsonl")
    calls = dict(sandbox.sandbox.state()["calls"])
    assert main(["-q", "run", str(spec), "--full-refresh"]) == 0
    assert sandbox.sandbox.state()["calls"] == calls  # every person from the cache
    second = read_jsonl(tmp_path / "out" / "matched.jsonl")
    assert len(first) == 60 and second == first  # the same records, the whole Apollo person included

    raw = sum(len(json.dumps(row["apollo_person"])) for row in first)
    db = sqlite3.connect(tmp_path / "state.db")
    packed = db.execute("SELECT SUM(LENGTH(data)) FROM value_packs").fetchone()[0]
    db.close()
    assert packed < raw / 4, (packed, raw)

    capsys.readouterr()
    assert main(["state", "show", str(spec), "--json"]) == 0
    size = json.loads(capsys.readouterr().out)["size"]
    on_disk = (tmp_path / "state.db").stat().st_size
    wal = tmp_path / "state.db-wal"
    assert size["bytes"] == on_disk + (wal.stat().st_size if wal.exists() else 0)
    assert size["bytes_per_cached_person"] == round(size["bytes"] / 60)
    assert size["bytes_per_completed_record"] == round(size["bytes"] / 60)
    assert main(["state", "show", str(spec)]) == 0
    text = capsys.readouterr().out
    assert f"size: {size['bytes']:,} bytes (the database file and its -wal)" in text
    assert "bytes per cached person" in text


def test_the_summary_reports_the_state_size_per_record_and_per_person(store: SqlStateStore) -> None:
    empty = store.summary("job")["size"]
    assert empty["bytes"] > 0 and empty["bytes_per_completed_record"] is None
    store.cache_put("ns", {f"p{i}": {"person": {"id": i}} for i in range(10)})
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [("k", "f")])
    store.complete_run("job", run_id)
    assert store.summary("job")["size"]["bytes_per_completed_record"] == round(store.summary("job")["size"]["bytes"])
    size = store.summary("job")["size"]
    cached = store.summary("job")["cache_entries"]
    assert size["bytes_per_cached_person"] == round(size["bytes"] / cached)
    assert ("-wal" in size["measured"]) == isinstance(store, SqliteStateStore)
    assert isinstance(store, SqliteStateStore) or "pg_total_relation_size" in size["measured"]

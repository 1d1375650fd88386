"""The ledger's fast paths keep the promises: a first run with state writes what a stateless run writes, looks
nothing up and commits in groups; a group whose checkpoint fails is set aside whole; a schema-2 state is
migrated and its fingerprints still recognised; fingerprints are stable, order-free and unambiguous."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connector_core import commit_groups, ledger
from connector_core import fingerprints as fingerprints_module
from connector_core.cli import main
from connector_core.fingerprints import fingerprint, fingerprints, matches
from connector_core.records import content_key
from connector_core.state import sql as sql_module
from connector_core.state.sql import SCHEMA_VERSION, SqlStateStore, journal_text
from connector_core.state.sqlite import SqliteStateStore
from connector_core.testing import write_spec

JOB = """
version: 1
job: cost
{state}
settings: {{source_batch_size: 25}}
sources:
  leads: {{type: csv, path: leads.csv, key: Email}}
mappers:
  people:
    type: fields
    inputs: [leads]
    batch_size: 10
    fields:
      name: {{from: Name, strip: true}}
      email: {{from: Email, lower: true, required: true}}
      domain: {{from: Website, transform: url_domain}}
sinks:
  out: {{type: jsonl, inputs: [people], path: out/people.jsonl, batch_size: 7}}
  rejected: {{type: jsonl, inputs: [errors], path: out/errors.jsonl}}
"""


def leads(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    with (folder / "leads.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Name", "Email", "Website"])
        writer.writerows(rows)


def people(count: int, start: int = 0) -> list[tuple[str, str, str]]:
    return [(f" Person {n} ", f"P{n}@Example.com", f"https://www.example{n % 7}.com/x") for n in range(start, count)]


def completed_versions(path: Path) -> dict[str, set[str]]:
    """Each completed key's stored fingerprints."""
    db = sqlite3.connect(path)
    try:
        return {key: set(fps.split(" ")) for key, fps in db.execute("SELECT key, fingerprint FROM completed")}
    finally:
        db.close()


def a_changed_row_is_delivered_once(spec: Path, rows: list[tuple[str, str, str]], out: Path) -> None:
    """Change the last of ``rows`` (the job's leads): the next run delivers it, the one after nothing."""
    leads(spec.parent, [*rows[:-1], ("Changed", rows[-1][1], "example.org")])
    assert run(spec)["delivered"]["out"] == 1
    assert run(spec)["delivered"].get("out", 0) == 0
    assert len(out.read_text().splitlines()) == len(rows) + 1


def run(spec: Path, *args: str) -> dict[str, Any]:
    report = spec.parent / "report.json"
    code = main(["-q", "run", str(spec), "--report", str(report), *args])
    data = json.loads(report.read_text())
    assert code == 0, data["failure"]
    return data


INPUTS = {
    "distinct": people(120),
    # An exact duplicate far from its twin (another source batch, another sink batch), and two versions of a key.
    "duplicates": [*people(60), *people(5), ("Changed", "P3@Example.com", "example.org"), *people(90, 60)],
    "messy": [
        *people(40),
        ("No Email", "", "https://example.com"),
        ("  Spaces  ", "  P77@Example.COM ", "not a url"),
        ("Bad Url", "P78@example.com", "http://"),
        ("", "", ""),
        *people(80, 40),
    ],
}


@pytest.mark.parametrize("rows", INPUTS.values(), ids=INPUTS.keys())
def test_a_first_run_with_state_writes_what_a_stateless_run_writes(tmp_path: Path, rows: list) -> None:
    outputs = {}
    for state in ("state: false", "state: {path: state.db}"):
        folder = tmp_path / state.split(":")[1].strip(" {")
        folder.mkdir()
        leads(folder, rows)
        spec = write_spec(folder, JOB.format(state=state))
        report = run(spec)
        outputs[state] = [(folder / "out" / name).read_bytes() for name in ("people.jsonl", "errors.jsonl")]
        assert report["input_records"] == report["delivered"]["out"] + report["errors"]["count"]
    assert outputs["state: false"] == outputs["state: {path: state.db}"]
    again = run(spec)  # the stateful one: everything is skipped, nothing is written twice
    assert again["state"]["skipped_unchanged"] + again["errors"]["count"] == len(rows)
    assert (folder / "out" / "people.jsonl").read_bytes() == outputs["state: false"][0]


class Calls(Counter):
    """Counts calls of the state store's ledger methods (per sink for commits)."""

    def watch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("completed", "delivered", "commit_batch", "record_rejects"):
            original = getattr(SqlStateStore, name)

            def counted(
                store: SqlStateStore, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any
            ) -> Any:
                self[_name if _name != "commit_batch" else f"commit:{args[2]}"] += 1
                return _original(store, *args, **kwargs)

            monkeypatch.setattr(SqlStateStore, name, counted)


def test_a_first_run_looks_nothing_up_and_commits_in_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_groups, "GROUP_SECONDS", 60.0)
    monkeypatch.setattr(commit_groups, "GROUP_RECORDS", 100)
    leads(tmp_path, people(1000))
    spec = write_spec(tmp_path, JOB.format(state="state: {path: state.db}"))
    calls = Calls()
    calls.watch(monkeypatch)
    run(spec)
    # 143 sink batches of 7, committed 100 records at a time (and the last few at the end).
    assert calls["commit:out"] == 11
    assert calls["completed"] == calls["delivered"] == 0
    calls.clear()
    leads(tmp_path, [*people(1000), ("New", "new@example.com", "example.com")])
    report = run(spec)
    assert report["delivered"]["out"] == 1 and report["state"]["skipped_unchanged"] == 1000
    assert calls["completed"] == 1000 // 25 + 1  # a re-run looks its records up, batch by batch


def test_rejects_are_written_a_few_thousand_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every 5th row has no email: each of the 100 mapper batches of 10 rejects two, written in one transaction.
    rows = [(name, "" if n % 5 == 0 else email, site) for n, (name, email, site) in enumerate(people(1000))]
    leads(tmp_path, rows)
    spec = write_spec(tmp_path, JOB.format(state="state: {path: state.db}"))
    calls = Calls()
    calls.watch(monkeypatch)
    report = run(spec)
    assert report["errors"]["count"] == 200 and calls["record_rejects"] == 1
    store = SqliteStateStore(tmp_path / "state.db")
    assert len(store.rejects("cost", "pending")) == 200 and store.summary("cost")["completed_records"] == 800
    store.close()
    calls.clear()
    report = run(spec)  # retried, rejected again: a second attempt each, still written at once
    assert report["errors"]["count"] == 200 and calls["record_rejects"] == 1
    store = SqliteStateStore(tmp_path / "state.db")
    assert {reject["attempts"] for reject in store.rejects("cost")} == {2}
    store.close()


def test_a_group_whose_checkpoint_fails_is_set_aside_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync_plugins.files.atomic import JournaledFile

    monkeypatch.setattr(commit_groups, "GROUP_SECONDS", 60.0)
    monkeypatch.setattr(commit_groups, "GROUP_RECORDS", 100)
    checkpoint = JournaledFile.checkpoint
    made = Counter()

    def full_at_the_second(journal: JournaledFile) -> Any:
        made["checkpoints"] += 1
        if made["checkpoints"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return checkpoint(journal)

    monkeypatch.setattr(JournaledFile, "checkpoint", full_at_the_second)
    leads(tmp_path, people(300))
    spec = write_spec(tmp_path, JOB.format(state="state: {path: state.db}"))
    report_path = tmp_path / "report.json"
    assert main(["-q", "run", str(spec), "--report", str(report_path)]) == 1
    report = json.loads(report_path.read_text())
    assert "No space left on device" in report["failure"]
    # Groups of 105 records (15 batches of 7): the second one's checkpoint failed and all of it is set aside,
    # like every later batch (the file is broken); only the first group counts as delivered.
    assert report["delivered"]["out"] == 105 and report["errors"]["set_aside"] == 300 - 105
    # The error stream names each of them by its provenance (the failed group's without its data, which the
    # group does not keep): together with the delivered ones, every row of the file once.
    errors = [json.loads(line)["_error"] for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert all(error["transient"] and error["source"] == "leads" for error in errors)
    assert len({error["position"] for error in errors}) == 195
    monkeypatch.setattr(JournaledFile, "checkpoint", checkpoint)
    resumed = run(spec)
    assert resumed["delivered"]["out"] == 195
    lines = (tmp_path / "out" / "people.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["email"] for line in lines) == sorted(f"p{n}@example.com" for n in range(300))


V2_SCHEMA = """
CREATE TABLE crmsync_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL DEFAULT 'running', report TEXT);
CREATE TABLE locks (job TEXT PRIMARY KEY, token TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    acquired_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE deliveries (job TEXT NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    run_id INTEGER NOT NULL, PRIMARY KEY (job, sink, key));
CREATE INDEX deliveries_by_run ON deliveries (job, run_id);
CREATE TABLE completed (job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (job, key));
CREATE TABLE checkpoints (job TEXT NOT NULL, sink TEXT NOT NULL, checkpoint TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (job, sink));
CREATE TABLE rejects (job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, component TEXT NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL, source TEXT,
    position INTEGER, run_id INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (job, key));
CREATE TABLE intents (intent_id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, component TEXT NOT NULL,
    keys TEXT NOT NULL, started_at REAL NOT NULL);
CREATE TABLE objects (job TEXT NOT NULL, component TEXT NOT NULL, key TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY (job, component, key));
CREATE TABLE cache (namespace TEXT NOT NULL, identity TEXT NOT NULL, value TEXT NOT NULL, stored_at REAL NOT NULL,
    PRIMARY KEY (namespace, identity));
INSERT INTO crmsync_meta VALUES ('schema_version', '2');
INSERT INTO runs (job, started_at, finished_at, status) VALUES ('cost', '2026-01-01', '2026-01-01', 'success');
"""


def test_a_schema_2_state_is_migrated_and_its_fingerprints_still_match(tmp_path: Path) -> None:
    """A state written by the previous crmsync (content_key fingerprints, the old tables) goes on working: its
    records are skipped as unchanged, a changed one is delivered once, and nothing is written twice."""
    rows = people(30)
    leads(tmp_path, rows)
    out = tmp_path / "out" / "people.jsonl"
    out.parent.mkdir()
    # What the previous crmsync delivered: the source's records as the CSV source reads them.
    source = [{"Name": name, "Email": email, "Website": site} for name, email, site in rows]
    out.write_text("".join(json.dumps({"email": r["Email"].lower()}) + "\n" for r in source))
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(V2_SCHEMA)
    db.executemany("INSERT INTO completed VALUES ('cost', ?, ?, 1)", [(r["Email"], content_key(r)) for r in source])
    db.executemany(
        "INSERT INTO deliveries VALUES ('cost', 'out', ?, ?, 1)", [(r["Email"], content_key(r)) for r in source]
    )
    size = out.stat().st_size  # what the previous crmsync left: its last checkpoint says so
    token = {"part": str(tmp_path / "out" / ".people.jsonl.run1.part"), "offset": size, "base": 0, "merged": True}
    db.execute("INSERT INTO checkpoints VALUES ('cost', 'out', ?, 1)", (json.dumps(token),))
    db.commit()
    db.close()
    before = out.read_bytes()

    spec = write_spec(tmp_path, JOB.format(state="state: {path: state.db}"))
    report = run(spec)
    assert report["state"]["skipped_unchanged"] == 30 and report["delivered"].get("out", 0) == 0
    assert out.read_bytes() == before
    store = SqliteStateStore(tmp_path / "state.db")
    version = store.db.execute("SELECT value FROM crmsync_meta WHERE name = 'schema_version'").fetchone()[0]
    indexes = store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'deliveries_by_run'")
    assert int(version) == SCHEMA_VERSION == 5 and indexes.fetchall() == []
    store.close()

    leads(tmp_path, [*rows[:-1], ("Changed", rows[-1][1], "example.org")])
    assert run(spec)["delivered"]["out"] == 1
    assert run(spec)["delivered"].get("out", 0) == 0  # the new version is stored with a new fingerprint
    assert len(out.read_text().splitlines()) == 31


def test_fingerprints_are_stable_order_free_and_unambiguous() -> None:
    record = {"First Name": "Ada", "Email": "ada@example.com", "Website": "https://example.com"}
    # Stored in state files: a new value must come with matches() recognising the old one (see below).
    assert fingerprint(record) == fingerprint(dict(reversed(record.items()))) == "fe379b9e499514e5"
    assert len(fingerprint({"only": "one"})) == len(fingerprint({"n": 1, "m": None})) == 16
    assert fingerprint({"a": "x\x1fy", "b": "z"}) != fingerprint({"a": "x", "b": "y\x1fz"})
    assert fingerprint({"a": "1", "b": "z"}) != fingerprint({"a": 1, "b": "z"})
    assert fingerprint({"a": "x", "b": "y"}) != fingerprint({"a": "x", "c": "y"})
    assert matches(f"{fingerprint(record)} other", fingerprint(record), record)
    assert matches(content_key(record), fingerprint(record), record)  # a schema-2 fingerprint
    assert not matches(content_key({**record, "Email": "x"}), fingerprint(record), record)
    assert not matches(None, fingerprint(record), record)
    assert matches("868c583e0fcba896", fingerprint(record), record)  # the BLAKE2b one of crmsync before XXH3
    assert not matches("868c583e0fcba896", fingerprint({**record, "Email": "x"}), {**record, "Email": "x"})


def test_a_state_of_blake2b_fingerprints_delivers_nothing_twice_and_takes_the_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state written by crmsync before XXH3 fingerprints: its records are skipped as unchanged (and stored
    with their new fingerprint), a changed one is delivered once."""
    rows = people(40)
    leads(tmp_path, rows)
    spec = write_spec(tmp_path, JOB.format(state="state: {path: state.db}"))
    with monkeypatch.context() as old:

        def blake2b_hexdigest(data: bytes) -> str:
            return hashlib.blake2b(data, digest_size=8).hexdigest()

        old.setattr(fingerprints_module, "xxh3_64_hexdigest", blake2b_hexdigest)
        assert run(spec)["delivered"]["out"] == 40
    out = tmp_path / "out" / "people.jsonl"
    before = out.read_bytes()

    blake2b = completed_versions(tmp_path / "state.db")
    report = run(spec)
    assert report["state"]["skipped_unchanged"] == 40 and report["delivered"].get("out", 0) == 0
    assert out.read_bytes() == before
    source = {email: {"Name": name, "Email": email, "Website": site} for name, email, site in rows}
    assert completed_versions(tmp_path / "state.db") == {
        key: {*blake2b[key], fingerprint(source[key])} for key in source
    }
    # From now on each record is recognised by its new fingerprint: the older one is not computed again.
    with monkeypatch.context() as new:
        new.setattr(fingerprints_module, "hashlib", None)
        assert run(spec)["state"]["skipped_unchanged"] == 40

    a_changed_row_is_delivered_once(spec, rows, out)


@pytest.mark.parametrize(
    "batch",
    [
        [{"a": "x", "b": "y"}, {"a": "", "b": "é"}, {"a": "x y", "b": "  "}],
        [{"a": "x\x1fy", "b": "z"}, {"a": "x", "b": "y"}],  # a separator inside a value
        [{"a": "x\x1dy", "b": "z"}, {"a": "x", "b": "\x1e"}],  # the prefix's edge and the field separator
        [{"a": "x\x1cy", "b": "z"}, {"a": "x", "b": "y"}],  # the character between records
        [{"a\x1c": "x", "b": "y"}, {"a\x1c": "x", "b": "z"}],  # ... in a field name
        [{"a": "ü\x1c", "b": "東"}, {"a": "", "b": ""}, {"a": "\x1c", "b": "\x1c"}],
        [{"a": "x", "b": "y"}, {"b": "y", "a": "x"}, {"a": "x", "c": "y"}],  # mixed layouts
        [{"a": "1", "b": 2}, {"a": "1", "b": "2"}, {"a": None, "b": [1, {"c": 2}]}],  # values that are not text
        [{"only": "one"}, {"only": "two"}],  # one field
        [{1: "x", 2: "y"}],  # names that are not text
        [],
        # Longer than the records hashed at once: the odd record in one part only.
        [{"a": str(n), "b": "é" if n != 130 else "x\x1cy"} for n in range(250)],
        [{"a": str(n), "b": "東"} for n in range(201)],
        # Latin-1, two-byte and four-byte characters beside plain ASCII records in one part.
        [{"a": "x", "b": "y"}, {"a": "Łódź", "b": "東京"}, {"a": "José", "b": "🙂"}, {"a": "z", "b": "w"}],
        [{"a": "x", "b": "\ud800"}, {"a": "x", "b": "y"}],  # a lone surrogate (a source of another package)
    ],
)
def test_a_batch_s_fingerprints_are_each_record_s(batch: list[dict[str, Any]]) -> None:
    assert fingerprints(batch) == [fingerprint(data) for data in batch]


def test_a_fingerprint_hashes_the_utf_8_of_the_names_and_values() -> None:
    """The stored definition: records of any characters hash the same bytes, batch or not."""
    from xxhash import xxh3_64_hexdigest

    record = {"b": "東京", "a": "Łódź"}
    expected = xxh3_64_hexdigest("\x1da\x1eb\x1dŁódź\x1f東京".encode())
    assert fingerprint(record) == expected
    assert fingerprints([{"a": "x", "b": "y"}, record]) == [fingerprint({"a": "x", "b": "y"}), expected]


def test_a_source_of_a_job_with_state_fingerprints_its_records_as_it_builds_them() -> None:
    from connector_core.components import Failed, Source

    rows = [{"a": "x", "b": "é"}, {"a": "", "b": "y"}, {"a": "z", "b": None}]
    source: Source[Any] = Source("src", None, None, key=("a",))  # type: ignore[arg-type]
    assert [record.fingerprint for record in source.rows(rows, 1)] == ["", "", ""]  # no state: none
    source.fingerprint_rows = fingerprints
    records = source.rows(rows, 1)
    assert [record.fingerprint for record in records] == [fingerprint(row) for row in rows]
    # The ledger keeps such a batch as it is; one with a record of another source's making is stamped.
    assert ledger._stamped(records) is records  # type: ignore[arg-type]
    # So does a batch holding a row the source rejected: Source.record() gives it its fingerprint too.
    failed = Failed(source.record({"a": "", "b": "bad"}, 4), "ragged")
    assert failed.record.fingerprint == fingerprint({"a": "", "b": "bad"})
    mixed = [*records, failed]
    assert ledger._stamped(mixed) is mixed
    unstamped = [records[0]._replace(fingerprint=""), Failed(records[1]._replace(fingerprint=""), "bad")]
    stamped = ledger._stamped(unstamped)
    assert [ledger._record(item).fingerprint for item in stamped] == [fingerprint(row) for row in rows[:2]]


def test_a_record_keyed_by_its_content_has_its_key_as_its_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``key`` a record's key is the hash of its content: it tells a changed record as well as a second
    hash would, so none is taken (rows of a keyed source with a blank key are still fingerprinted)."""
    from connector_core.components import Source

    rows = [{"a": "x", "b": "é"}, {"a": "", "b": "y"}, {"a": "z", "b": None}]
    keyless: Source[Any] = Source("src", None, None)  # type: ignore[arg-type]
    keyed: Source[Any] = Source("src", None, None, key=("a",))  # type: ignore[arg-type]
    keyless.fingerprint_rows = keyed.fingerprint_rows = fingerprints
    assert [(r.key, r.fingerprint) for r in keyless.rows(rows, 1)] == [
        (content_key(row), content_key(row)) for row in rows
    ]
    assert keyless.record(rows[1], 2).fingerprint == content_key(rows[1])
    assert keyed.rows(rows, 1)[1].fingerprint == keyed.record(rows[1], 2).fingerprint == fingerprint(rows[1])
    monkeypatch.setattr(keyless, "fingerprint_rows", None)
    assert [r.fingerprint for r in keyless.rows(rows, 1)] == ["", "", ""]  # no state: none


KEYLESS_JOB = JOB.replace(", key: Email", "")


def test_a_keyless_job_stores_keys_as_fingerprints_and_recognises_its_older_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state written when keyless records had an XXH3 fingerprint: a re-run skips them all (and stores their
    key beside it), and from then on recognises them by their key alone."""
    rows = people(40)
    leads(tmp_path, rows)
    spec = write_spec(tmp_path, KEYLESS_JOB.format(state="state: {path: state.db}"))
    with monkeypatch.context() as old:
        from connector_core.components import Source

        old.setattr(Source, "_keyed_by_content", False)
        assert run(spec)["delivered"]["out"] == 40
    out = tmp_path / "out" / "people.jsonl"
    before = out.read_bytes()

    data = [{"Name": name, "Email": email, "Website": site} for name, email, site in rows]
    assert completed_versions(tmp_path / "state.db") == {content_key(row): {fingerprint(row)} for row in data}
    report = run(spec)
    assert report["state"]["skipped_unchanged"] == 40 and report["delivered"].get("out", 0) == 0
    assert out.read_bytes() == before
    assert completed_versions(tmp_path / "state.db") == {
        content_key(row): {fingerprint(row), content_key(row)} for row in data
    }
    with monkeypatch.context() as new:  # recognised by the key: no fingerprint is hashed any more

        def no_hash(data: dict[str, Any]) -> bytes:
            raise AssertionError("hashed")

        new.setattr(fingerprints_module, "_hashed", no_hash)
        new.setattr(fingerprints_module, "fingerprints", None)
        assert run(spec)["state"]["skipped_unchanged"] == 40

    a_changed_row_is_delivered_once(spec, rows, out)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    leads(fresh, rows)
    spec = write_spec(fresh, KEYLESS_JOB.format(state="state: {path: state.db}"))
    assert run(spec)["delivered"]["out"] == 40  # a new state stores each key as its fingerprint alone
    assert completed_versions(fresh / "state.db") == {content_key(row): {content_key(row)} for row in data}


@pytest.mark.parametrize(
    "pairs",
    [
        [("a@x.io", "00ff00ff00ff00ff")],
        [("a@x.io", "f1"), ("b@x.io", "f2"), ("a@x.io", "f3"), ("a@x.io", "f1 f4")],  # a key twice, a set of two
        [("plain", "f1"), ('say "hi"', "f2")],  # a quote: the count notices
        [("back\\slash", "f1"), ("tab\there", "f2"), ("nl\nx", "f3"), ("\x1f", "f5")],
        [("José ✓", "f1"), ("line\u2028sep", "f2"), ("", "f3"), ("{}", "f4"), ('":"', "f5")],
        [("k", 'fp"q'), ("k2", "fp\\")],  # the fingerprints are texts too
        [('a", "b', "f1"), ("c\t", "f2"), ('", "', "f3")],  # where the encoded keys are cut apart, in a key
        [("end\\", "f1"), ('\\"', "f2"), ("", "f3"), ("x", "")],  # backslashes before a cut, empty texts
        [(f"person{n}@example.com", f"{n:016x}") for n in range(1999)] + [("tab\there", "f")],  # one in many
    ],
)
def test_a_journal_row_packs_every_pair_in_order(pairs: list[tuple[str, str]]) -> None:
    """``journal_text`` writes one JSON member per pair that SQLite reads back as they were, duplicates and all."""
    db = sqlite3.connect(":memory:")
    read = db.execute("SELECT key, value FROM json_each(?)", (journal_text(pairs),)).fetchall()
    assert read == pairs
    assert journal_text([]) == "{}"


@pytest.mark.parametrize(("rejected", "attempts"), [("k7", 3), ("k7", 1), ("r", 1)])
def test_settling_a_run_folds_its_deliveries_once(tmp_path: Path, rejected: str, attempts: int) -> None:
    """A messy file often holds a key twice with one version bad (delivered and rejected in one run), and a
    re-run discards rejects whose attempts are used up: settling puts back only a key delivered and still
    pending, and never folds every delivery of the run a second time."""
    from connector_core.state.store import Reject

    store = SqliteStateStore(tmp_path / "state.db")
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [(f"k{n}", "f") for n in range(100)])
    reject = Reject(key=rejected, fingerprint="g", component="m", reason="bad", data="{}", source="s")
    store.record_rejects("job", run_id, [reject], max_attempts=attempts)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.complete_run("job", run_id)
    store.db.set_trace_callback(None)
    folds = [sql for sql in statements if sql.startswith("INSERT INTO completed") and "journal_pairs" in sql]
    assert len(folds) == 1
    put_back = any(sql.startswith("DELETE FROM completed") for sql in statements)
    assert put_back == (rejected == "k7" and attempts > 1)
    completed = store.completed("job", ["k7", "k8", "r"])
    assert ("k7" in completed) == (put_back is False) and completed["k8"] == "f"
    store.close()


def test_one_key_to_escape_does_not_make_its_journal_row_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A messy key column (a tab, a quote in a few keys) puts a chunk off the plain join: its keys are then
    encoded together, not a pair at a time."""
    from connector_core.state import sql

    calls: list[object] = []
    real = sql.encode_json

    def counted(value: object) -> str:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(sql, "encode_json", counted)
    pairs = [(f"p{n}@x.io", f"{n:016x}") for n in range(2000)]
    pairs[700] = ('"quoted"\t@x.io', "f")
    assert json.loads(journal_text(pairs)) == dict(pairs) and len(calls) == 2


@pytest.mark.parametrize("times", [2, 40, 3000])
def test_a_key_met_thousands_of_times_settles_in_linear_time(tmp_path: Path, times: int) -> None:
    """A placeholder in the key column (``N/A`` on every row without an email) makes one key with thousands of
    versions: merged one by one, each merge copied all versions gathered so far (the square of their number: a
    10th of a 300k-row list took 4 s to settle). Such a run gathers each key's versions first. Either way every
    version is kept, as are other keys' versions, and an earlier run's are replaced."""
    from connector_core.state.store import Reject

    store = SqliteStateStore(tmp_path / "state.db")
    first = store.start_run("job")
    store.commit_batch("job", first, "out", [("N/A", "old"), ("k", "k1")])
    store.complete_run("job", first)
    run_id = store.start_run("job")
    pairs = [("N/A", f"{n:016x}") for n in range(times)] + [(f"k{n}", "f") for n in range(500)] + [("N/A", "0" * 16)]
    for start in range(0, len(pairs), 1000):
        store.commit_batch("job", run_id, "out", pairs[start : start + 1000])
    discarded = Reject(key="k7", fingerprint="g", component="m", reason="bad", data="{}", source="s")
    store.record_rejects("job", run_id, [discarded], max_attempts=1)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.complete_run("job", run_id)
    store.db.set_trace_callback(None)
    folds = [sql for sql in statements if sql.startswith("INSERT INTO completed") and "journal_pairs" in sql]
    # Only the keys with many versions are gathered first; the others are merged as they come.
    assert ["GROUP BY" in fold for fold in folds] == ([False, True] if times >= 32 else [False])
    completed = store.completed("job", ["N/A", "k", "k7", "k8"])
    assert sorted(set(completed["N/A"].split(" "))) == [f"{n:016x}" for n in range(times)]
    assert set(completed["k7"].split(" ")) == {"f", "g"} and completed["k8"] == "f" and completed["k"] == "k1"
    store.close()


@pytest.mark.parametrize(("every", "offset"), [(16, 0), (16, 7), (50, 7), (3, 1)])
def test_a_placeholder_in_large_commits_is_found_whatever_its_period(tmp_path: Path, every: int, offset: int) -> None:
    """A file sink commits 10,000 records at a time, whose keys are looked at through a random sample first: a
    placeholder on every ``every``-th row (a period equal to the sample's sixteenth included) is still found,
    and its versions gathered first; keys met twice (a person listed twice) are merged one by one."""
    store = SqliteStateStore(tmp_path / "state.db")
    run_id = store.start_run("job")
    for commit in range(3):
        pairs = [
            ("N/A" if n % every == offset else f"p{commit}-{n}@x.io", f"{commit:04x}{n:012x}") for n in range(10_000)
        ]
        pairs[1:3] = [(f"twice{commit}@x.io", "1" * 16), (f"twice{commit}@x.io", "2" * 16)]
        store.commit_batch("job", run_id, "out", pairs)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.complete_run("job", run_id)
    store.db.set_trace_callback(None)
    folds = [sql for sql in statements if sql.startswith("INSERT INTO completed") and "journal_pairs" in sql]
    assert ["GROUP BY" in fold for fold in folds] == [False, True]
    completed = store.completed("job", ["N/A", "twice0@x.io", "p2-9999@x.io"])
    placeholders = [n for n in range(3, 10_000) if n % every == offset] + [n for n in (0,) if n % every == offset]
    assert len(set(completed["N/A"].split(" "))) == 3 * len(placeholders)
    assert set(completed["twice0@x.io"].split(" ")) == {"1" * 16, "2" * 16} and len(completed) == 3
    store.close()


def test_a_large_commit_without_repeated_keys_is_looked_at_through_a_sample(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A large commit whose sample repeats no key has only that sample's keys hashed (hashing all of them was 5%
    of a first run's state); one whose sample repeats a key is counted whole."""
    taken: list[str] = []

    def key_of(pair: tuple[str, str]) -> str:
        taken.append(pair[0])
        return pair[0]

    monkeypatch.setattr(sql_module, "_KEY_OF_PAIR", key_of)
    store = SqliteStateStore(tmp_path / "state.db")
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [(f"p{n}@x.io", "f" * 16) for n in range(10_000)])
    assert len(taken) == 10_000 // 16
    taken.clear()
    store.commit_batch("job", run_id, "out", [("N/A" if n % 2 else f"p{n}@x.io", "f" * 16) for n in range(10_000)])
    assert len(taken) == 10_000 // 16 + 10_000
    store.close()


def test_a_re_run_reads_a_key_s_many_versions_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A placeholder key (``N/A`` on 300 rows, in every source batch) has hundreds of stored versions: a re-run
    reads them from the state once, not for every batch, and still skips every unchanged row and delivers a
    new one."""
    rows = [(f"Person {n}", "N/A" if n % 3 else f"p{n}@example.com", "example.com") for n in range(900)]
    leads(tmp_path, rows)
    spec = write_spec(tmp_path, JOB.format(state="state: {path: state.db}"))
    assert run(spec)["delivered"]["out"] == 900
    asked: list[list[str]] = []
    completed = SqlStateStore.completed

    def counted(self: SqlStateStore, job: str, keys: list[str]) -> dict[str, str]:
        asked.append(keys)
        return completed(self, job, keys)

    monkeypatch.setattr(SqlStateStore, "completed", counted)
    leads(tmp_path, [*rows, ("Someone new", "N/A", "example.org")])
    report = run(spec)
    assert report["state"]["skipped_unchanged"] == 900 and report["delivered"]["out"] == 1
    assert len(asked) == 37 and sum("N/A" in keys for keys in asked) == 1
    assert run(spec)["state"]["skipped_unchanged"] == 901


def test_a_record_is_found_among_many_stored_versions() -> None:
    record = {"First Name": "Ada", "Email": "ada@example.com", "Website": "https://example.com"}
    many = " ".join(f"{n:016x}" for n in range(100))  # past the length looked up in a set
    for _ in range(2):  # the second time from the set kept
        assert matches(f"{many} {fingerprint(record)}", fingerprint(record), record)
        assert not matches(many, fingerprint(record), record)
        assert matches(f"{many} {content_key(record)}", fingerprint(record), record)  # a schema-2 one
        assert matches(f"{many} 868c583e0fcba896", fingerprint(record), record)  # the BLAKE2b one


def test_a_run_repeating_very_many_keys_gathers_every_key_s_versions(tmp_path: Path) -> None:
    """Past 10,000 keys repeated within its commits a run's keys are no longer counted one by one (memory stays
    bounded): every key's versions are then gathered first, and all are kept."""
    store = SqliteStateStore(tmp_path / "state.db")
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [(f"k{n % 10_001}", f"v{n // 10_001}") for n in range(20_002)])
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.complete_run("job", run_id)
    store.db.set_trace_callback(None)
    [fold] = [sql for sql in statements if sql.startswith("INSERT INTO completed") and "journal_pairs" in sql]
    assert "GROUP BY" in fold and "many_versions" not in fold
    assert {key: set(versions.split(" ")) for key, versions in store.completed("job", ["k0", "k10000"]).items()} == {
        "k0": {"v0", "v1"},
        "k10000": {"v0", "v1"},
    }
    store.close()

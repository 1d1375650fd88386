"""The StateStore contract, run against every store: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector_core.json_encoding import encode_json
from connector_core.state.lease import new_owner
from connector_core.state.open import open_store
from connector_core.state.store import UNCHANGED, JobLocked, Reject, StateStore


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(target: str) -> Iterator[StateStore]:
    opened = open_store(target)
    yield opened
    opened.close()


def other_host() -> dict[str, object]:
    return {**new_owner(), "host": "another-runner", "pid": 1}


def test_a_live_lease_refuses_a_second_owner_and_renews(store: StateStore) -> None:
    first = new_owner()
    assert store.acquire_lock("job", first, 30) is None
    with pytest.raises(JobLocked, match="already running"):
        store.acquire_lock("job", other_host(), 30)
    before = store.lock("job")
    assert before is not None and before["token"] == first["token"] and before["host"] == socket.gethostname()
    assert store.renew_lock("job", first["token"], 120)
    after = store.lock("job")
    assert after is not None and after["expires_at"] > before["expires_at"] + 60
    assert not store.renew_lock("job", "not-the-owner", 30)
    store.release_lock("job", "not-the-owner")  # only the owner's token releases
    assert store.lock("job") is not None
    store.release_lock("job", first["token"])
    assert store.lock("job") is None


def test_an_expired_lease_is_taken_over_from_any_host(store: StateStore) -> None:
    store.acquire_lock("job", other_host(), 0.2)
    with pytest.raises(JobLocked):
        store.acquire_lock("job", new_owner(), 30)
    time.sleep(0.3)
    me = new_owner()
    note = store.acquire_lock("job", me, 30)
    assert note is not None and "expired" in note and "another-runner" in note
    held = store.lock("job")
    assert held is not None and held["token"] == me["token"]
    assert store.renew_lock("job", me["token"], 30)


def test_a_dead_process_on_this_host_is_taken_over_at_once(store: StateStore) -> None:
    dead = {**new_owner(), "pid": 2**22 + 12345}  # beyond pid_max: no such process
    store.acquire_lock("job", dead, 600)
    assert "gone" in (store.acquire_lock("job", new_owner(), 30) or "")


def test_a_lease_with_this_process_s_pid_from_before_it_started_is_taken_over(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container restarting a job under a fixed hostname gives every run the same pid: the killed run's lease
    names this very pid. Taken before this process started, it is a gone process's; taken by this process (a
    second run of the job on another thread), it is live."""
    store.acquire_lock("job", new_owner(), 600)  # this pid, this host, another token
    with pytest.raises(JobLocked, match="already running"):
        store.acquire_lock("job", new_owner(), 30)
    monkeypatch.setattr("connector_core.state.lease._STARTED", time.time() + 1)  # as if this process were new
    me = new_owner()
    assert "process is gone" in (store.acquire_lock("job", me, 30) or "")
    held = store.lock("job")
    assert held is not None and held["token"] == me["token"]


def test_leases_of_different_jobs_are_independent(store: StateStore) -> None:
    store.acquire_lock("a", other_host(), 30)
    assert store.acquire_lock("b", new_owner(), 30) is None


def test_runs_deliveries_checkpoints_and_completion(store: StateStore) -> None:
    first = store.start_run("job")
    store.commit_batch("job", first, "out", [("k1", "f1"), ("k2", "f2")], {"line": 2})
    assert store.delivered("job", "out", ["k1"]) == {}  # a run's own deliveries count from the next run on
    assert store.summary("job")["deliveries"] == {"out": 2}
    assert store.sink_checkpoint("job", "out") == {"line": 2}
    assert store.completed("job", ["k1"]) == {}
    assert store.ledger_start("job") == (False, set())
    second = store.start_run("job")  # the first never finished: it crashed
    assert second > first
    assert [r["status"] for r in store.runs("job")] == ["running", "crashed"]
    assert store.delivered("job", "out", ["k1", "k2", "k3"]) == {"k1": "f1", "k2": "f2"}
    assert store.ledger_start("job") == (False, {"out"})
    store.commit_batch("job", second, "out", [("k1", "f1")])
    store.commit_batch("job", second, "other", [("k1", "f1")])  # one key through two sinks counts once
    store.complete_run("job", second)
    assert store.completed("job", ["k1", "k2"]) == {"k1": "f1"}
    # What a settled run delivered is known through `completed`; `deliveries` keeps the dead run's k2 only.
    assert store.ledger_start("job") == (True, {"out"})
    assert store.delivered("job", "other", ["k1", "k2"]) == {"k1": "f1"}
    assert store.delivered("job", "out", ["k1", "k2"]) == {"k1": "f1", "k2": "f2"}
    assert store.summary("job")["deliveries"] == {"out": 2, "other": 1}
    store.finish_run(second, "success", {"input_records": 1})
    assert store.runs("job")[0]["report"] == {"input_records": 1}
    keys = [f"k{i}" for i in range(1200)]  # more than one look-up chunk
    third = store.start_run("job")
    store.commit_batch("job", third, "big", [(key, "f") for key in keys])
    store.start_run("job")
    assert len(store.delivered("job", "big", keys)) == 1200


def versions(fingerprints: dict[str, str]) -> dict[str, set[str]]:
    """Stored fingerprints by key: several versions of a key are kept space-separated, in no set order."""
    return {key: set(value.split(" ")) for key, value in fingerprints.items()}


def test_versions_of_one_key_in_one_run_are_kept_together(store: StateStore) -> None:
    first = store.start_run("job")
    store.commit_batch("job", first, "out", [("k", "aa"), ("k", "bb")])
    store.commit_batch("job", first, "out", [("k", "aa")])  # met again in the same run: not listed twice
    store.complete_run("job", first)
    assert versions(store.delivered("job", "out", ["k"])) == {"k": {"aa", "bb"}}
    assert versions(store.completed("job", ["k"])) == {"k": {"aa", "bb"}}
    second = store.start_run("job")
    store.commit_batch("job", second, "out", [("k", "cc")])  # a later run's delivery replaces them
    store.complete_run("job", second)
    assert store.delivered("job", "out", ["k"]) == {"k": "cc"}


def test_versions_met_unchanged_stay_completed_beside_a_new_one(store: StateStore) -> None:
    first = store.start_run("job")
    store.commit_batch("job", first, "out", [("k", "aa"), ("j", "jj")])
    store.complete_run("job", first)
    second = store.start_run("job")
    # k's version aa and j are met again unchanged (skipped); a new version bb of k is delivered.
    store.commit_batch("job", second, UNCHANGED, [("k", "aa"), ("j", "jj")])
    store.commit_batch("job", second, "out", [("k", "bb")])
    store.complete_run("job", second)  # completes k only: j was not delivered by this run
    assert versions(store.completed("job", ["k", "j"])) == {"k": {"aa", "bb"}, "j": {"jj"}}
    assert store.summary("job")["deliveries"] == {"out": 2}  # the pseudo-sink is no sink of the job
    third = store.start_run("job")
    store.commit_batch("job", third, "out", [("k", "cc")])
    store.complete_run("job", third)  # what run 2 met unchanged was forgotten when it settled
    assert store.completed("job", ["k"]) == {"k": "cc"}


def test_a_completed_key_takes_the_fingerprints_added_to_it_once(store: StateStore) -> None:
    first = store.start_run("job")
    store.commit_batch("job", first, "out", [("k", "aa"), ("j", "jj")])
    store.complete_run("job", first)
    store.add_fingerprints("job", [("k", "AA"), ("k", "AA"), ("gone", "xx")])  # the same data hashed anew
    store.add_fingerprints("job", [("k", "AA"), ("j", "jj")])
    assert versions(store.completed("job", ["k", "j", "gone"])) == {"k": {"aa", "AA"}, "j": {"jj"}}
    second = store.start_run("job")
    store.commit_batch("job", second, "out", [("k", "bb")])
    store.complete_run("job", second)  # a new version replaces both
    assert store.completed("job", ["k"]) == {"k": "bb"}


def test_records_set_aside_keep_their_attempts(store: StateStore) -> None:
    reject = Reject(key="r", fingerprint="f", component="m", reason="bad", data="{}", source="s")
    run_id = store.start_run("job")
    store.record_rejects("job", run_id, [reject], max_attempts=2)
    store.finish_run(run_id, "success", {})
    for _ in range(3):  # more storms than attempts
        run_id = store.start_run("job")
        store.record_rejects("job", run_id, [reject._replace(reason="503")], max_attempts=2, transient=True)
        store.finish_run(run_id, "success", {})
    [row] = store.rejects("job")
    assert row["status"] == "pending" and row["attempts"] == 1 and row["reason"] == "503"
    assert store.completed("job", ["r"]) == {}
    run_id = store.start_run("job")
    store.record_rejects("job", run_id, [reject._replace(key="new")], max_attempts=1, transient=True)
    store.finish_run(run_id, "success", {})
    assert {r["key"]: r["attempts"] for r in store.rejects("job", "pending")} == {"r": 1, "new": 0}


def test_the_rejects_of_a_run_that_died_are_dropped_and_count_no_attempt(store: StateStore) -> None:
    """A run's rejects are kept when it ends (settled or not); the next run drops those of a run that died before,
    and rejects them again itself (it reads the same input): an attempt is counted once, by a run that ended."""
    reject = Reject(key="r", fingerprint="f", component="m", reason="bad", data="{}", source="s")
    first = store.start_run("job")
    store.record_rejects("job", first, [reject], max_attempts=3)
    store.complete_run("job", first)
    died = store.start_run("job")
    store.record_rejects("job", died, [reject._replace(reason="seen by a run that was killed")], max_attempts=3)
    assert [(row["reason"], row["attempts"]) for row in store.rejects("job")] == [("bad", 1)]  # not yet kept
    resumed = store.start_run("job")
    store.record_rejects("job", resumed, [reject._replace(reason="again"), reject._replace(key="s")], max_attempts=3)
    store.complete_run("job", resumed)
    rows = {row["key"]: (row["reason"], row["attempts"]) for row in store.rejects("job")}
    assert rows == {"r": ("again", 2), "s": ("bad", 1)}
    assert store.summary("job")["rejects"] == {"pending": 2}


def test_rejects_are_listed_in_input_order(store: StateStore) -> None:
    """``errors list`` shows a run's rejects as the input had them, whatever their keys (often content hashes)."""
    rows = [("f3", "b", 2), ("a9", "a", 10), ("c1", "a", 9), ("0e", None, None), ("b2", "a", 1)]
    rejects = [
        Reject(key=key, fingerprint="f", component="m", reason="bad", data="{}", source=source, position=position)
        for key, source, position in rows
    ]
    run_id = store.start_run("job")
    store.record_rejects("job", run_id, rejects, max_attempts=3)
    store.finish_run(run_id, "success", {})
    assert [row["key"] for row in store.rejects("job")] == ["0e", "b2", "c1", "a9", "f3"]


def test_rejects_retry_then_discard(store: StateStore) -> None:
    reject = Reject(key="r", fingerprint="f", component="m", reason="bad", data='{"x": 1}', source="s")
    for run in range(1, 3):
        run_id = store.start_run("job")
        store.record_rejects("job", run_id, [reject._replace(position=run)], max_attempts=2)
        store.finish_run(run_id, "failed", {})  # a run that did not settle keeps its rejects too
    [row] = store.rejects("job")
    assert row["status"] == "discarded" and row["attempts"] == 2 and row["data"] == {"x": 1}
    assert store.completed("job", ["r"]) == {"r": "f"}
    assert store.set_rejects("job", "pending", ["r"]) == 1
    assert store.completed("job", ["r"]) == {} and store.rejects("job", "pending")[0]["attempts"] == 0
    assert store.set_rejects("job", "discarded") == 1


@pytest.mark.parametrize("overlap", [True, False])
def test_keys_a_run_delivered_and_rejected_are_not_completed(store: StateStore, overlap: bool) -> None:
    reject = Reject(key="r", fingerprint="f", component="m", reason="bad", data="{}", source="s")
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [("a", "fa"), ("b", "fb")])
    rejected = ["b", "c"] if overlap else ["c"]
    store.record_rejects("job", run_id, [reject._replace(key=key) for key in rejected], max_attempts=3)
    store.complete_run("job", run_id)
    assert store.completed("job", ["a", "b", "c"]) == ({"a": "fa"} if overlap else {"a": "fa", "b": "fb"})
    assert store.delivered("job", "out", ["a", "b", "c"]) == {"a": "fa", "b": "fb"}
    assert {row["key"] for row in store.rejects("job", "pending")} == set(rejected)
    assert store.summary("job")["completed_records"] == (1 if overlap else 2)


def test_a_key_completed_before_then_delivered_and_rejected_keeps_its_earlier_completion(store: StateStore) -> None:
    """Settling a run leaves a key it both delivered and rejected as the runs before left it (completed with
    its earlier versions); the new delivery is remembered per sink, the reject stays pending. Keys around it
    (completed now, or rejects only) settle as usual."""
    reject = Reject(key="", fingerprint="f", component="m", reason="bad", data="{}", source="s")
    first = store.start_run("job")
    store.commit_batch("job", first, "out", [("b", "fb1"), ("d", "fd1")])
    store.complete_run("job", first)
    second = store.start_run("job")
    store.commit_batch("job", second, "out", [("a", "fa"), ("b", "fb2"), ("d", "fd2"), ("e", "fe")])
    store.record_rejects("job", second, [reject._replace(key=key) for key in ("b", "c", "e")], max_attempts=3)
    store.complete_run("job", second)
    assert store.completed("job", ["a", "b", "c", "d", "e"]) == {"a": "fa", "b": "fb1", "d": "fd2"}
    assert store.delivered("job", "out", ["b", "e"]) == {"b": "fb2", "e": "fe"}
    assert sorted(row["key"] for row in store.rejects("job", "pending")) == ["b", "c", "e"]


def test_a_later_run_delivering_a_rejected_key_settles_it_and_only_it(store: StateStore) -> None:
    reject = Reject(key="", fingerprint="f", component="m", reason="bad", data="{}", source="s")
    first = store.start_run("job")
    store.record_rejects("job", first, [reject._replace(key=key) for key in ("r", "s", "t")], max_attempts=3)
    store.complete_run("job", first)
    second = store.start_run("job")
    store.commit_batch("job", second, "out", [("r", "f2"), ("a", "fa")])
    store.record_rejects("job", second, [reject._replace(key="s")], max_attempts=3)  # rejected again
    store.complete_run("job", second)
    assert sorted(row["key"] for row in store.rejects("job", "pending")) == ["s", "t"]
    assert store.completed("job", ["r", "s", "t", "a"]) == {"r": "f2", "a": "fa"}
    # A run that starts with no pending rejects still keeps the ones it makes itself.
    store.set_rejects("job", "discarded")
    third = store.start_run("job")
    store.record_rejects("job", third, [reject._replace(key="u")], max_attempts=3)
    store.commit_batch("job", third, "out", [("v", "fv")])
    store.complete_run("job", third)
    assert [row["key"] for row in store.rejects("job", "pending")] == ["u"]


V3_JOURNAL = (
    "CREATE TABLE journal (run_id BIGINT NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL)"
)
V4_JOURNAL = "CREATE TABLE journal (run_id BIGINT NOT NULL, sink TEXT NOT NULL, pairs TEXT NOT NULL)"
#: Schema 4's view over its journal rows (a JSON array of pairs each), as each store created it.
V4_VIEW = {
    "sqlite": "CREATE VIEW journal_pairs AS SELECT j.run_id AS run_id, j.sink AS sink, "
    "json_extract(p.value, '$[0]') AS key, json_extract(p.value, '$[1]') AS fingerprint "
    "FROM journal j, json_each(j.pairs) p",
    "postgres": "CREATE VIEW journal_pairs AS SELECT j.run_id, j.sink, p.value ->> 0 AS key, "
    "p.value ->> 1 AS fingerprint FROM journal j CROSS JOIN LATERAL json_array_elements(j.pairs::json) AS p(value)",
}


def as_old_schema(target: str, version: int, rows: list[tuple[int, str, str, str]]) -> None:
    """Turn the store at ``target`` back into schema 3 (a journal row per pair) or 4 (a row per run and sink,
    its pairs in a JSON array) holding ``rows``."""
    kind = "sqlite" if target.endswith(".db") else "postgres"
    statements = ["DROP VIEW journal_pairs", "DROP TABLE journal", V3_JOURNAL if version == 3 else V4_JOURNAL]
    if version == 4:
        statements.append(V4_VIEW[kind])
    statements.append(f"UPDATE crmsync_meta SET value = '{version}' WHERE name = 'schema_version'")
    journal: list[tuple[Any, ...]] = list(rows)
    if version == 4:
        packed: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for run_id, sink, key, fingerprint in rows:
            packed.setdefault((run_id, sink), []).append((key, fingerprint))
        journal = [(run_id, sink, json.dumps(pairs)) for (run_id, sink), pairs in packed.items()]
    marks = ", ".join(["?"] * len(journal[0]))
    if kind == "sqlite":
        import sqlite3

        db = sqlite3.connect(target)
        for statement in statements:
            db.execute(statement)
        db.executemany(f"INSERT INTO journal VALUES ({marks})", journal)
        db.commit()
        db.close()
        return
    import psycopg

    with psycopg.connect(target, autocommit=True) as db:
        for statement in [*statements, "CREATE INDEX journal_by_run ON journal (run_id)"]:
            db.execute(statement)
        db.cursor().executemany(f"INSERT INTO journal VALUES ({marks.replace('?', '%s')})", journal)


@pytest.mark.parametrize("version", [3, 4])
def test_an_older_journal_is_repacked_and_a_dead_run_s_deliveries_still_count(target: str, version: int) -> None:
    """A run that died under schema 3 (a journal row per pair) or 4 (pairs packed in an array) left its journal:
    after the upgrade it is packed as this schema packs it, counted by ``state show``, exported, and folded by
    the next run as before (keys JSON must escape included)."""
    store = open_store(target)
    dead = store.start_run("job")
    store.close()
    odd = 'say "hi" \\ \t ✓'
    rows = [(dead, "out", "a", "fa"), (dead, "out", "b", "fb"), (dead, "out", "a", "fa2"), (dead, "log", "a", "fa")]
    rows.append((dead, "out", odd, "fo"))
    as_old_schema(target, version, rows)
    store = open_store(target)
    try:
        assert store.summary("job")["deliveries"] == {"out": 4, "log": 1}
        exported = {(row["sink"], row["key"]): row["fingerprint"] for row in store.export("job")["deliveries"]}
        assert exported == {("out", "a"): "fa fa2", ("out", "b"): "fb", ("log", "a"): "fa", ("out", odd): "fo"}
        store.start_run("job")  # folds the dead run's journal
        delivered = store.delivered("job", "out", ["a", "b", odd])
        assert {key: set(value.split()) for key, value in delivered.items()} == {
            "a": {"fa", "fa2"},
            "b": {"fb"},
            odd: {"fo"},
        }
        assert store.delivered("job", "log", ["a", "b"]) == {"a": "fa"}
    finally:
        store.close()


def test_intents_and_objects(store: StateStore) -> None:
    intent = store.open_intent("job", "contacts", ["a", "b"], 100.0)
    assert store.open_intents("job", "contacts") == {"a": 100.0, "b": 100.0}
    store.close_intent(intent, "job", "contacts", {"a": {"output": "created", "id": "1"}})
    assert store.open_intents("job", "contacts") == {}
    assert store.objects("job", "contacts", ["a", "b"]) == {"a": {"output": "created", "id": "1"}}
    store.put_objects("job", "dedupe", {"a": {"first": "k1"}, "b": {"first": "k2"}})
    store.put_objects("job", "dedupe", {"b": {"first": "k3"}})
    assert store.objects("job", "dedupe", ["a", "b"]) == {"a": {"first": "k1"}, "b": {"first": "k3"}}
    assert store.open_intents("job", "dedupe") == {}


def test_all_objects_lists_one_components_values(store: StateStore) -> None:
    store.put_objects("job", "deliveries", {"r1": {"status": "pending"}, "r2": {"status": "pending"}})
    store.put_objects("job", "deliveries", {"r2": {"status": "delivered"}})
    store.put_objects("job", "other", {"x": {}})
    store.put_objects("other job", "deliveries", {"r3": {}})
    assert store.all_objects("job", "deliveries") == {"r1": {"status": "pending"}, "r2": {"status": "delivered"}}
    assert store.all_objects("job", "nothing") == {}


def test_the_cache_is_shared_between_jobs_and_expires(store: StateStore) -> None:
    store.cache_put("apollo https://api x", {"p1": {"person": {"id": 1}}})
    assert store.cache_get("apollo https://api x", ["p1", "p2"], 60) == {"p1": {"person": {"id": 1}}}
    assert store.cache_get("apollo other-account", ["p1"], 60) == {}
    time.sleep(0.05)
    assert store.cache_get("apollo https://api x", ["p1"], 0.01) == {}


def test_summary_reset_and_export_import_between_stores(store: StateStore, tmp_path: Path) -> None:
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [("k", "f")], {"n": 1})
    store.complete_run("job", run_id)
    store.open_intent("job", "c", ["k"], 1.0)
    store.cache_put("ns", {"i": {"v": 1}})
    store.acquire_lock("job", new_owner(), 30)
    summary = store.summary("job")
    assert summary["completed_records"] == 1 and summary["deliveries"] == {"out": 1}
    assert summary["lock"]["host"] == socket.gethostname() and not summary["lock"]["expired"]
    exported = json.loads(json.dumps(store.export("job")))
    assert "locks" not in exported  # a lease never travels to another store

    other = open_store(str(tmp_path / "other.db"))
    other.import_("job", exported)
    assert other.completed("job", ["k"]) == {"k": "f"} and other.cache_get("ns", ["i"], 60) == {"i": {"v": 1}}
    assert other.start_run("job") > run_id  # ids continue after the imported ones
    other.close()
    store.import_("job", exported)  # importing into the store itself keeps ids usable
    assert store.start_run("job") > run_id
    assert store.open_intent("job", "c", ["z"], 2.0) > 0

    store.reset("job", {"delivered"})
    assert store.completed("job", ["k"]) == {} and store.cache_get("ns", ["i"], 60)
    store.reset("job", {"cache"})
    assert store.cache_get("ns", ["i"], 60) == {}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other/1"), "not a crmsync state export"),
        (lambda d: d.update(deliveries={"x": 1}), "deliveries: expected a list"),
        (lambda d: d["deliveries"].append({"sink": "s", "key": "k", "fingerprint": "f"}), "missing run_id"),
        (lambda d: d["completed"].append({"key": "k", "fingerprint": "f", "run_id": 1, "evil": 1}), "unknown"),
        (lambda d: d["cache"].append({"namespace": "n", "identity": "i", "value": 3, "stored_at": 1}), "value"),
    ],
)
def test_an_invalid_import_changes_nothing(store: StateStore, mutate, message: str) -> None:
    run_id = store.start_run("job")
    store.commit_batch("job", run_id, "out", [("k", "f")])
    data = json.loads(json.dumps(store.export("job")))
    assert [(row["key"], row["run_id"]) for row in data["deliveries"]] == [("k", run_id)]  # journaled, exported
    mutate(data)
    with pytest.raises(ValueError, match=message):
        store.import_("job", data)
    store.start_run("job")
    assert store.delivered("job", "out", ["k"]) == {"k": "f"}


def test_a_resumed_run_remembers_every_version_a_sink_committed_across_batches(store: StateStore) -> None:
    """A run killed after a sink committed two versions of one key: the run that resumes meets them in
    two batches, and must skip both (re-stamping the first must not make it forget the second)."""
    from connector_core.ledger import Ledger, delivery_pairs
    from connector_core.records import Record

    def record(key: str, data: dict[str, object]) -> Record:
        from connector_core.records import content_key

        return Record(data=data, key=key, source="src", position=1)._replace(fingerprint=content_key(data))

    first, second = record("k", {"v": 1}), record("k", {"v": 2})
    killed = Ledger(store, "job", max_attempts=3)
    killed.delivered("out", delivery_pairs([first]), None)
    killed.delivered("out", delivery_pairs([second]), None)
    if killed.heartbeat is not None:
        killed.heartbeat.stop()
    store.release_lock("job", killed.owner["token"])  # as a takeover would; the run never settled

    resumed = Ledger(store, "job", max_attempts=3)
    assert resumed.unseen("out", [first]) == []
    assert resumed.unseen("out", [second]) == []  # was written a second time
    assert resumed.unseen("out", [record("k", {"v": 3})]) != []
    if resumed.heartbeat is not None:
        resumed.heartbeat.stop()


@pytest.mark.parametrize("transient", [False, True])
@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_batch_of_rejects_is_recorded_as_its_rejects_one_at_a_time(
    target: str, tmp_path: Path, transient: bool, max_attempts: int
) -> None:
    """New keys only (a first run's batch), a key met twice in one batch, and keys an earlier run rejected: the
    table ends as it would were each reject recorded on its own, in order."""

    def reject(key: str, fingerprint: str, data: dict[str, str], position: int) -> Reject:
        return Reject(
            key, fingerprint, component="m", reason="bad", data=encode_json(data), source="s", position=position
        )

    earlier = [reject("old", "f", {}, 1)]
    batches = [
        [reject(f"k{n}", f"f{n}", {"é": "東"}, n) for n in range(5)],
        [reject("d", fp, {}, 9) for fp in ("1", "2")],
        [reject(key, "f", {}, 2) for key in ("old", "fresh")],
    ]

    def recorded(one_at_a_time: bool, name: str) -> tuple[list[dict[str, object]], dict[str, str]]:
        store = open_store(target if target.startswith("postgres") else str(tmp_path / name))
        try:
            run_id = store.start_run(name)
            store.record_rejects(name, run_id, earlier, max_attempts=3)
            store.complete_run(name, run_id)
            run_id = store.start_run(name)
            for batch in batches:
                for part in [[reject] for reject in batch] if one_at_a_time else [batch]:
                    store.record_rejects(name, run_id, part, max_attempts, transient=transient)
            store.complete_run(name, run_id)
            # In key order: rows written by one call share their time, by several calls they need not.
            rows = [{k: v for k, v in row.items() if k != "updated_at"} for row in store.rejects(name)]
            rows.sort(key=lambda row: str(row["key"]))
            return rows, store.completed(name, [str(row["key"]) for row in rows])
        finally:
            store.close()

    assert recorded(False, "batch") == recorded(True, "single")

"""The streaming engine: routing, batching, concurrency, failures, error budget, provenance, back-pressure."""

from __future__ import annotations

import pytest

from connector_core import hookimpl
from connector_core.components import Emitter, Mapper, Source
from connector_core.records import Record

from . import kit
from .conftest import Jobs


def data(sink: str) -> list[int]:
    return sorted(row["i"] for row in kit.STORE[sink])


def test_fan_out_gives_every_sink_all_records(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: fan
        sources:
          nums: {type: t.numbers, count: 25}
        sinks:
          left: {type: t.collect, inputs: [nums], batch_size: 4}
          right: {type: t.collect, inputs: [nums], batch_size: 7}
    """)
    assert report.status == "success", report.failure
    assert data("left") == data("right") == list(range(25))
    assert report.delivered == {"left": 25, "right": 25}
    assert report.streams == {"nums": 25}


def test_multi_output_routing(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: routes
        sources:
          nums: {type: t.numbers, count: 10}
        mappers:
          split: {type: t.split, inputs: [nums]}
        sinks:
          even: {type: t.collect, inputs: [split]}
          odd: {type: t.collect, inputs: [split.odd]}
    """)
    assert report.status == "success", report.failure
    assert data("even") == [0, 2, 4, 6, 8]
    assert data("odd") == [1, 3, 5, 7, 9]
    assert report.streams == {"nums": 10, "split": 5, "split.odd": 5}


def test_consumer_reading_two_inputs_gets_both(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: merge
        sources:
          nums: {type: t.numbers, count: 6}
          more: {type: t.anumbers, count: 3}
        mappers:
          split: {type: t.split, inputs: [nums]}
        sinks:
          both: {type: t.collect, inputs: [split, split.odd]}
          all: {type: t.collect, inputs: [split.odd, more, split]}
    """)
    assert report.status == "success", report.failure
    assert data("both") == list(range(6))
    assert sorted((row["i"], "async" in row) for row in kit.STORE["all"]) == sorted(
        [(i, False) for i in range(6)] + [(i, True) for i in range(3)]
    )


def test_batch_size_is_respected(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: batches
        settings: {source_batch_size: 10}
        sources:
          nums: {type: t.numbers, count: 50}
        mappers:
          probe: {type: t.probe, inputs: [nums], batch_size: 7}
          default_size: {type: t.probe, inputs: [nums]}
        sinks:
          out: {type: t.collect, inputs: [probe, default_size]}
    """)
    assert report.status == "success", report.failure
    assert kit.STORE["probe"] == [7] * 7 + [1]
    assert kit.STORE["default_size"] == [50], "Mapper.batch_size (250) applies when the spec gives none"
    assert len(kit.STORE["out"]) == 100


@pytest.mark.parametrize(("concurrency", "expected"), [(1, 1), (4, 4)])
def test_concurrency_overlaps_async_calls(jobs: Jobs, concurrency: int, expected: int) -> None:
    report = jobs.run(f"""
        version: 1
        job: concurrent
        sources:
          nums: {{type: t.numbers, count: 60}}
        mappers:
          probe: {{type: t.probe, sleep: 0.01, inputs: [nums], batch_size: 5, concurrency: {concurrency}}}
        sinks:
          out: {{type: t.collect, inputs: [probe]}}
    """)
    assert report.status == "success", report.failure
    assert kit.COUNTERS["probe.max_in_flight"] == expected
    assert data("out") == list(range(60))


def test_mapper_exception_sends_its_batch_to_errors_and_fails_the_run(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: explode
        sources:
          nums: {type: t.numbers, count: 10}
        mappers:
          boom: {type: t.explode, inputs: [nums], batch_size: 2, fail_on: [3], message: "the API said no"}
        sinks:
          out: {type: t.collect, inputs: [boom]}
          errs: {type: t.collect, inputs: [errors]}
    """)
    assert report.status == "failed"
    assert "boom failed: RuntimeError: the API said no" in report.failure
    assert data("out") == [0, 1, 4, 5, 6, 7, 8, 9]
    assert data("errs") == [2, 3]
    assert {row["_error"]["reason"] for row in kit.STORE["errs"]} == {"boom failed: RuntimeError: the API said no"}
    assert {row["_error"]["component"] for row in kit.STORE["errs"]} == {"boom"}
    assert report.errors["count"] == 2


SPLIT_REJECTS = """
    version: 1
    job: budget
    settings: {settings}
    sources:
      nums: {{type: t.numbers, count: 10}}
    mappers:
      split: {{type: t.split, inputs: [nums], reject: [2, 5], reason: invalid email}}
    sinks:
      even: {{type: t.collect, inputs: [split]}}
      odd: {{type: t.collect, inputs: [split.odd]}}
"""


def test_record_errors_alone_do_not_fail_the_run(jobs: Jobs) -> None:
    report = jobs.run(SPLIT_REJECTS.format(settings="{}"))
    assert report.status == "success", report.failure
    assert report.errors["count"] == 2 and report.errors["rate"] == 0.2


def test_max_error_rate_exceeded_fails_the_run(jobs: Jobs) -> None:
    report = jobs.run(SPLIT_REJECTS.format(settings="{max_error_rate: 0.1}"))
    assert report.status == "failed"
    assert report.failure == "error rate 20.00% exceeds max_error_rate 10.00%"
    assert data("even") == [0, 4, 6, 8], "the run still delivers what it could"


def test_max_error_rate_not_exceeded(jobs: Jobs) -> None:
    report = jobs.run(SPLIT_REJECTS.format(settings="{max_error_rate: 0.2}"))
    assert report.status == "success", report.failure


@pytest.mark.parametrize(("in_spec", "override", "status"), [("0.5", 0.1, "failed"), ("0.0", 0.25, "success")])
def test_max_error_rate_argument_overrides_the_spec(jobs: Jobs, in_spec: str, override: float, status: str) -> None:
    report = jobs.run(SPLIT_REJECTS.format(settings=f"{{max_error_rate: {in_spec}}}"), max_error_rate=override)
    assert report.status == status


def test_stop_on_error_stops_at_the_first_rejected_record(jobs: Jobs) -> None:
    text = SPLIT_REJECTS.format(settings="{stop_on_error: true, source_batch_size: 1}")
    report = jobs.run(
        text.replace("count: 10", "count: 500").replace("inputs: [nums],", "inputs: [nums], batch_size: 1,")
    )
    assert report.status == "failed"
    assert report.failure == "stop_on_error: split rejected nums:3: invalid email"
    assert report.input_records < 500
    assert kit.STORE["even.closed"] == [False] and kit.STORE["odd.closed"] == [False]


def test_every_record_ends_in_exactly_one_place(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: conservation
        settings: {source_batch_size: 16}
        sources:
          nums: {type: t.numbers, count: 300, bad: [0, 17, 299]}
          more: {type: t.anumbers, count: 50}
        mappers:
          boom: {type: t.explode, inputs: [nums, more], batch_size: 8, fail_on: [42]}
          split: {type: t.split, inputs: [boom], reject: [7, 100, 101], batch_size: 13, concurrency: 3}
        sinks:
          even: {type: t.collect, inputs: [split], reject: [10, 12], batch_size: 9}
          odd: {type: t.collect, inputs: [split.odd], batch_size: 50}
          errs: {type: t.collect, inputs: [errors]}
    """)
    delivered = report.delivered["even"] + report.delivered["odd"]
    assert report.input_records == 350
    assert delivered + report.errors["count"] == 350
    assert report.delivered["errs"] == report.errors["count"] == report.streams["errors"]
    keys = [(row["i"], "async" in row) for row in kit.STORE["even"] + kit.STORE["odd"] + kit.STORE["errs"]]
    assert len(keys) == len(set(keys)) == 350, "no record lost or duplicated"


def test_error_records_carry_provenance(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: provenance
        sources:
          nums: {type: t.numbers, count: 5, bad: [1], message: "line 2 is garbled"}
          ids: {type: t.numbers, count: 5, key: [i]}
        mappers:
          split: {type: t.split, inputs: [nums], reject: [3], reason: no email}
        sinks:
          out: {type: t.collect, inputs: [split, split.odd, ids], reject: [4], reason: duplicate}
          errs: {type: t.collect, inputs: [errors]}
    """)
    assert report.status == "success", report.failure
    errors = sorted((row["_error"]["source"], row["_error"]["position"], row) for row in kit.STORE["errs"])
    details = [row["_error"] for _, _, row in errors]
    assert details == [
        {"component": "out", "reason": "duplicate", "source": "ids", "position": 5},
        {"component": "nums", "reason": "line 2 is garbled", "source": "nums", "position": 2},
        {"component": "split", "reason": "no email", "source": "nums", "position": 4},
        {"component": "out", "reason": "duplicate", "source": "nums", "position": 5},
    ]
    assert [row["i"] for _, _, row in errors] == [4, 1, 3, 4], "the original data is kept beside _error"
    first = {(entry["source"], entry["position"]): entry for entry in report.errors["first"]}
    assert first[("ids", 5)]["key"] == "4", "the source's key option is the record key"
    assert len(first[("nums", 2)]["key"]) == 24, "without key option, a content hash"


def test_async_source(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: async
        settings: {source_batch_size: 3}
        sources:
          nums: {type: t.anumbers, count: 10}
        sinks:
          out: {type: t.collect, inputs: [nums]}
    """)
    assert report.status == "success", report.failure
    assert kit.STORE["out"] == [{"i": i, "async": True} for i in range(10)]


@pytest.mark.parametrize("source_type", ["t.numbers", "t.anumbers"])
def test_source_raising_midway_fails_the_run(jobs: Jobs, source_type: str) -> None:
    report = jobs.run(f"""
        version: 1
        job: broken
        settings: {{source_batch_size: 5}}
        sources:
          nums: {{type: {source_type}, count: 100, fail_at: 12, message: "socket closed at row 13"}}
        sinks:
          out: {{type: t.collect, inputs: [nums]}}
    """)
    assert report.status == "failed"
    assert report.failure == "ValueError: socket closed at row 13"
    assert kit.STORE["out.closed"] == [False], "sinks learn the run failed"
    assert len(kit.STORE["out"]) <= 10


def test_sink_close_error_fails_the_run(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: close
        sources:
          nums: {type: t.numbers, count: 3}
        sinks:
          out: {type: t.collect, inputs: [nums], close_error: disk full}
    """)
    assert report.status == "failed"
    assert report.failure == "out failed to close: OSError: disk full"


def test_a_sink_that_cannot_prepare_leaves_every_sink_closed_as_failed(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: two_phase
        sources:
          nums: {type: t.numbers, count: 3}
        sinks:
          first: {type: t.collect, inputs: [nums]}
          full: {type: t.collect, inputs: [nums], prepare_error: disk full}
          last: {type: t.collect, inputs: [nums]}
    """)
    assert report.status == "failed"
    assert report.failure == "full failed to close: OSError: disk full"
    assert kit.STORE["first.closed"] == kit.STORE["full.closed"] == kit.STORE["last.closed"] == [False]


def test_sinks_closed_after_one_fails_to_close_keep_their_earlier_output(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: close_order
        sources:
          nums: {type: t.numbers, count: 3}
        sinks:
          first: {type: t.collect, inputs: [nums]}
          second: {type: t.collect, inputs: [nums]}
    """)
    assert report.status == "success", report.failure
    assert sorted(kit.STORE["prepared"]) == ["first", "second"], "every sink prepares before any closes"
    kit.STORE.clear()
    report = jobs.run("""
        version: 1
        job: close_order
        sources:
          nums: {type: t.numbers, count: 3}
        sinks:
          first: {type: t.collect, inputs: [nums], close_error: rename refused}
          second: {type: t.collect, inputs: [nums], close_error: rename refused}
    """)
    assert report.status == "failed"
    closes = kit.STORE["first.closed"] + kit.STORE["second.closed"]
    assert sorted(closes) == [False, True], "the sink closed after the first failure is told the run failed"


@pytest.mark.parametrize("order", [["db", "files"], ["files", "db"]])
def test_a_commit_that_can_fail_comes_before_the_sinks_that_publish_by_renaming(jobs: Jobs, order: list[str]) -> None:
    """A database's COMMIT can refuse after it prepared; a rename cannot. Whatever the spec's order, the
    database closes first, so its refusal reaches the file sink before that publishes."""
    sinks = {
        "db": "{type: t.database, inputs: [nums], close_error: disk full at COMMIT}",
        "files": "{type: t.collect, inputs: [nums]}",
    }
    report = jobs.run(
        "version: 1\njob: commit_first\nsources:\n  nums: {type: t.numbers, count: 3}\nsinks:\n"
        + "".join(f"  {name}: {sinks[name]}\n" for name in order)
    )
    assert report.status == "failed" and report.failure == "db failed to close: OSError: disk full at COMMIT"
    assert kit.STORE["db.closed"] == [True] and kit.STORE["files.closed"] == [False]


def test_successful_run_closes_everything_with_success(jobs: Jobs) -> None:
    report = jobs.run("""
        version: 1
        job: ok
        connections:
          crm: {type: t.token, token: abcd}
        sources:
          nums: {type: t.numbers, count: 0}
        sinks:
          out: {type: t.collect, inputs: [nums], connection: crm}
    """)
    assert report.status == "success", report.failure
    assert report.input_records == 0
    assert kit.STORE["out.closed"] == [True]
    assert kit.STORE["out.token"] == ["abcd"]
    assert kit.STORE["connections"] == [("open", "crm"), ("close", "crm")]


def test_emitting_to_an_undeclared_output_is_a_record_error(jobs: Jobs) -> None:
    class Misroute(Mapper):
        def process(self, batch: list[Record], out: Emitter) -> None:
            for record in batch:
                out.emit(record, "elsewhere" if record.data["i"] == 1 else "default")

    class Plugin:
        @hookimpl
        def register_mappers(registry):
            registry.add("t.misroute", Misroute)

    jobs.run(
        """
        version: 1
        job: misroute
        sources:
          nums: {type: t.numbers, count: 3}
        mappers:
          route: {type: t.misroute, inputs: [nums]}
        sinks:
          out: {type: t.collect, inputs: [route]}
          errs: {type: t.collect, inputs: [errors]}
        """,
        plugins=[("misroute", Plugin)],
    )
    assert data("out") == [0, 2]
    assert [row["_error"]["reason"] for row in kit.STORE["errs"]] == ["route emitted to undeclared output 'elsewhere'"]


def test_source_yielding_something_else_than_records_fails_clearly(jobs: Jobs) -> None:
    class Dicts(Source):
        def read(self):
            yield self.record({"i": 0}, 1)
            yield {"i": 1}

    class Plugin:
        @hookimpl
        def register_sources(registry):
            registry.add("t.dicts", Dicts)

    report = jobs.run(
        """
        version: 1
        job: dicts
        sources:
          rows: {type: t.dicts}
        sinks:
          out: {type: t.collect, inputs: [rows]}
        """,
        plugins=[("dicts", Plugin)],
    )
    assert report.status == "failed"
    assert "rows" in report.failure and "dict" in report.failure


def test_error_sink_failures_do_not_loop(jobs: Jobs, caplog: pytest.LogCaptureFixture) -> None:
    report = jobs.run("""
        version: 1
        job: loop
        sources:
          nums: {type: t.numbers, count: 4}
        mappers:
          split: {type: t.split, inputs: [nums], reject: [1, 2]}
        sinks:
          even: {type: t.collect, inputs: [split]}
          errs: {type: t.collect, inputs: [errors], reject: [2], reason: cannot store}
    """)
    assert report.errors["count"] == 3
    assert report.streams["errors"] == 2
    assert data("errs") == [1]
    assert "error sink errs could not write nums:3" in caplog.text


def test_back_pressure_bounds_records_in_flight(jobs: Jobs) -> None:
    queue_batches, batch = 2, 1000
    report = jobs.run(f"""
        version: 1
        job: pressure
        settings: {{queue_batches: {queue_batches}, source_batch_size: {batch}}}
        sources:
          nums: {{type: t.numbers, count: 200000, track: 1, key: [i]}}
        sinks:
          slow: {{type: t.collect, inputs: [nums], batch_size: {batch}, sleep: 0.001, track: true}}
    """)
    assert report.status == "success", report.failure
    assert report.delivered["slow"] == 200000
    assert kit.COUNTERS["in_flight"] == 0
    # Read but not yet written: queue_batches queued, one the source is filling (blocked on the full queue), one
    # the sink's input loop holds while it waits for a free call, and one handed to a write() call that the
    # event loop has not started yet (the source is woken first). Without back-pressure this would be ~200k.
    assert kit.COUNTERS["max_in_flight"] <= (queue_batches + 3) * batch


DEFER_JOB = """
    version: 1
    job: storm
    sources:
      nums: {type: t.numbers, count: 10}
    mappers:
      split: {type: t.split, inputs: [nums], reject: [1], defer: [2, 4, 6]}
    sinks:
      even: {type: t.collect, inputs: [split]}
      odd: {type: t.collect, inputs: [split.odd]}
      rejected: {type: t.collect, inputs: [errors]}
"""


def test_deferred_records_reach_the_error_stream_marked_transient(jobs: Jobs) -> None:
    report = jobs.run(DEFER_JOB)
    errors = {row["i"]: row["_error"] for row in kit.STORE["rejected"]}
    assert sorted(errors) == [1, 2, 4, 6]
    assert "transient" not in errors[1]
    assert all(errors[i]["transient"] is True and "503" in errors[i]["reason"] for i in (2, 4, 6))
    # Rows in = delivered + error stream; set-aside records are not rejects and do not count in the error rate.
    assert len(kit.STORE["even"]) + len(kit.STORE["odd"]) + len(kit.STORE["rejected"]) == 10
    assert report.errors["count"] == 1
    assert report.errors["set_aside"] == 3
    # Not done until the set-aside records are: exit 1, though what was delivered is delivered (sinks closed
    # with success, so file sinks publish their outputs).
    assert report.status == "failed" and "3 records were set aside" in report.failure
    assert kit.STORE["even.closed"] == [True]


def test_deferred_records_are_retried_by_the_next_run_without_using_attempts(jobs: Jobs, tmp_path) -> None:
    from connector_core.engine import run_sync
    from connector_core.plugin_manager import get_plugin_host
    from connector_core.state.sqlite import SqliteStateStore

    host = get_plugin_host(extra_plugins=[kit.KIT])
    store = SqliteStateStore(tmp_path / "state.db")
    for _storm in range(3):  # more storms than max_attempts: a transient failure never uses one up
        spec = jobs.load(DEFER_JOB.replace("job: storm", "job: storm\n    state: {max_attempts: 2}"))
        run_sync(spec, host, state=store)
    pending = {row["key"]: row for row in store.rejects("storm", "pending")}
    assert len(pending) == 3
    assert [row["reason"] for row in store.rejects("storm", "discarded")] == ["rejected"]  # the real reject
    kit.reset()
    calm = DEFER_JOB.replace("defer: [2, 4, 6]", "defer: []").replace("job: storm", "job: storm\n    state: {}")
    report = run_sync(jobs.load(calm), host, state=store)
    assert report.status == "success", report.failure
    assert sorted(row["i"] for row in kit.STORE["even"]) == [2, 4, 6]  # the rest was delivered by earlier runs
    assert not store.rejects("storm", "pending")


@pytest.mark.parametrize("read", [False, True])
def test_a_set_aside_output_no_sink_reads_goes_to_the_error_stream(jobs: Jobs, read: bool) -> None:
    class Budget(Mapper):
        outputs = ("default", "later")
        quiet_outputs = ("later",)
        deferred_outputs = ("later",)

        def process(self, batch: list[Record], out: Emitter) -> None:
            for record in batch:
                out.emit(record, "later" if record.data["i"] >= 6 else "default")

    class Plugin:
        @hookimpl
        def register_mappers(registry):
            registry.add("t.budget", Budget)

    later = "  later: {type: t.collect, inputs: [spend.later]}\n        " if read else ""
    report = jobs.run(
        f"""
        version: 1
        job: budget
        sources:
          nums: {{type: t.numbers, count: 10}}
        mappers:
          spend: {{type: t.budget, inputs: [nums]}}
        sinks:
          out: {{type: t.collect, inputs: [spend]}}
        {later}  errs: {{type: t.collect, inputs: [errors]}}
        """,
        plugins=[("budget", Plugin)],
    )
    # Nothing lost without state either: the records a run set aside are listed by a sink that reads them, or
    # by the error stream (marked transient) when none does.
    assert data("out") == [0, 1, 2, 3, 4, 5]
    listed = kit.STORE["later"] if read else kit.STORE["errs"]
    assert sorted(row["i"] for row in listed) == [6, 7, 8, 9]
    if not read:
        assert all(row["_error"]["transient"] and "spend.later" in row["_error"]["reason"] for row in listed)
        assert report.errors["set_aside"] == 4
    else:
        assert not kit.STORE.get("errs")


def test_sources_reading_while_the_state_writes_their_positions(jobs: Jobs, tmp_path, monkeypatch) -> None:
    """Two sources reading on their own threads, and a state store slow to write their read positions: the
    positions are handed to the store's thread as they stood, while the loop goes on remembering new ones (it
    once wrote the very dict the loop was adding to: "dictionary changed size during iteration")."""
    import time

    from connector_core import ledger
    from connector_core.engine import run_sync
    from connector_core.plugin_manager import get_plugin_host
    from connector_core.state.sqlite import SqliteStateStore

    class SlowPositions(SqliteStateStore):
        def commit_batch(self, job, run_id, sink, records, checkpoint=None):  # type: ignore[no-untyped-def]
            if sink.startswith("source:"):
                time.sleep(0.01)  # the loop reads the other source's next batch meanwhile
            super().commit_batch(job, run_id, sink, records, checkpoint)

    monkeypatch.setattr(ledger, "SOURCE_POSITION_EVERY_S", 0.0)  # every batch read asks for a write
    store = SlowPositions(tmp_path / "state.db")
    spec = jobs.load("""
        version: 1
        job: two-sources
        sources:
          left: {type: t.numbers, count: 3000}
          right: {type: t.numbers, count: 3000}
        sinks:
          out: {type: t.collect, inputs: [left, right]}
    """)
    report = run_sync(spec, get_plugin_host(extra_plugins=[kit.KIT]), state=store)
    assert report.status == "success", report.failure
    assert len(kit.STORE["out"]) == 6000
    # The last position of each source is written by the run's end: none was dropped by a write in between.
    for source in ("left", "right"):
        assert store.sink_checkpoint("two-sources", f"source:{source}") == {"position": 3000, "records": 3000}
    store.close()

"""Back-pressure: records in flight stay bounded for every graph shape, and no shape deadlocks.

Sources count each record they read into ``COUNTERS["in_flight"]`` (times the number of tracking sinks it
reaches) and tracking sinks count it out again, so ``max_in_flight`` is the most records the job ever held
between reading and writing. Each job reads far more records than its bound: a component that kept taking
input while its output was blocked would hold most of the source at once. Every run has a timeout, so a
deadlock fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from connector_core.engine import Engine
from connector_core.plugin_manager import get_plugin_host
from connector_core.report import RunReport

from . import kit
from .conftest import Jobs

COUNT = 60_000
#: Records per batch everywhere (source, mappers, sinks) unless a shape says otherwise.
BATCH = 500
#: The slow sink: 5 ms per batch of 500, much slower than the source.
SLOW = f"type: t.collect, batch_size: {BATCH}, sleep: 0.005, track: true"
FAST = f"type: t.collect, batch_size: {BATCH}, track: true"
TIMEOUT_S = 60.0


def run_with_timeout(jobs: Jobs, text: str) -> RunReport:
    spec = jobs.load(text)
    host = get_plugin_host(extra_plugins=[kit.KIT])

    async def run() -> RunReport:
        return await asyncio.wait_for(Engine(spec, host).run(), TIMEOUT_S)

    return asyncio.run(run())


# Each shape: (spec body, the tracking sinks, source batch size, the bound on records in flight). A bound is
# the sum, over the components, of what each may hold: its input queue (queue_batches of its batches), its
# re-batching buffer (up to one batch plus one input batch), one batch per call slot (kept until its results
# were handed on), and one batch per source. The bounds round that sum up; without back-pressure a run holds
# most of COUNT.
SHAPES = {
    "mapper chain": (
        f"""
        sources:
          nums: {{type: t.numbers, count: {COUNT}, track: 1}}
        mappers:
          enrich: {{type: t.probe, inputs: [nums], batch_size: 50, concurrency: 8, sleep: 0.0005}}
          stamp: {{type: t.stamp, inputs: [enrich], values: {{ok: true}}}}
        sinks:
          slow: {{inputs: [stamp], {SLOW}}}
        """,
        ["slow"],
        BATCH,
        10_000,
    ),
    "fan-out to a fast and a slow consumer of one output": (
        f"""
        sources:
          nums: {{type: t.numbers, count: {COUNT}, track: 2}}
        mappers:
          enrich: {{type: t.probe, inputs: [nums], concurrency: 4}}
        sinks:
          fast: {{inputs: [enrich], {FAST}}}
          slow: {{inputs: [enrich], {SLOW}}}
        """,
        ["fast", "slow"],
        BATCH,
        2 * 10_000,
    ),
    "multiple outputs, one slow": (
        f"""
        sources:
          nums: {{type: t.numbers, count: {COUNT}, track: 1}}
        mappers:
          split: {{type: t.split, inputs: [nums]}}
        sinks:
          even: {{inputs: [split], {FAST}}}
          odd: {{inputs: [split.odd], {SLOW}}}
        """,
        ["even", "odd"],
        BATCH,
        8_000,
    ),
    "fan-in of two sources": (
        f"""
        sources:
          left: {{type: t.numbers, count: {COUNT // 2}, track: 1}}
          right: {{type: t.numbers, count: {COUNT // 2}, track: 1}}
        mappers:
          enrich: {{type: t.probe, inputs: [left, right], concurrency: 4}}
        sinks:
          slow: {{inputs: [enrich], {SLOW}}}
        """,
        ["slow"],
        BATCH,
        8_000,
    ),
    "a slow error-stream sink": (
        # Every other batch fails as a whole (fail_on hits one record in each) and goes to the error stream.
        f"""
        sources:
          nums: {{type: t.numbers, count: {COUNT}, track: 1}}
        mappers:
          check: {{type: t.explode, inputs: [nums], fail_on: {list(range(0, COUNT, 2 * BATCH))}}}
        sinks:
          good: {{inputs: [check], {FAST}}}
          errors_out: {{inputs: [errors], {SLOW}}}
        """,
        ["good", "errors_out"],
        BATCH,
        8_000,
    ),
    "a sink with an output feeding a slow sink": (
        f"""
        sources:
          nums: {{type: t.numbers, count: {COUNT}, track: 1}}
        mappers:
          enrich: {{type: t.probe, inputs: [nums], concurrency: 4}}
        sinks:
          relay: {{type: t.relay, inputs: [enrich], concurrency: 4}}
          slow: {{inputs: [relay.written], {SLOW}}}
        """,
        ["slow"],
        BATCH,
        12_000,
    ),
    "large source batches into small ones": (
        f"""
        sources:
          nums: {{type: t.numbers, count: {COUNT}, track: 1}}
        mappers:
          enrich: {{type: t.probe, inputs: [nums], batch_size: 10, concurrency: 8}}
          regroup: {{type: t.probe, inputs: [enrich], batch_size: 700}}
        sinks:
          slow: {{inputs: [regroup], type: t.collect, batch_size: 300, sleep: 0.005, track: true}}
        """,
        ["slow"],
        2000,
        12_000,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_records_in_flight_stay_bounded(jobs: Jobs, shape: str) -> None:
    body, sinks, source_batch, bound = SHAPES[shape]
    settings = f"settings: {{queue_batches: 2, source_batch_size: {source_batch}}}\n"
    report = run_with_timeout(jobs, "version: 1\njob: shape\n" + settings + textwrap.dedent(body))
    # Nothing lost on the way: every record read reached every tracking sink it was meant for.
    assert kit.COUNTERS["in_flight"] == 0, report.failure
    assert sum(len(kit.STORE[sink]) for sink in sinks) >= COUNT
    assert kit.COUNTERS["max_in_flight"] <= bound, f"{kit.COUNTERS['max_in_flight']} records held at once"

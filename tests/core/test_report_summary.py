"""The end-of-run table: one row per count, each labelled for what it counts."""

from __future__ import annotations

import re

from connector_core.report import RunReport


def report(count: int, set_aside: int) -> RunReport:
    return RunReport(
        status="success",
        job="job",
        started_at="2026-11-24T00:00:00+00:00",
        duration_s=0.5,
        input_records=200,
        streams={"leads": 200, "errors": count + set_aside},
        delivered={"out": 200 - count - set_aside, "errs": count + set_aside},
        errors={"count": count, "rate": count / 200, "set_aside": set_aside, "first": []},
    )


def rows(summary: str) -> dict[str, str]:
    """``{row name: the rest of its line}`` of the table (names and counts are set apart by 2+ spaces)."""
    return dict(re.split(r" {2,}", line.strip(), maxsplit=1) for line in summary.splitlines()[1:])


def test_the_error_stream_and_what_it_holds_are_told_apart() -> None:
    table = rows(report(count=5, set_aside=3).summary())
    assert table["errors"] == "8"  # the stream: rejects and set-aside records alike
    assert table["rejected"] == "5  (2.50% of the input)"
    assert table["set aside"] == "3  (transient: a run with state retries them)"
    assert list(table).count("errors") == 1


def test_nothing_set_aside_adds_no_row() -> None:
    table = rows(report(count=0, set_aside=0).summary())
    assert table["rejected"] == "0  (0.00% of the input)"
    assert "set aside" not in table

"""The ``filter`` mapper."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crmsync_plugins.transforms.filter import Condition, FilterMapper, FilterOptions

from .kit import MapperFactory, Pipeline, Write

ROWS: list[dict[str, Any]] = [
    {"id": 1, "country": "FR", "employees": "120", "email": "a@acme.com", "tags": ["vip"], "since": "2021-03-01"},
    {"id": 2, "country": "DE", "employees": 8, "email": "", "tags": [], "since": "2019-12-31"},
    {"id": 3, "country": "fr", "employees": "n/a", "since": "2023-07-15"},
    {"id": 4, "country": None, "employees": 45.0, "email": "b@beta.io", "tags": ["new", "vip"]},
]


def passing(mapper: MapperFactory, *where: dict[str, Any], match: str = "all") -> list[int]:
    routed, failures = mapper(FilterMapper, {"where": list(where), "match": match})(*ROWS)
    assert failures == []
    rejected = [row["id"] for row in routed.get("rejected", [])]
    passed = [row["id"] for row in routed.get("default", [])]
    assert sorted(passed + rejected) == [1, 2, 3, 4]
    return passed


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "country", "eq": "FR"}, [1]),
        ({"field": "employees", "eq": 120}, [1]),
        ({"field": "employees", "eq": "45"}, [4]),
        ({"field": "country", "ne": "FR"}, [2, 3, 4]),
        ({"field": "country", "in": ["FR", "fr"]}, [1, 3]),
        ({"field": "employees", "in": [8, 45]}, [2, 4]),
        ({"field": "country", "not_in": ["FR", "DE"]}, [3, 4]),
        ({"field": "email", "exists": True}, [1, 2, 4]),
        ({"field": "country", "exists": False}, [4]),
        ({"field": "email", "empty": True}, [2, 3]),
        ({"field": "tags", "empty": False}, [1, 4]),
        ({"field": "email", "contains": "@acme."}, [1]),
        ({"field": "tags", "contains": "vip"}, [1, 4]),
        ({"field": "email", "regex": r"\.(com|io)$"}, [1, 4]),
        ({"field": "employees", "gt": 45}, [1]),
        ({"field": "employees", "gte": 45}, [1, 4]),
        ({"field": "employees", "lt": 45}, [2]),
        ({"field": "employees", "lte": "45"}, [2, 4]),
        ({"field": "since", "gte": "2021-01-01"}, [1, 3]),
    ],
)
def test_operators(mapper: MapperFactory, condition: dict[str, Any], expected: list[int]) -> None:
    assert passing(mapper, condition) == expected


def test_numbers_compare_numerically_not_as_text(mapper: MapperFactory) -> None:
    # As text "120" < "45"; as numbers it is not. "n/a" is not a number and not compared as one.
    assert passing(mapper, {"field": "employees", "gt": 100}) == [1]


def test_all_and_any(mapper: MapperFactory) -> None:
    where = [{"field": "country", "in": ["FR", "fr"]}, {"field": "email", "empty": False}]
    assert passing(mapper, *where) == [1]
    assert passing(mapper, *where, match="any") == [1, 3, 4]


def test_rejected_output_in_a_job(pipeline: Pipeline, write: Write, tmp_path: Any) -> None:
    write("in.csv", "id,country\n1,FR\n2,DE\n3,FR\n")
    mappers = {"only_fr": {"type": "filter", "where": [{"field": "country", "eq": "FR"}]}}
    result = pipeline({"type": "csv", "path": "in.csv", "key": "id"}, mappers)
    assert [r["_key"] for r in result.records] == ["1", "3"]
    assert result.report.streams["only_fr.rejected"] == 1
    assert result.errors == []


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "a"}, "a condition takes exactly one operator of eq, ne, in, not_in,"),
        ({"field": "a", "eq": 1, "gt": 0}, "(found: eq, gt)"),
        ({"field": "a", "regex": "(unclosed"}, "invalid regex '(unclosed': missing )"),
    ],
)
def test_condition_validation(condition: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Condition(**condition)


def test_where_needs_a_condition() -> None:
    with pytest.raises(ValueError, match="where needs at least one condition"):
        FilterOptions(where=[])


def test_a_choice_outside_the_allowed_ones_names_them(tmp_path) -> None:
    from connector_core.errors import SpecError
    from connector_core.testing import load, write_spec

    spec = write_spec(
        tmp_path,
        """
        version: 1
        job: x
        sources: {a: {type: jsonl, path: a.jsonl}}
        mappers: {f: {type: filter, inputs: [a], match: some, where: [{field: x, eq: 1}]}}
        sinks: {o: {type: jsonl, inputs: [f], path: o.jsonl}}
        """,
    )
    with pytest.raises(SpecError, match=r"job.yaml:5: \$\.mappers\.f\.match: expected one of: all, any; got 'some'"):
        load(spec)


@pytest.mark.parametrize(
    ("condition", "where", "message"),
    [
        ("{field: x, gte: [50]}", "where[0].gte", "expected a single value (text, number, true or false), got a list"),
        ("{field: x, eq: {a: 1}}", "where[0].eq", "got a mapping"),
        ("{field: x, contains: [a]}", "where[0].contains", "got a list"),
        ("{field: x, in: FR}", "where[0].in", "expected a list, got 'FR'"),
        ("{field: x, not_in: [[1]]}", "where[0].not_in[0]", "got a list"),
        ("{field: x, exists: maybe}", "where[0].exists", "expected true or false, got 'maybe'"),
    ],
)
def test_an_operand_of_the_wrong_type_is_refused_when_the_spec_loads(
    tmp_path: Any, condition: str, where: str, message: str
) -> None:
    from connector_core.errors import SpecError
    from connector_core.testing import load, write_spec

    spec = write_spec(
        tmp_path,
        f"""
        version: 1
        job: x
        sources: {{a: {{type: jsonl, path: a.jsonl}}}}
        mappers: {{f: {{type: filter, inputs: [a], where: [{condition}]}}}}
        sinks: {{o: {{type: jsonl, inputs: [f], path: o.jsonl}}}}
        """,
    )
    with pytest.raises(SpecError) as caught:
        load(spec)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{spec}:5: $.mappers.f.{where}: "), problem
    assert message in problem


def test_a_date_operand_compares_as_its_text(mapper: MapperFactory) -> None:
    import datetime

    routed, _ = mapper(FilterMapper, {"where": [{"field": "since", "gte": datetime.date(2021, 1, 1)}]})(*ROWS)
    assert [row["id"] for row in routed["default"]] == [1, 3]

"""The ``sqlite`` source."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from .kit import Pipeline


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER, name TEXT, country TEXT)")
        db.executemany(
            "INSERT INTO people VALUES (?, ?, ?)", [(1, "Ada", "GB"), (2, "Grace", "US"), (3, "Charles", "GB")]
        )
    db.close()
    return path


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("SELECT id, name FROM people WHERE country = :country ORDER BY id", {"country": "GB"}),
        ("SELECT id, name FROM people WHERE country = ? ORDER BY id", ["GB"]),
    ],
)
def test_query_with_params(pipeline: Pipeline, database: Path, query: str, params: object) -> None:
    result = pipeline({"type": "sqlite", "path": "crm.db", "query": query, "params": params, "key": "id"})
    assert [(r["id"], r["name"], r["_position"], r["_key"]) for r in result.records] == [
        (1, "Ada", 1, "1"),
        (3, "Charles", 2, "3"),
    ]


def test_bad_query_fails_the_run_before_reading(pipeline: Pipeline, database: Path) -> None:
    report = pipeline({"type": "sqlite", "path": "crm.db", "query": "SELECT nope FROM people"}).report
    assert report.status == "failed"
    assert "no such column: nope" in report.failure


def test_source_never_writes(pipeline: Pipeline, database: Path) -> None:
    report = pipeline({"type": "sqlite", "path": "crm.db", "query": "DELETE FROM people"}).report
    assert report.status == "failed"
    assert "readonly" in report.failure
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM people").fetchone() == (3,)


def test_missing_database_fails_and_is_not_created(pipeline: Pipeline, tmp_path: Path) -> None:
    report = pipeline({"type": "sqlite", "path": "missing.db", "query": "SELECT 1"}).report
    assert report.status == "failed"
    assert str(tmp_path / "missing.db") in report.failure
    assert not (tmp_path / "missing.db").exists()

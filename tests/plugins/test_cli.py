"""End to end through the command line: every built-in in one job."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from connector_core.cli import main
from connector_core.errors import SpecError
from connector_core.testing import load, read_jsonl

from .kit import Write

PEOPLE = """\
Full Name;Email;Website;Employees
Dr. Ada Lovelace;ADA@Example.com;https://www.example.com/about;120
Grace Hopper;grace@navy.mil;navy.mil;80000
Ada L.;ada@example.com ;example.com;120
Charles Babbage;;babbage.org;3
Tiny Co;tiny@tiny.io;tiny.io;2
"""

SPEC = """\
version: 1
job: people
sources:
  people:
    type: csv
    path: people.csv
    normalize_headers: snake
mappers:
  shape:
    type: fields
    inputs: [people]
    fields:
      email: {strip: true, lower: true, required: true}
      first_name: {from: full_name, transform: first_name}
      last_name: {from: full_name, transform: last_name}
      domain: {from: website, transform: url_domain}
      employees: {type: int}
      hashed_email: {from: email, transform: sha256}
  big:
    type: filter
    inputs: [shape]
    where:
      - {field: employees, gte: 10}
  unique:
    type: dedupe
    inputs: [big]
    by: email
sinks:
  contacts: {type: jsonl, path: out/contacts.jsonl, metadata: true, inputs: [unique]}
  sheet: {type: csv, path: out/contacts.csv, inputs: [unique]}
  db: {type: sqlite, path: out/crm.sqlite, table: contacts, inputs: [unique]}
  rejects: {type: jsonl, path: out/errors.jsonl, inputs: [errors]}
"""


def test_run_through_the_cli(write: Write, tmp_path: Path) -> None:
    write("people.csv", PEOPLE)
    spec = write("job.yaml", SPEC)
    report_path = tmp_path / "report.json"
    assert main(["run", str(spec), "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["status"] == "success"
    assert report["streams"] == {
        "people": 5,
        "shape": 4,
        "errors": 1,
        "big": 3,
        "big.rejected": 1,
        "unique": 2,
        "unique.duplicates": 1,
    }
    assert report["delivered"] == {"contacts": 2, "sheet": 2, "db": 2, "rejects": 1}
    contacts = read_jsonl(tmp_path / "out" / "contacts.jsonl")
    assert [(c["first_name"], c["last_name"], c["domain"], c["_position"]) for c in contacts] == [
        ("Ada", "Lovelace", "example.com", 2),
        ("Grace", "Hopper", "navy.mil", 3),
    ]
    assert read_jsonl(tmp_path / "out" / "errors.jsonl")[0]["_error"]["reason"] == (
        "field 'email' is required (from 'email')"
    )
    assert (tmp_path / "out" / "contacts.csv").read_text().splitlines()[0] == (
        "email,first_name,last_name,domain,employees,hashed_email"
    )
    with sqlite3.connect(tmp_path / "out" / "crm.sqlite") as db:
        assert db.execute("SELECT count(*) FROM contacts").fetchone() == (2,)
    db.close()


def test_missing_input_fails_the_cli_run_naming_the_path(write: Write, tmp_path: Path) -> None:
    spec = write("job.yaml", SPEC)
    report_path = tmp_path / "report.json"
    assert main(["run", str(spec), "--report", str(report_path)]) == 1
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed"
    assert str(tmp_path / "people.csv") in report["failure"]
    assert not (tmp_path / "out" / "contacts.jsonl").exists()


def test_builtins_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    listed = capsys.readouterr().out
    for component in ("source:csv", "source:jsonl", "source:sqlite", "sink:csv", "sink:jsonl", "sink:sqlite"):
        assert component in listed
    for component in ("mapper:fields", "mapper:filter", "mapper:dedupe"):
        assert component in listed


INVALID = """\
version: 1
job: t
sources: {src: {type: jsonl, path: in.jsonl}}
mappers:
  shape:
    type: fields
    inputs: [src]
    fields:
      email: {transform: lowercase}
  keep:
    type: filter
    inputs: [shape]
    where:
      - {field: a, eq: 1, ne: 2}
      - {field: b, regex: "(("}
sinks:
  db: {type: sqlite, path: crm.sqlite, table: "people; DROP", inputs: [keep]}
"""


def test_invalid_options_are_spec_errors_at_their_path_explaining_themselves(write: Write) -> None:
    with pytest.raises(SpecError) as caught:
        load(write("job.yaml", INVALID))
    problems = [problem.split(": ", 1)[1] for problem in caught.value.problems]
    assert problems == [
        "$.mappers.shape.fields.email: unknown transform 'lowercase' (known transforms: strip, lower, upper, "
        "email_domain, url_domain, first_name, last_name, md5, sha256, digits)",
        "$.mappers.keep.where[0]: a condition takes exactly one operator of eq, ne, in, not_in, exists, empty, "
        "contains, regex, gt, gte, lt, lte (found: eq, ne)",
        "$.mappers.keep.where[1]: invalid regex '((': missing ), unterminated subpattern at position 1",
        "$.sinks.db: table must be a plain identifier (letters, digits, _), got 'people; DROP'",
    ]

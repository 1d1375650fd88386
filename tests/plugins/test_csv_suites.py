"""The ``csv`` source against public CSV test suites (see tests/data/csv/PROVENANCE.md).

For every case, the data rows of the file counted independently (by the suite's own expected parse) equal the
records the source delivers plus the rows it sends to the error stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector_core.components import Failed
from connector_core.errors import RunFailed
from connector_core.records import Record
from connector_core.spec.converter import make_converter
from crmsync_plugins.files.csv_source import CsvSource, CsvSourceOptions

DATA = Path(__file__).parent.parent / "data" / "csv"
SPECTRUM = DATA / "csv-spectrum"
PAPAPARSE: list[dict[str, Any]] = json.loads((DATA / "papaparse-cases.json").read_text(encoding="utf-8"))

#: Cases where crmsync's count differs from PapaParse's on purpose, as (rows with the first row as header,
#: rows under a header line added); None: the header row itself cannot be read, so the run stops.
#: - PapaParse reads an unterminated or stray quote to the end of the input as one field; crmsync rejects the
#:   line it opens on and reads the lines after it again (``a,"b,c`` rejected, ``d,e,f`` read again).
#: - A lone ``\r`` ends a line for crmsync (as for Python), while PapaParse keeps the first line break it saw.
DIFFERENT: dict[str, tuple[int | None, int]] = {
    "Quoted field has no closing quote": (None, 2),
    "Quoted field has invalid trailing quote after new line": (None, 2),
    "Quoted field has invalid trailing quote after delimiter": (1, 2),
    "Quoted field has invalid trailing quote before delimiter": (1, 2),
    "Mixed slash n and slash r should choose first as precident": (2, 3),
}


def read(path: Path, **options: Any) -> tuple[list[Record], list[Failed]]:
    """Run the source alone over ``path``: (records, failed rows)."""
    structured = make_converter(path.parent).structure({"path": str(path), **options}, CsvSourceOptions)
    items = list(CsvSource("src", structured, None).read())  # type: ignore[arg-type]
    records = [item for item in items if isinstance(item, Record)]
    failed = [item for item in items if isinstance(item, Failed)]
    assert len(records) + len(failed) == len(items)
    return records, failed


@pytest.mark.parametrize("name", sorted(path.stem for path in (SPECTRUM / "csvs").glob("*.csv")))
def test_csv_spectrum(name: str) -> None:
    expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    expected = expected if isinstance(expected, list) else [expected]
    records, failed = read(SPECTRUM / "csvs" / f"{name}.csv")
    assert failed == []
    if name == "location_coordinates":  # upstream, its JSON has another phone number than its CSV
        assert [list(record.data) for record in records] == [list(row) for row in expected]
    else:
        assert [record.data for record in records] == expected


def papaparse_data_rows(case: dict[str, Any], synthetic_header: bool) -> int:
    """The data rows of a case by PapaParse's expected parse: its rows, less empty lines and the header row."""
    rows = case["papaparse_rows"]
    if rows and isinstance(rows[0], dict):  # parsed with header: true, so data rows only
        return len(rows)
    rows = [row for row in rows if row != [""]]  # PapaParse's reading of an empty line
    if synthetic_header:
        return len(rows)
    while rows and len(rows[0]) == 1 and not rows[0][0].strip():
        rows.pop(0)  # whitespace before the header row is no data
    return max(len(rows) - 1, 0)


def case_id(case: dict[str, Any]) -> str:
    return f"{case['suite']}:{case['description']}"


def write_case(tmp_path: Path, case: dict[str, Any], synthetic_header: bool) -> Path:
    text = case["input"]
    if synthetic_header:
        width = max((len(row) for row in case["papaparse_rows"] if isinstance(row, list)), default=1)
        text = (case["delimiter"] or ",").join(f"h{n}" for n in range(width)) + "\n" + text
    path = tmp_path / "case.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def case_options(case: dict[str, Any]) -> dict[str, Any]:
    options = {"delimiter": case["delimiter"] or ","}
    if case["quotechar"]:
        options["quotechar"] = case["quotechar"]
    return options


@pytest.mark.parametrize("case", PAPAPARSE, ids=case_id)
def test_papaparse_case_first_row_as_header(tmp_path: Path, case: dict[str, Any]) -> None:
    path = write_case(tmp_path, case, synthetic_header=False)
    expected = (
        DIFFERENT[case["description"]][0] if case["description"] in DIFFERENT else papaparse_data_rows(case, False)
    )
    if expected is None:
        with pytest.raises(RunFailed, match="the header row cannot be read"):
            read(path, **case_options(case))
        return
    records, failed = read(path, **case_options(case))
    assert len(records) + len(failed) == expected


@pytest.mark.parametrize("case", [case for case in PAPAPARSE if not case["header"]], ids=case_id)
def test_papaparse_case_under_a_header(tmp_path: Path, case: dict[str, Any]) -> None:
    records, failed = read(write_case(tmp_path, case, synthetic_header=True), **case_options(case))
    expected = (
        DIFFERENT[case["description"]][1] if case["description"] in DIFFERENT else papaparse_data_rows(case, True)
    )
    assert len(records) + len(failed) == expected

"""The ``csv`` source."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from connector_core.records import content_key
from crmsync_plugins.files import csv_source as csv_source_module
from crmsync_plugins.files.csv_source import snake_case

from .kit import Pipeline, Write
from .test_csv_suites import PAPAPARSE, SPECTRUM


def csv_source(**options: object) -> dict[str, object]:
    return {"type": "csv", "path": "in.csv", **options}


def test_reads_rows_with_header_names_and_line_positions(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name,email\nAda,ada@example.com\nCharles,cb@example.com\n")
    result = pipeline(csv_source())
    assert result.report.status == "success"
    assert [(r["name"], r["email"], r["_position"]) for r in result.records] == [
        ("Ada", "ada@example.com", 2),
        ("Charles", "cb@example.com", 3),
    ]
    assert result.report.streams["src"] == 2


def test_utf8_bom_is_dropped_from_the_first_column(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "\ufeffname,city\nZoë,Zürich\n".encode())
    result = pipeline(csv_source())
    assert result.records[0]["name"] == "Zoë"
    assert result.records[0]["city"] == "Zürich"


def test_semicolon_delimiter_is_sniffed(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name;amount;city\nAda;1,5;Paris\nCharles;2,0;Lyon\n")
    result = pipeline(csv_source())
    assert [(r["name"], r["amount"]) for r in result.records] == [("Ada", "1,5"), ("Charles", "2,0")]


def test_unsniffable_sample_falls_back_to_comma(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name\nAda\n")
    assert [r["name"] for r in pipeline(csv_source()).records] == ["Ada"]


def quoted_rows(delimiter: str, rows: int) -> str:
    """A lead list whose every row quotes fields holding commas, quotes, the other delimiters and line breaks:
    the kind of sample the standard sniffer's quote regexes take half a second over."""
    notes = ['says ""hi"", twice', "a, b; c | d", "line one\nline two", "tab\there", ""]
    lines = [delimiter.join(["name", "email", "note", "city"])]
    for i in range(rows):
        lines.append(delimiter.join([f"Person {i}", f"p{i}@x.io", f'"{notes[i % len(notes)]}"', '"Zürich, CH"']))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_quote_heavy_samples_are_settled_by_a_parse_without_the_slow_sniffer(
    delimiter: str, write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("in.csv", quoted_rows(delimiter, 3000))
    monkeypatch.setattr(csv_source_module.csv, "Sniffer", None)  # any call would fail
    assert csv_source_module.sniff_delimiter(tmp_path / "in.csv", "utf-8") == delimiter


@pytest.mark.parametrize(
    "sample",
    [
        "name;amount;city\nAda;1,5;Paris\nCharles;2,0;Lyon\n",  # decimal commas in a ; file
        "a,b\n1,2\n3,4\n",
        "a\tb\tc\n1\t2,5\t3\n",
        'a|b\n"x|y"|2\n3|4\n',
        "a,b;c\n1,2;3\n",  # both fit: left to the standard sniffer
        "name\nAda\n",  # none fits
        "a,b\n",  # a header alone
    ],
)
def test_the_fast_guess_never_contradicts_the_standard_sniffer(sample: str) -> None:
    guess = csv_source_module.consistent_delimiter(sample)
    if guess is not None:
        sniffed = csv.Sniffer().sniff(sample, delimiters=csv_source_module.SNIFF_DELIMITERS).delimiter
        assert guess == sniffed


def test_the_fast_guess_agrees_with_the_standard_sniffer_on_the_public_suites() -> None:
    samples = [case["input"] for case in PAPAPARSE] + [path.read_text() for path in SPECTRUM.glob("csvs/*.csv")]
    agreed = 0
    for sample in samples:
        guess = csv_source_module.consistent_delimiter(sample)
        if guess is None:
            continue
        try:
            sniffed = csv.Sniffer().sniff(sample, delimiters=csv_source_module.SNIFF_DELIMITERS).delimiter
        except csv.Error:
            continue  # the sniffer gives up where the parse found one delimiter that fits
        assert guess == sniffed, sample
        agreed += 1
    assert agreed >= 20


def test_explicit_delimiter_and_quotechar(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name|note\nAda|'a|b'\n")
    result = pipeline(csv_source(delimiter="|", quotechar="'"))
    assert result.records[0]["note"] == "a|b"


def test_quoted_newlines_keep_later_positions_right(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", 'name,note\nAda,"line one\nline two\nline three"\nCharles,plain\n')
    result = pipeline(csv_source())
    assert result.records[0]["note"] == "line one\nline two\nline three"
    assert [r["_position"] for r in result.records] == [2, 5]


def test_crlf_line_endings(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", 'name,note\r\nAda,"a\r\nb"\r\nCharles,c\r\n')
    result = pipeline(csv_source())
    assert [(r["name"], r["_position"]) for r in result.records] == [("Ada", 2), ("Charles", 4)]


def test_ragged_rows_go_to_the_error_stream_and_the_run_goes_on(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5,6,7\n1,2\n1,2,3,4,5\n")
    result = pipeline(csv_source())
    assert result.report.status == "success"
    assert [r["_position"] for r in result.records] == [2, 5]
    assert result.reasons == ["line 3: expected 5 fields, got 7", "line 4: expected 5 fields, got 2"]
    assert result.errors[0]["_extra"] == ["6", "7"]
    assert result.errors[0]["_error"]["position"] == 3


def test_ragged_row_after_a_multiline_field_reports_its_first_line(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", 'a,b\n"x\ny",1\n"p\nq",2,3\n')
    assert pipeline(csv_source()).reasons == ["line 4: expected 2 fields, got 3"]


def test_empty_lines_are_skipped(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "\nname,city\n\nAda,Paris\n\n\r\nCharles,Lyon\n\n")
    result = pipeline(csv_source())
    assert result.errors == []
    assert [(r["name"], r["_position"]) for r in result.records] == [("Ada", 4), ("Charles", 7)]


def test_empty_file_has_no_records(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "")
    result = pipeline(csv_source())
    assert result.report.status == "success"
    assert result.records == []


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (False, ["First Name", "E-mail", "lastName"]),
        ("none", ["First Name", "E-mail", "lastName"]),
        ("lower", ["first name", "e-mail", "lastname"]),
        ("snake", ["first_name", "e_mail", "last_name"]),
        (True, ["first_name", "e_mail", "last_name"]),
    ],
)
def test_header_normalisation(pipeline: Pipeline, write: Write, style: object, expected: list[str]) -> None:
    write("in.csv", " First Name ,E-mail,lastName\nAda,a@x.com,Lovelace\n")
    record = pipeline(csv_source(normalize_headers=style)).records[0]
    assert [field for field in record if not field.startswith("_")] == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("First Name", "first_name"),
        ("firstName", "first_name"),
        ("HTTPStatus", "http_status"),
        ("Pays (ISO)", "pays_iso"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_blank_and_repeated_header_names_stay_distinct(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "email,,Email\na@x.com,b,c\n")
    record = pipeline(csv_source(normalize_headers="lower")).records[0]
    assert (record["email"], record["column_2"], record["email_2"]) == ("a@x.com", "b", "c")


def test_key_option_takes_the_record_key_from_a_column(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "id,name\n42,Ada\n")
    assert pipeline(csv_source(key="id")).records[0]["_key"] == "42"


def test_without_key_the_record_key_is_a_content_hash(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "id,name\n42,Ada\n42,Ada\n")
    records = pipeline(csv_source()).records
    assert records[0]["_key"] == records[1]["_key"] == content_key({"id": "42", "name": "Ada"})


def test_other_encodings(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name\nJosé\n".encode("cp1252"))
    assert pipeline(csv_source(encoding="cp1252")).records[0]["name"] == "José"


def test_undecodable_file_fails_the_run_with_advice(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name\nJosé\n".encode("cp1252"))
    report = pipeline(csv_source()).report
    assert report.status == "failed"
    assert "is not valid utf-8-sig" in report.failure
    assert "encoding" in report.failure


def test_missing_file_fails_the_run_naming_the_path(pipeline: Pipeline, tmp_path: Path) -> None:
    result = pipeline(csv_source(path="nowhere/people.csv"))
    assert result.report.status == "failed"
    assert str(tmp_path / "nowhere" / "people.csv") in result.report.failure
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("delimiter", ["\t", ",", ";", "|"])
def test_a_quoted_field_spanning_lines_closes_cleanly_before_any_delimiter(
    delimiter: str, pipeline: Pipeline, write: Write
) -> None:
    rows = [["4", '"Dee"', '"a\nb"'], ["5", "Eve", "x"], ["6", '"a\nb"', "Dee"], ["7", '"c\n d" ', "Fay"]]
    write("in.csv", "\n".join(delimiter.join(row) for row in [["id", "name", "notes"], *rows]) + "\n")
    result = pipeline(csv_source(delimiter=delimiter))
    assert [r["id"] for r in result.records] == ["4", "5", "6", "7"] and result.errors == []
    assert [r["notes"] for r in result.records][:3] == ["a\nb", "x", "Dee"]

"""The ``csv`` source on real-world damage: stray quotes, huge fields, blank lines, odd headers, encodings.

Each case checks the accounting the source promises: every data row of the file is delivered or in the
error stream (empty lines aside, which are counted in the report).
"""

from __future__ import annotations

import codecs
import csv
import io
import random
from pathlib import Path

import pytest

from connector_core.records import Record
from connector_core.spec.converter import make_converter
from crmsync_plugins.files.csv_source import CsvSource, CsvSourceOptions

from .kit import JobResult, Pipeline, Write


def csv_source(**options: object) -> dict[str, object]:
    return {"type": "csv", "path": "in.csv", **options}


def rows_file(count: int, damaged: dict[int, str] | None = None) -> str:
    """A header and ``count`` rows ``id,name,city``; ``damaged`` replaces rows by number (1-based)."""
    lines = ["id,name,city"]
    for number in range(1, count + 1):
        lines.append((damaged or {}).get(number, f"{number},name {number},city {number}"))
    return "\n".join(lines) + "\n"


def assert_accounted(result: JobResult, rows_in: int) -> None:
    assert len(result.records) + len(result.errors) == rows_in
    assert result.report.input_records == rows_in
    assert result.report.errors["count"] == len(result.errors)


@pytest.mark.parametrize(
    "stray",
    [
        '5,"name 5,city 5',  # opens a quote that nothing closes
        '5,name 5,"city 5',  # the last field
        '5,"name, 5,city 5',  # with a delimiter inside
    ],
)
def test_an_unterminated_quote_rejects_its_row_only(pipeline: Pipeline, write: Write, stray: str) -> None:
    write("in.csv", rows_file(10, {5: stray}))
    result = pipeline(csv_source())
    assert result.report.status == "success"
    assert_accounted(result, 10)
    assert [r["id"] for r in result.records] == ["1", "2", "3", "4", "6", "7", "8", "9", "10"]
    assert [r["_position"] for r in result.records][4] == 7  # positions stay physical lines
    (error,) = result.errors
    assert error["_line"] == stray
    assert error["_error"]["position"] == 6
    assert result.reasons[0].startswith("line 6: a quoted field is still open at the end of the file")


def test_a_stray_quote_that_pairs_with_a_later_quote_rejects_its_row_only(pipeline: Pipeline, write: Write) -> None:
    damaged = {3: '3,"Bob,city 3', 7: '7,"name 7",city 7', 8: '8,"name 8","city, 8"'}
    write("in.csv", rows_file(10, damaged))
    result = pipeline(csv_source())
    assert_accounted(result, 10)
    assert [r["id"] for r in result.records] == ["1", "2", "4", "5", "6", "7", "8", "9", "10"]
    assert result.records[6]["city"] == "city, 8"
    assert result.reasons == ["line 4: stray quote: a quoted field closes on line 8 before text"]


def test_a_stray_quote_in_a_row_spanning_lines_rejects_that_whole_row(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", 'id,note,city\n1,"two\nlines","Paris\n2,b,Lyon\n3,c,Nice\n')
    result = pipeline(csv_source())
    assert_accounted(result, 3)
    assert [r["id"] for r in result.records] == ["2", "3"]
    assert result.errors[0]["_line"] == '1,"two\nlines","Paris'
    assert result.reasons == [
        "line 2: a quoted field is still open at the end of the file (the stray quote is on line 3)"
    ]


@pytest.mark.parametrize("seed", range(40))
def test_generated_files_with_one_stray_quote_lose_nothing_else(tmp_path: Path, seed: int) -> None:
    """csv.writer output (quoted commas, doubled quotes, multi-line fields, LF or CRLF) with a stray quote
    put before one row's last field: that row is rejected, every other row is delivered exactly."""
    rng = random.Random(seed)
    values = ["Ada", "Smith, John", 'say "hi"', "multi\nline", "Zoë", "a,b,c", "x", ""]
    rows = [[str(n), rng.choice(values), rng.choice(values), str(n * 7)] for n in range(rng.randint(2, 30))]
    damaged = rng.randrange(len(rows))
    end = rng.choice(["\n", "\r\n"])
    text = "id,a,b,n" + end
    for number, row in enumerate(rows):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=end).writerow(row)
        line = buffer.getvalue()
        if number == damaged:
            cut = line.rindex("," + row[3])
            line = line[:cut] + ',"' + line[cut + 1 :]
        text += line
    (tmp_path / "in.csv").write_text(text, encoding="utf-8", newline="")
    options = make_converter(tmp_path).structure({"path": "in.csv", "delimiter": ","}, CsvSourceOptions)
    items = list(CsvSource("src", options, None).read())  # type: ignore[arg-type]
    assert len(items) == len(rows)
    delivered = [item.data for item in items if isinstance(item, Record)]
    assert delivered == [dict(zip(["id", "a", "b", "n"], row, strict=True)) for row in rows if row[0] != str(damaged)]


def test_a_quote_open_past_max_lines_per_record_is_given_up(pipeline: Pipeline, write: Write) -> None:
    # Later quotes close it eventually, but 5 lines is the limit set here.
    damaged = {2: '2,"open,city 2', 9: '9,x,"y"'}
    write("in.csv", rows_file(10, damaged))
    result = pipeline(csv_source(max_lines_per_record=5))
    assert_accounted(result, 10)
    assert [r["id"] for r in result.records] == ["1", "3", "4", "5", "6", "7", "8", "9", "10"]
    assert result.reasons == ["line 3: a quoted field is still open after 5 lines (max_lines_per_record)"]


def test_multiline_quoted_fields_that_close_still_work(pipeline: Pipeline, write: Write) -> None:
    note = "\n".join(f"note line {n}" for n in range(50))
    write("in.csv", f'id,note,city\n1,"{note}",Paris\n2,"a\r\nb ""quoted""",Lyon\n3,plain,Nice\n')
    result = pipeline(csv_source())
    assert result.errors == []
    assert [r["note"] for r in result.records] == [note, 'a\r\nb "quoted"', "plain"]
    assert [r["_position"] for r in result.records] == [2, 52, 54]


def test_a_ragged_multiline_row_is_one_error(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", 'a,b\n"x\ny",1\n"p\nq",2,3\n')
    assert pipeline(csv_source()).reasons == ["line 4: expected 2 fields, got 3"]


def test_fields_over_the_csv_module_default_limit_are_read(pipeline: Pipeline, write: Write) -> None:
    big = "x" * 200_000
    write("in.csv", f'id,blob\n1,{big}\n2,"{big}\n{big}"\n3,small\n')
    result = pipeline(csv_source())
    assert result.report.status == "success"
    assert [len(r["blob"]) for r in result.records] == [200_000, 400_001, 5]


def test_a_field_over_max_field_chars_rejects_only_its_row(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", f'id,blob\n1,{"x" * 150}\n2,"{"y" * 60}\n{"y" * 60}"\n3,small\n4,{"z" * 101}\n')
    result = pipeline(csv_source(max_field_chars=100))
    assert_accounted(result, 4)
    assert [r["id"] for r in result.records] == ["3"]
    assert result.reasons == [
        "line 2: field 'blob' has 150 characters, over max_field_chars (100)",
        "line 3: field 'blob' has 121 characters, over max_field_chars (100)",
        "line 6: field 'blob' has 101 characters, over max_field_chars (100)",
    ]


def test_whitespace_only_lines_go_to_errors_and_empty_lines_are_counted(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "\n  \nname,city\n\nAda,Paris\n   \n\t\nCharles,Lyon\n\n\r\n")
    result = pipeline(csv_source())
    assert [(r["name"], r["_position"]) for r in result.records] == [("Ada", 5), ("Charles", 8)]
    assert result.reasons == ["line 6: blank line (only whitespace)", "line 7: blank line (only whitespace)"]
    assert_accounted(result, 4)
    # Two lines before the header, three after: empty lines are no rows, but they are not hidden either.
    assert result.report.extra["source src"] == {"empty_lines_skipped": 5}
    assert "source src: empty_lines_skipped=5" in result.report.summary()


def test_in_a_one_column_file_a_whitespace_line_is_a_value(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name\nAda\n  \nBob\n")
    assert [r["name"] for r in pipeline(csv_source()).records] == ["Ada", "  ", "Bob"]


@pytest.mark.parametrize("header", [",,", " , , ", '"","",""'])
def test_an_all_blank_header_names_columns_and_keeps_every_row(
    pipeline: Pipeline, write: Write, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    write("in.csv", f"{header}\n1,Ada,Paris\n2,Bob,Lyon\n")
    result = pipeline(csv_source())
    assert [(r["column_1"], r["column_2"], r["column_3"]) for r in result.records] == [
        ("1", "Ada", "Paris"),
        ("2", "Bob", "Lyon"),
    ]
    assert "the header row has no column names" in caplog.text


def test_repeated_header_names_are_renamed_with_a_warning(
    pipeline: Pipeline, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    write("in.csv", "email,Email ,email,\na,b,c,d\n")
    record = pipeline(csv_source()).records[0]
    assert (record["email"], record["Email"], record["email_2"], record["column_4"]) == ("a", "b", "c", "d")
    assert "column 3 repeats the name 'email'; it is read as 'email_2'" in caplog.text


def test_spaces_after_a_closing_quote_stay_in_the_value(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", 'a,b,c\n"x" ,"y"  ,z\n')
    result = pipeline(csv_source())
    assert result.errors == []
    assert [(r["a"], r["b"], r["c"]) for r in result.records] == [("x ", "y  ", "z")]


def test_an_undecodable_byte_is_reported_with_its_physical_line(pipeline: Pipeline, write: Write) -> None:
    body = "".join(f"{n},name {n}\n" for n in range(1, 49))
    write("in.csv", ("id,name\n" + body + '49,"multi\nline"\n').encode() + b"50,Jos\xe9\n51,ok\n")
    report = pipeline(csv_source()).report
    assert report.status == "failed"
    assert "in.csv:52: byte 0xe9 is not valid utf-8-sig (invalid continuation byte)" in report.failure
    assert "set the `encoding` option" in report.failure


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_files_are_read_by_their_byte_order_mark(
    pipeline: Pipeline, write: Write, encoding: str
) -> None:
    bom = {
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
        "utf-32-be": codecs.BOM_UTF32_BE,
    }[encoding]
    write("in.csv", bom + 'name,city\r\nZoë,Zürich\r\nAda,"Lon\r\ndon"\r\n'.encode(encoding))
    # Even an explicit single-byte encoding yields to the mark.
    result = pipeline(csv_source(encoding="cp1252"))
    assert result.errors == []
    assert [(r["name"], r["city"]) for r in result.records] == [("Zoë", "Zürich"), ("Ada", "Lon\r\ndon")]


def test_a_utf8_bom_is_dropped_whatever_the_encoding_option(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", codecs.BOM_UTF8 + b"email,name\na@x.com,Ada\n")
    result = pipeline(csv_source(encoding="utf-8", key="email"))
    assert [r["_key"] for r in result.records] == ["a@x.com"]


def test_utf16_without_a_byte_order_mark_fails_clearly(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "name,city\nAda,Paris\n".encode("utf-16-le"))
    result = pipeline(csv_source())
    assert result.report.status == "failed"
    assert result.records == []
    assert "line 1 holds NUL characters" in result.report.failure
    assert "encoding: utf-16-le" in result.report.failure


def test_nul_characters_in_a_row_reject_that_row(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", b"id,name\n1,Ada\n2,B\x00b\n3,Cy\n")
    result = pipeline(csv_source())
    assert_accounted(result, 3)
    assert result.reasons == ["line 3: field 'name' holds a NUL character (binary data in a text file?)"]

"""The ``jsonl`` source."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from .kit import Pipeline, Write


def test_reads_objects_with_line_positions(pipeline: Pipeline, write: Write) -> None:
    write("in.jsonl", '{"name": "Ada", "tags": ["x"]}\n\n{"name": "Zoë"}\n')
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert [(r["name"], r["_position"]) for r in result.records] == [("Ada", 1), ("Zoë", 3)]
    assert result.records[0]["tags"] == ["x"]


def test_bad_lines_go_to_the_error_stream(pipeline: Pipeline, write: Write) -> None:
    write("in.jsonl", '{"name": "Ada"}\n{"name": \n[1, 2]\n  \n{"name": "Charles"}\n')
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert result.report.status == "success"
    assert [r["name"] for r in result.records] == ["Ada", "Charles"]
    assert [reason.split(":")[0] for reason in result.reasons] == ["line 2", "line 3"]
    # The parser's own "line 2 column 1" would count the line break: the reason says where on the line instead.
    assert result.reasons[0] == ("line 2: invalid JSON: Expecting value at the end of the line")
    assert result.reasons[1] == "line 3: invalid JSON: expected an object, got an array"
    assert result.errors[0]["_line"] == '{"name": '


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("NaN", "invalid JSON: NaN is not a JSON number"),
        ("Infinity", "invalid JSON: Infinity is not a JSON number"),
        ("[1, -Infinity]", "invalid JSON: -Infinity is not a JSON number"),
        ('{"deep": 1e400}', "the number 1e400 is out of range: no float can hold it"),
        ("-2.5E+999", "the number -2.5E+999 is out of range: no float can hold it"),
    ],
)
def test_numbers_json_does_not_have_are_rejected_with_their_line(
    pipeline: Pipeline, write: Write, value: str, problem: str
) -> None:
    """Python's parser reads NaN, the infinities and numbers too big for a float (as an infinity); none is JSON
    a sink could write back as a number. Their lines are rejects; text spelling them and tiny numbers are not."""
    bad = '{"id": 2, "v": ' + value + "}"
    fine = '{"id": 3, "v": "NaN", "w": 1e-400, "x": 1.7976931348623157e308, "y": 123456789012345678901234567890}'
    write("in.jsonl", "\n".join(['{"id": 1, "v": 0.5}', bad, fine]) + "\n")
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert result.report.status == "success"
    assert [r["id"] for r in result.records] == [1, 3]
    assert result.records[1]["w"] == 0.0 and result.records[1]["y"] == 123456789012345678901234567890
    assert len(result.reasons) == 1 and result.reasons[0].startswith(f"line 2: {problem}")
    assert result.errors[0]["_line"] == bad


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("null", "expected an object, got null"),
        ('"text"', "expected an object, got a string"),
        ("-3.5", "expected an object, got a number"),
        ("false", "expected an object, got true or false"),
        ('{"a" 1}', "Expecting ':' delimiter at column 6"),
        ('{"a": 1,', "Expecting property name enclosed in double quotes at the end of the line"),
        ('{"a": 1}}', "Extra data at column 9"),
    ],
)
def test_a_line_that_is_not_an_object_says_what_it_is_in_json_terms(
    pipeline: Pipeline, write: Write, line: str, problem: str
) -> None:
    write("in.jsonl", f'{{"id": 1}}\r\n{line}\r\n{{"id": 3}}\r\n')
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert [r["id"] for r in result.records] == [1, 3]
    assert result.reasons == [f"line 2: invalid JSON: {problem}"]
    assert result.errors[0]["_line"] == line


@pytest.mark.parametrize("opening", ["[", '{"a":', '[{"a":'])
def test_a_line_nested_too_deeply_for_the_parser_is_rejected_alone(
    pipeline: Pipeline, write: Write, opening: str
) -> None:
    """Python's JSON parser gives up on thousands of nested levels (a RecursionError, not a ValueError): the line
    goes to the error stream, and the lines around it are delivered."""
    closing = {"[": "]", '{"a":': "}", '[{"a":': "}]"}[opening]
    deep = '{"id": 2, "v": ' + opening * 5000 + "1" + closing * 5000 + "}"
    shallow = '{"id": 3, "v": ' + "[" * 50 + "1" + "]" * 50 + "}"
    write("in.jsonl", "\n".join(['{"id": 1}', deep, shallow]) + "\n")
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert result.report.status == "success"
    assert [r["id"] for r in result.records] == [1, 3]
    assert result.reasons == [
        "line 2: invalid JSON: nested too deeply for the JSON parser (thousands of levels of arrays or objects)"
    ]
    assert result.errors[0]["_line"] == deep


def test_key_option(pipeline: Pipeline, write: Write) -> None:
    write("in.jsonl", '{"id": 7, "name": "Ada"}\n')
    assert pipeline({"type": "jsonl", "path": "in.jsonl", "key": "id"}).records[0]["_key"] == "7"


def test_missing_file_fails_the_run_naming_the_path(pipeline: Pipeline, tmp_path: Path) -> None:
    report = pipeline({"type": "jsonl", "path": "missing.jsonl"}).report
    assert report.status == "failed"
    assert str(tmp_path / "missing.jsonl") in report.failure


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_a_byte_order_mark_decides_the_encoding(pipeline: Pipeline, write: Write, encoding: str) -> None:
    text = '{"name": "Zoë"}\n{"name": "Ada"}\n'
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    write("in.jsonl", data)
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert result.errors == []
    assert [r["name"] for r in result.records] == ["Zoë", "Ada"]


def test_an_undecodable_byte_is_reported_with_its_line(pipeline: Pipeline, write: Write) -> None:
    write("in.jsonl", b'{"n": 1}\n' * 60 + b'{"n": "Jos\xe9"}\n')
    report = pipeline({"type": "jsonl", "path": "in.jsonl"}).report
    assert report.status == "failed"
    assert "in.jsonl:61: byte 0xe9 is not valid utf-8 (invalid continuation byte)" in report.failure


LONE_SURROGATES = [
    r'{"name": "a\ud800b"}',  # a high half alone
    r'{"name": "x", "tags": ["\uDFFF"]}',  # a low half, upper case, in a list
    r'{"\udc00key": 1}',  # in a field name
    r'{"name": "\ude00\ud83d"}',  # both halves, in the wrong order
]


def test_a_lone_surrogate_escape_is_rejected_with_its_line(pipeline: Pipeline, write: Write) -> None:
    """JSON can spell half of a UTF-16 pair, which no file, sink or state database can store as text: the line
    goes to the error stream as written, and a pair spelled in escapes (an emoji) is read as one character."""
    write("in.jsonl", "\n".join([r'{"name": "smile \ud83d\ude00"}', *LONE_SURROGATES, '{"name": "Ada"}']) + "\n")
    result = pipeline({"type": "jsonl", "path": "in.jsonl"})
    assert [r["name"] for r in result.records] == ["smile 😀", "Ada"]
    assert [error["_line"] for error in result.errors] == LONE_SURROGATES
    assert all("half of a UTF-16 surrogate pair" in reason for reason in result.reasons)


def test_a_lone_surrogate_does_not_stop_a_run_with_state(tmp_path: Path) -> None:
    """With state the record's key reaches SQLite, which refused it with a traceback before the source did."""
    from connector_core.cli import main
    from connector_core.testing import write_spec

    (tmp_path / "in.jsonl").write_text(r'{"email": "a\ud800@x.io"}' + "\n" + '{"email": "b@x.io"}\n')
    spec = write_spec(
        tmp_path,
        """
version: 1
job: surrogates
state: {path: state.db}
sources:
  leads: {type: jsonl, path: in.jsonl, key: email}
sinks:
  out: {type: jsonl, inputs: [leads], path: out.jsonl}
  bad: {type: jsonl, inputs: [errors], path: errors.jsonl}
""",
    )
    assert main(["-q", "run", str(spec)]) == 0
    assert (tmp_path / "out.jsonl").read_text() == '{"email": "b@x.io"}\n'
    assert "half of a UTF-16 surrogate pair" in (tmp_path / "errors.jsonl").read_text()

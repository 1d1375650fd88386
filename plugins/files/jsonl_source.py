"""The ``jsonl`` source: one JSON object per line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs

from connector_core.components import Failed, LocalFile, Source
from connector_core.errors import RunFailed
from connector_core.json_encoding import encode_json
from connector_core.records import Record

from .base import require_file
from .text_input import decode_problem, input_encoding

#: A ``\\uXXXX`` escape of a UTF-16 surrogate: JSON can spell half of a pair, which no UTF-8 text can hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = "a value holds half of a UTF-16 surrogate pair (a lone \\ud800-\\udfff escape), which is not text"
_TOO_DEEP = "invalid JSON: nested too deeply for the JSON parser (thousands of levels of arrays or objects)"


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or infinities; write null or text)")


class _OutOfRange(ValueError):
    """A number JSON allows but no float can hold."""


def _finite(text: str) -> float:
    number = float(text)
    if number - number:  # inf - inf is NaN, which is true; any finite number gives 0.0
        raise _OutOfRange(f"the number {text} is out of range: no float can hold it")
    return number


#: JSON's names for what a line held instead of an object.
_JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _problem(exc: ValueError) -> str:
    if isinstance(exc, _OutOfRange):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):  # its "line 2 column 1" would count the line break ending the line
        ended = exc.pos >= len(exc.doc.rstrip("\r\n"))
        return f"invalid JSON: {exc.msg} {'at the end of the line' if ended else f'at column {exc.pos + 1}'}"
    return f"invalid JSON: {exc}"


#: Python's parser reads ``NaN``, ``Infinity`` and ``1e999`` (as an infinity), none of which JSON allows or any
#: sink could write back as a number: lines holding them are rejects, as other text that is not JSON.
_STRICT_JSON = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite)


@attrs.frozen
class JsonlSourceOptions:
    """Options of the ``jsonl`` source."""

    path: Path
    """The JSON Lines file; relative paths resolve against the spec's folder."""
    encoding: str = "utf-8"
    """Text encoding of files without a byte-order mark; a UTF-8, UTF-16 or UTF-32 mark decides by itself."""


class JsonlSource(Source[JsonlSourceOptions]):
    """Reads a JSON Lines file. Position is the line number.

    Blank lines are skipped; a line that is not valid JSON (NaN and numbers beyond a float's range included),
    is JSON but not an object, or spells half of a UTF-16 surrogate pair (text no file or database can store)
    goes to the error stream with its text under ``_line`` and the run goes on. The file has no schema: a
    record lacking a ``key`` field has a blank key and goes to the error stream too.
    """

    Options: ClassVar[type] = JsonlSourceOptions
    # On the loop, as the CSV source (see there): parsing a local file is CPU work between buffered reads.
    io_thread: ClassVar[bool] = False

    @classmethod
    def input_file(cls, options: JsonlSourceOptions) -> LocalFile:
        return LocalFile("path", options.path.resolve())

    def open(self) -> None:
        require_file(self.options.path, self.name)

    def read(self) -> Iterator[Record | Failed]:
        options: JsonlSourceOptions = self.options
        row, loads = self.row, _STRICT_JSON.decode
        encoding = input_encoding(options.path, options.encoding)
        try:
            with open(options.path, encoding=encoding) as file:
                for number, line in enumerate(file, 1):
                    try:
                        data = loads(line)
                    except ValueError as exc:
                        if line.isspace():
                            continue
                        yield self._failed(line, number, _problem(exc))
                        continue
                    except RecursionError:  # a line of thousands of nested arrays: its own reject, not the run's end
                        yield self._failed(line, number, _TOO_DEEP)
                        continue
                    if data.__class__ is not dict:
                        got = _JSON_TYPES[type(data)]
                        yield self._failed(line, number, f"invalid JSON: expected an object, got {got}")
                    elif "\\u" in line and _SURROGATE_ESCAPE.search(line) and _unpaired_surrogate(data):
                        yield self._failed(line, number, _LONE_SURROGATE)
                    else:
                        yield row(data, number)
        except UnicodeDecodeError:
            problem = decode_problem(options.path, encoding)
            raise RunFailed(f"{self.name}: {problem}; set the `encoding` option") from None

    def _failed(self, line: str, number: int, problem: str) -> Failed:
        return Failed(self.record({"_line": line.rstrip("\r\n")}, number), f"line {number}: {problem}")


def _unpaired_surrogate(data: dict[str, object]) -> bool:
    """Whether ``data`` holds a lone surrogate (a pair's escapes decode to one character): no sink, file or
    state database could store the record, so it is the source's to reject, with its line as written."""
    try:
        encode_json(data).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False

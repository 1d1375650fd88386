"""Spec files that are not good YAML, or YAML a spec must not be: refused at once with one line naming the
file and the line (and the key where there is one), exit 2 from the CLI, never a traceback."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector_core import testing
from connector_core.errors import SpecError

from . import kit

SUITE = Path(__file__).parents[1] / "data" / "yaml-test-suite"

VALID = b"""\
version: 1
job: demo
sources:
  nums: {type: t.numbers, count: 3}
sinks:
  out:
    type: t.collect
    inputs: [nums]
"""

#: "Billion laughs": nine aliases per level, nine levels; 9**9 values once expanded, in 500 bytes.
BILLION_LAUGHS = (
    "version: 1\njob: lol\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
).encode()

#: Anchors each nesting the previous one 40 levels deeper: shallow in the file, 400 levels once expanded.
DEEP_ALIASES = (
    "version: 1\na0: &a0 x\n" + "".join(f"a{i}: &a{i} {'[' * 40}*a{i - 1}{']' * 40}\n" for i in range(1, 11))
).encode()

#: (id, file content, line of the problem, spec path or None, words the message has)
CASES: list[tuple[str, bytes, int, str | None, tuple[str, ...]]] = [
    (
        "duplicate-section",
        VALID + b"sinks:\n  other: {type: t.collect, inputs: [nums]}\n",
        9,
        "$.sinks",
        ("duplicate key 'sinks'", "also at line 5"),
    ),
    (
        "duplicate-option",
        VALID.replace(b"count: 3}", b"count: 3, count: 4}"),
        4,
        "$.sources.nums.count",
        ("duplicate key 'count'", "also at line 4"),
    ),
    (
        "duplicate-deep",
        VALID + b"settings:\n  queue_batches: 2\n  stop_on_error: true\n  queue_batches: 3\n",
        12,
        "$.settings.queue_batches",
        ("duplicate key 'queue_batches'", "line 10"),
    ),
    ("key-on", VALID + b"on: push\n", 9, "$.on", ("the boolean true", '"on"')),
    (
        "key-no",
        VALID.replace(b"  nums:", b"  no:").replace(b"[nums]", b"['no']"),
        4,
        "$.sources.no",
        ("the boolean false",),
    ),
    ("key-number", VALID + b"1: one\n", 9, "$.1", ("a number", '"1"')),
    ("key-null", VALID + b"~: nothing\n", 9, "$", ("key is empty",)),
    ("key-empty", VALID + b": nothing\n", 9, None, ("invalid YAML", "indentation")),
    ("key-date", VALID + b"2024-01-01: new year\n", 9, "$.2024-01-01", ("a date",)),
    ("key-list", VALID + b"? [a, b]\n: pair\n", 9, "$", ("a key must be text, not a list",)),
    ("alias-bomb", BILLION_LAUGHS, 7, "$.e", ("alias bomb",)),
    ("alias-recursive", VALID + b"loop: &loop [1, *loop]\n", 9, "$.loop[1]", ("inside the collection it names",)),
    ("alias-deep", DEEP_ALIASES, 5, "$.a3[0]...[0]", ("deeper than 100",)),
    (
        "nesting-flow-sequence",
        b"version: 1\njob: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        2,
        None,
        ("nested too deeply",),
    ),
    (
        "nesting-flow-mapping",
        b"version: 1\njob: " + b"{a: " * 10_000 + b"}" * 10_000 + b"\n",
        2,
        None,
        ("nested too deeply",),
    ),
    (
        "nesting-block",
        b"version: 1\njob:\n" + b"".join(b" " * i + b"- \n" for i in range(1, 300)),
        102,
        None,
        ("nested too deeply",),
    ),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), 3, None, ("binary file",)),
    ("utf-16-le-bom", codecs.BOM_UTF16_LE + VALID.decode().encode("utf-16-le"), 1, None, ("UTF-16", "UTF-8")),
    ("utf-16-be-bom", codecs.BOM_UTF16_BE + VALID.decode().encode("utf-16-be"), 1, None, ("UTF-16", "UTF-8")),
    ("utf-16-no-bom", VALID.decode().encode("utf-16-le"), 1, None, ("looks UTF-16", "UTF-8")),
    ("utf-32", VALID.decode().encode("utf-32"), 1, None, ("UTF-32", "UTF-8")),
    ("latin-1", VALID + "  owner: Zoë\n".encode("latin-1"), 9, None, ("not UTF-8", "0xEB", "column 12")),
    ("control-character", VALID.replace(b"job: demo", b"job: de\x07mo"), 2, None, ("control character #x0007",)),
    ("empty", b"", 1, "$", ("the spec is empty",)),
    ("only-comments", b"# a job, some day\n\n", 1, "$", ("the spec is empty",)),
    ("two-documents", VALID + b"---\nversion: 1\n", 9, None, ("single document", "remove the second '---'")),
    ("tab-indent", VALID.replace(b"    type: t.collect", b"\ttype: t.collect"), 7, None, ("not tabs",)),
    (
        "colon-in-value",
        VALID.replace(b"job: demo", b"job: demo: nightly"),
        2,
        None,
        ("mapping values are not allowed", "in quotes"),
    ),
    ("bad-indent", VALID.replace(b"    inputs:", b"   inputs:"), 8, None, ("indent",)),
    ("unclosed-quote", VALID.replace(b"job: demo", b"job: 'demo"), 2, None, ("not closed",)),
    ("unclosed-bracket", VALID.replace(b"inputs: [nums]", b"inputs: [nums"), 8, None, ("not closed",)),
    ("env-in-flow-mapping", VALID.replace(b"count: 3}", b"count: ${COUNT}}"), 4, None, ('"${VAR}"', "quotes")),
    ("env-in-flow-sequence", VALID.replace(b"[nums]", b"[${INPUT}]"), 8, None, ('"${VAR}"',)),
    ("python-tag", VALID + b"x: !!python/object/apply:os.system ['echo pwned']\n", 9, "$.x", ("!!python/object",)),
    ("custom-tag", VALID + b"x: !secret api\n", 9, "$.x", ("the tag !secret",)),
    ("bad-date", VALID + b"x: 2024-13-45\n", 9, "$.x", ("'2024-13-45'", "quote it")),
    ("undefined-alias", VALID + b"x: *nowhere\n", 9, None, ("undefined alias", "&name")),
]


def write(folder: Path, content: bytes) -> Path:
    path = folder / "job.yaml"
    path.write_bytes(content)
    return path


def load_problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        testing.load(path, {}, [kit.KIT])
    return caught.value.problems


@pytest.mark.parametrize(
    ("content", "line", "spec_path", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_refused_in_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, line: int, spec_path: str | None, words: tuple[str, ...]
) -> None:
    path = write(tmp_path, content)
    started = time.perf_counter()
    problems = load_problems(path)
    elapsed = time.perf_counter() - started
    assert len(problems) == 1, problems
    (problem,) = problems
    prefix = f"{path.resolve()}:{line}: " + (f"{spec_path}: " if spec_path else "")
    assert problem.startswith(prefix), f"{problem!r} does not start with {prefix!r}"
    assert "\n" not in problem
    for word in words:
        assert word in problem, f"{word!r} not in {problem!r}"
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


def test_the_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 600
    started = time.perf_counter()
    load_problems(path)
    assert time.perf_counter() - started < 0.5


def test_aliases_and_merge_keys_within_limits_work(tmp_path: Path) -> None:
    content = (
        VALID
        + b"""\
  copy:
    <<: *collect
    batch_size: 5
"""
    )
    content = content.replace(b"  out:\n", b"  out: &collect\n")
    spec = testing.load(write(tmp_path, content), {}, [kit.KIT])
    assert spec.components["copy"].type == "t.collect"
    assert spec.components["copy"].inputs == ("nums",)
    assert spec.components["copy"].batch_size == 5


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"version: 1\njob: [" + b",".join([b"1"] * 20_000) + b"]\n", 2, "too large (at most 10,000 values)"),
        (VALID + b"# " + b"x" * 2**20 + b"\n", None, "larger than 1 MiB"),
    ],
    ids=["too-many-values", "too-many-bytes"],
)
def test_a_huge_spec_is_refused_quickly(tmp_path: Path, content: bytes, line: int | None, words: str) -> None:
    path = write(tmp_path, content)
    started = time.perf_counter()
    (problem,) = load_problems(path)
    assert time.perf_counter() - started < 5
    assert problem.startswith(f"{path.resolve()}:{line}: " if line else f"{path.resolve()}: "), problem
    assert words in problem


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    spec = testing.load(write(tmp_path, codecs.BOM_UTF8 + VALID), {}, [kit.KIT])
    assert spec.job == "demo"


def test_quoted_keys_that_look_like_booleans_are_text(tmp_path: Path) -> None:
    content = VALID.replace(b"  nums:", b'  "on":').replace(b"[nums]", b"['on']")
    spec = testing.load(write(tmp_path, content), {}, [kit.KIT])
    assert list(spec.components) == ["on", "out"]


def test_every_yaml_level_problem_is_reported_at_once(tmp_path: Path) -> None:
    content = VALID + b"on: push\nsinks: {}\n1: x\n"
    problems = load_problems(write(tmp_path, content))
    assert [problem.split(": ")[1] for problem in problems] == ["$.on", "$.sinks", "$.1"], problems


# --- the same through the real command line --------------------------------------------------------------------

CLI_CASES = [
    "duplicate-section",
    "key-on",
    "key-number",
    "alias-bomb",
    "nesting-flow-sequence",
    "binary",
    "utf-16-le-bom",
    "utf-16-no-bom",
    "latin-1",
    "empty",
    "colon-in-value",
    "env-in-flow-mapping",
]


def validate(path: Path) -> tuple[int, str, float]:
    """``crmsync validate PATH`` in a subprocess with the built-in plugins: exit code, stderr, seconds."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CRMSYNC_")}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "connector_core", "validate", str(path)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )
    return result.returncode, result.stderr, time.perf_counter() - started


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_crmsync_validate_exits_2_with_one_line(tmp_path: Path, case_id: str) -> None:
    _, content, line, _, _ = next(case for case in CASES if case[0] == case_id)
    path = write(tmp_path, content)
    code, stderr, seconds = validate(path)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"crmsync: error: {path.resolve()}:{line}: "), stderr
    assert seconds < 10


@pytest.mark.parametrize("case", sorted(SUITE.glob("*.yaml")), ids=lambda path: path.stem)
def test_invalid_yaml_from_the_yaml_test_suite(case: Path) -> None:
    problems = load_problems(case)
    assert all(problem.startswith(f"{case}:") and "\n" not in problem for problem in problems), problems
    if case.stem != "9C9N":  # PyYAML accepts this one; it fails as a spec (no version) instead
        assert len(problems) == 1 and ": invalid YAML: " in problems[0], problems

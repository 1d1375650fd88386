"""The ``csv`` source's fast path against the careful reading it replaces, over generated messy files.

Rows in = records delivered + rows in the error stream, and the very same ones: data, keys, positions,
reasons and counters are compared for files full of quoted commas and line breaks, stray quotes, blank and
whitespace lines, ragged rows, NUL characters, over-long fields and mixed line endings, with blocks as small as
one line so that records straddle block boundaries.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from connector_core.components import Failed
from connector_core.records import Record
from crmsync_plugins.files import csv_rows
from crmsync_plugins.files.csv_rows import CsvRecords, Unreadable, _stray_quote, _stray_quote_by_char
from crmsync_plugins.files.csv_source import CsvSource, CsvSourceOptions

from .csv_reference import careful_read, careful_records

FIELDS = [
    "plain",
    "",
    " spaced ",
    "Zoë 東京",
    '"quoted, comma"',
    '"two\nlines"',
    '"three\r\nline\nfield"',
    '"doubled ""quote"""',
    '"closes early" then text',
    'inch 5" screen',
    '"stray',
    'stray"',
    '""',
    "nul\x00byte",
    "x" * 30,
    '"open to the end\n',
]
ENDINGS = ["\n", "\r\n", "\r"]


def messy_csv(rng: random.Random, delimiter: str) -> str:
    lines = [delimiter.join(["a", "b", "c"]) + "\n"]
    for _ in range(rng.randint(0, 40)):
        roll = rng.random()
        if roll < 0.05:
            line = ""
        elif roll < 0.08:
            line = "   "
        else:
            width = rng.choice([3, 3, 3, 3, 2, 4, 1])
            line = delimiter.join(rng.choice(FIELDS) for _ in range(width))
        lines.append(line + rng.choice(ENDINGS))
    text = "".join(lines)
    return text.rstrip("\r\n") if rng.random() < 0.3 else text


def outcome(items: list[Record | Failed]) -> list[tuple[object, ...]]:
    return [
        ("record", item.data, item.key, item.position)
        if isinstance(item, Record)
        else ("failed", item.record.data, item.record.key, item.record.position, item.reason)
        for item in items
    ]


@pytest.mark.parametrize("seed", range(150))
def test_fast_path_reads_what_the_careful_reading_reads(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    delimiter = rng.choice([",", ";", "\t"])
    path = tmp_path / "in.csv"
    path.write_text(messy_csv(rng, delimiter), encoding="utf-8", newline="")
    options = CsvSourceOptions(
        path=path,
        delimiter=delimiter,
        max_lines_per_record=rng.choice([1, 2, 3, 1000]),
        max_field_chars=rng.choice([12, 1_000_000]),
    )
    monkeypatch.setattr(csv_rows, "BLOCK_LINES", rng.choice([1, 2, 3, 5, 1000]))
    key = rng.choice([(), ("a",)])
    fast = CsvSource("src", options, None, key=key)  # type: ignore[arg-type]
    careful = CsvSource("src", options, None, key=key)  # type: ignore[arg-type]
    assert outcome(list(fast.read())) == outcome(list(careful_read(careful, delimiter)))
    assert fast._counts == careful._counts


@pytest.mark.parametrize("seed", range(40))
def test_blocks_hold_the_careful_records(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    lines = messy_csv(rng, ",").splitlines(keepends=True)
    monkeypatch.setattr(csv_rows, "BLOCK_LINES", rng.choice([1, 2, 4, 1000]))
    max_lines = rng.choice([1, 2, 1000])
    flat: list[object] = []
    for block in CsvRecords(lines, ",", '"', max_lines):
        if isinstance(block, Unreadable):
            flat.append(block)
            continue
        starts, rows, held = block
        assert len(starts) == len(rows) and starts == sorted(set(starts))
        bounds = [start - starts[0] for start in starts] + [len(held)]
        for i, (start, row) in enumerate(zip(starts, rows, strict=True)):
            flat.append((start, row, held[bounds[i] : bounds[i + 1]]))
    assert flat == list(careful_records(lines, ",", '"', max_lines))


@pytest.mark.parametrize(("delimiter", "quote"), [(",", '"'), (";", "'"), ("\t", '"'), (",", "|")])
def test_stray_quote_scan_jumps_to_the_same_answer(delimiter: str, quote: str) -> None:
    rng = random.Random(delimiter + quote)
    pieces = ["a", " ", "\t", ",", ";", '"', "'", "|", "\n", "\r", '""', "''", 'x"y']
    for _ in range(50_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert _stray_quote(text, delimiter, quote) == _stray_quote_by_char(text, delimiter, quote), repr(text)


@pytest.mark.parametrize("bad", ["{n},ragged", "{n},{long},y", "{n},nul\x00,y"])
def test_the_good_rows_around_bad_ones_are_built_in_batches(bad: str, tmp_path: Path) -> None:
    """A ragged row, an over-long field or a NUL puts its block off the fast path (a messy list has one in
    nearly every block): the block's good rows are still made records many at a time, each run of them one call
    of ``rows()`` (with state, one call of the fingerprints), and every row comes out in its place."""
    lines = ["a,b,c\n"] + [(bad if n % 100 == 50 else "{n},x,y").format(n=n, long="z" * 50) + "\n" for n in range(3000)]
    path = tmp_path / "in.csv"
    path.write_text("".join(lines), encoding="utf-8", newline="")
    source = CsvSource("src", CsvSourceOptions(path=path, delimiter=",", max_field_chars=20), None)  # type: ignore[arg-type]
    built: list[int] = []
    rows = source.rows

    def counted(datas: list[dict[str, str]], first: list[int]) -> list[Record]:
        built.append(len(datas))
        return rows(datas, first)

    source.rows = counted  # type: ignore[method-assign]
    items = list(source.read())
    assert [item.record.position if isinstance(item, Failed) else item.position for item in items] == list(
        range(2, 3002)
    )
    assert [item.record.position for item in items if isinstance(item, Failed)] == list(range(52, 3002, 100))
    assert sum(built) == 2970 and len(built) <= 2 * 31  # runs of good rows, never a call per row

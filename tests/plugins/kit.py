"""Helpers for the built-in plugin tests: run a small job, or drive one mapper without the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.records import Record, content_key
from connector_core.report import RunReport
from connector_core.spec.converter import make_converter
from connector_core.testing import read_jsonl, run_job, write_spec

#: Data per output and failure reasons of one mapper batch.
Routed = tuple[dict[str, list[dict[str, Any]]], list[str]]


@attrs.frozen
class JobResult:
    """A finished test job: its report, what reached the ``out`` sink and the error stream."""

    report: RunReport
    records: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    @property
    def reasons(self) -> list[str]:
        """The reasons of the error-stream records, in order."""
        return [error["_error"]["reason"] for error in self.errors]


#: ``pipeline(source, mappers=None, out=None)``: see :func:`run_pipeline`.
Pipeline = Callable[..., JobResult]
#: ``write(name, text_or_bytes)`` → the path of the file written into the test's folder.
Write = Callable[[str, str | bytes], Path]
#: ``mapper(cls, options)`` → a function running one batch of rows through it.
MapperFactory = Callable[[type[Mapper], dict[str, Any]], Callable[..., Routed]]


def run_pipeline(
    folder: Path,
    source: dict[str, Any],
    mappers: dict[str, dict[str, Any]] | None = None,
    out: dict[str, Any] | None = None,
) -> JobResult:
    """Run ``source`` → ``mappers`` (chained in order) → the sink ``out`` and the error sink ``errors.jsonl``.

    ``out`` defaults to a JSONL sink ``out.jsonl`` with metadata; options without a ``type`` are merged into
    that default, options with one replace it. Options are Python dicts written as JSON, which is valid YAML.
    """
    last = "src"
    chained: dict[str, dict[str, Any]] = {}
    for name, options in (mappers or {}).items():
        chained[name] = {"inputs": [last], **options}
        last = name
    sink = {"type": "jsonl", "path": "out.jsonl", "metadata": True}
    sink = dict(out) if out and "type" in out else {**sink, **(out or {})}
    spec = {
        "version": 1,
        "job": "test",
        "sources": {"src": source},
        "mappers": chained,
        "sinks": {
            "out": {**sink, "inputs": [last]},
            "errs": {"type": "jsonl", "path": "errors.jsonl", "inputs": ["errors"]},
        },
    }
    report = run_job(write_spec(folder, json.dumps(spec, indent=2)))
    records = read_jsonl(folder / "out.jsonl") if (folder / "out.jsonl").exists() else []
    errors = read_jsonl(folder / "errors.jsonl") if (folder / "errors.jsonl").exists() else []
    return JobResult(report, records, errors)


def build(cls: type[Mapper], options: dict[str, Any]) -> Mapper:
    """A mapper built from spec-style options, structured by the converter the spec loader uses."""
    structured = make_converter(Path.cwd()).structure(options, cls.Options)
    return cls("m", structured, None)  # type: ignore[arg-type]  # mappers never use the context


def make_records(*rows: dict[str, Any]) -> list[Record]:
    """Records as a source would make them (content keys, positions from 1)."""
    return [Record(row, content_key(row), "src", number) for number, row in enumerate(rows, 1)]


def run_mapper(mapper: Mapper, rows: list[dict[str, Any]]) -> Routed:
    """Run one batch through ``mapper``: (data per output, failure reasons)."""
    out = Emitter()
    mapper.process(make_records(*rows), out)
    routed = {output: [record.data for record in batch] for output, batch in out.routed.items()}
    return routed, [failure.reason for failure in out.failed]

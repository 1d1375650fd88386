"""Fixtures for the built-in plugin tests (helpers live in :mod:`tests.plugins.kit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector_core.components import Mapper

from .kit import JobResult, MapperFactory, Pipeline, Routed, Write, build, run_mapper, run_pipeline


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    """:func:`~tests.plugins.kit.run_pipeline` in the test's folder."""

    def run(
        source: dict[str, Any], mappers: dict[str, dict[str, Any]] | None = None, out: dict[str, Any] | None = None
    ) -> JobResult:
        return run_pipeline(tmp_path, source, mappers, out)

    return run


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write a file into the test's folder: ``write("in.csv", "a,b\\n1,2\\n")``; bytes are written as is."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    return write


@pytest.fixture
def mapper() -> MapperFactory:
    """``mapper(FieldsMapper, options)(*rows)`` → (data per output, failure reasons) for one batch."""

    def make(cls: type[Mapper], options: dict[str, Any]) -> Any:
        built = build(cls, options)

        def run(*rows: dict[str, Any]) -> Routed:
            return run_mapper(built, list(rows))

        return run

    return make

"""PEP 561: crmsync's packages say they are typed, so a plugin author's mypy or pyright checks a component
against ``Sink[Options]`` and the records it gets instead of treating crmsync as ``Any``."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("folder", ["connector_core", "plugins"])
def test_each_package_carries_the_typed_marker(folder: str) -> None:
    # Shipped by pyproject.toml's package-data; .ci/wheel-smoke checks the installed wheel has both.
    assert (ROOT / folder / "py.typed").is_file()

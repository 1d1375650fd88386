"""Every hook is documented: a docstring with ``:param`` for each argument, and a mention in the plugin guide."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from connector_core import hookspecs

PLUGIN_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugin-authors.md"
EXPECTED_HOOKS = {
    "register_sources",
    "register_mappers",
    "register_sinks",
    "register_connections",
    "register_commands",
    "before_sync",
    "after_batch",
    "on_record_error",
    "after_sync",
}


def test_hook_names_are_discovered() -> None:
    assert set(hookspecs.HOOK_NAMES) == EXPECTED_HOOKS


@pytest.mark.parametrize("name", sorted(EXPECTED_HOOKS))
def test_hook_docstring_documents_every_argument(name: str) -> None:
    hook = getattr(hookspecs, name)
    doc = inspect.getdoc(hook)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.strip(), f"{name}'s docstring has no summary line"
    for argument in inspect.signature(hook).parameters:
        assert f":param {argument}:" in doc, f"{name}'s docstring lacks ':param {argument}:'"
    documented = {line.split(":")[1].split()[1] for line in doc.splitlines() if line.startswith(":param ")}
    assert documented <= set(inspect.signature(hook).parameters), f"{name} documents unknown parameters"


def test_every_hook_is_in_the_plugin_guide() -> None:
    if not PLUGIN_GUIDE.exists():
        pytest.skip("docs/plugin-authors.md does not exist yet (the lead is writing it)")
    guide = PLUGIN_GUIDE.read_text(encoding="utf-8")
    missing = [name for name in sorted(EXPECTED_HOOKS) if name not in guide]
    assert not missing, f"hooks not mentioned in {PLUGIN_GUIDE}: {missing}"

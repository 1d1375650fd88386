"""``registry.add_lazy``: a component type registered by where its class is, imported only when a spec uses it,
and a broken one skipping its plugin exactly as a failing registration hook does."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector_core import hookimpl
from connector_core.errors import PluginError, SpecError
from connector_core.plugin_manager import get_plugin_host
from connector_core.registry import ComponentRegistry

from . import kit
from .conftest import Jobs

#: A plugin's component module, written to a temporary folder on sys.path (so a test sees when it is imported).
MODULE = """
from tests.core.kit import Collect, Numbers


class LazyNumbers(Numbers):
    pass


class LazyCollect(Collect):
    pass


NOT_A_SOURCE = Collect
"""

JOB = """
version: 1
job: lazy
sources:
  nums: {type: lazy.numbers, count: 3}
sinks:
  out: {type: lazy.collect, inputs: [nums]}
"""


@pytest.fixture
def lazy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a fresh module holding ``LazyNumbers`` and ``LazyCollect``, not imported yet."""
    name = f"lazy_components_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def lazy_plugin(module: str, source: str = "LazyNumbers", sink: str = "LazyCollect") -> types.SimpleNamespace:
    @hookimpl
    def register_sources(registry):
        registry.add_lazy("lazy.numbers", f"{module}:{source}")

    @hookimpl
    def register_sinks(registry):
        registry.add_lazy("lazy.collect", f"{module}:{sink}")

    @hookimpl
    def before_sync(context):
        kit.STORE["before_sync"].append(True)

    return types.SimpleNamespace(
        register_sources=register_sources, register_sinks=register_sinks, before_sync=before_sync
    )


def test_a_lazy_type_is_listed_without_its_module_and_imported_on_first_use(lazy_module: str) -> None:
    host = get_plugin_host(load_entrypoints=False, extra_plugins=[("lazy_plugin", lazy_plugin(lazy_module))])
    assert "lazy.numbers" in host.sources.names() and "lazy.collect" in host.sinks.names()
    assert lazy_module not in sys.modules  # the registries are filled, nothing of the plugin is imported
    entry = host.sources.get("lazy.numbers")
    assert entry is not None and entry.cls.__name__ == "LazyNumbers" and entry.plugin == "lazy_plugin"
    assert lazy_module in sys.modules
    assert host.sources.get("lazy.numbers") is entry  # imported and checked once


def test_a_job_runs_with_lazily_registered_types(jobs: Jobs, lazy_module: str) -> None:
    report = jobs.run(JOB, plugins=[("lazy_plugin", lazy_plugin(lazy_module))])
    assert report.status == "success"
    assert kit.STORE["out"] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_listing_the_plugins_shows_lazy_types(lazy_module: str) -> None:
    host = get_plugin_host(load_entrypoints=False, extra_plugins=[("lazy_plugin", lazy_plugin(lazy_module))])
    [info] = [info for info in host.plugins() if info.name == "lazy_plugin"]
    assert info.components == ("sink:lazy.collect", "source:lazy.numbers") and info.problem is None


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("Missing", ["AttributeError", "Missing"]),
        ("NOT_A_SOURCE", ["not a subclass of Source"]),
    ],
)
def test_a_lazy_type_that_does_not_load_skips_its_plugin_with_a_warning(
    jobs: Jobs, lazy_module: str, source: str, words: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    plugin = lazy_plugin(lazy_module, source=source)
    with pytest.raises(SpecError, match=r"unknown source type 'lazy\.numbers'"):
        jobs.load(JOB, plugins=[("lazy_plugin", plugin)])
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for word in ["'lazy_plugin'", "'lazy.numbers'", f"{lazy_module}:{source}", *words]:
        assert word in warning


def test_a_broken_lazy_type_withdraws_the_rest_of_its_plugin(lazy_module: str) -> None:
    host = get_plugin_host(
        load_entrypoints=False, extra_plugins=[kit.KIT, ("lazy_plugin", lazy_plugin(lazy_module, sink="Nowhere"))]
    )
    assert host.sources.get("lazy.numbers") is not None
    assert host.sinks.get("lazy.collect") is None
    assert "lazy.numbers" not in host.sources.names()  # a half-working plugin is taken out whole
    assert "t.numbers" in host.sources.names()  # the other plugins go on
    host.hooks.before_sync(context=None)  # type: ignore[arg-type]
    assert kit.STORE["before_sync"] == []
    [info] = [info for info in host.plugins() if info.name == "lazy_plugin"]
    assert info.problem is not None and "Nowhere" in info.problem


def test_a_module_that_fails_to_import_skips_the_plugin(caplog: pytest.LogCaptureFixture) -> None:
    plugin = lazy_plugin("no_such_package.components")
    host = get_plugin_host(load_entrypoints=False, extra_plugins=[("lazy_plugin", plugin)])
    assert host.sources.get("lazy.numbers") is None
    assert "ModuleNotFoundError" in caplog.text and "no_such_package" in caplog.text


def test_a_target_without_a_class_is_refused_when_registered(caplog: pytest.LogCaptureFixture) -> None:
    @hookimpl
    def register_sources(registry):
        registry.add_lazy("lazy.numbers", "tests.core.kit.Numbers")  # a dot where the colon belongs

    host = get_plugin_host(
        load_entrypoints=False,
        extra_plugins=[kit.KIT, ("typo_plugin", types.SimpleNamespace(register_sources=register_sources))],
    )
    assert "lazy.numbers" not in host.sources.names() and "t.numbers" in host.sources.names()
    assert "'typo_plugin'" in caplog.text and "expected 'package.module:Class'" in caplog.text


@pytest.mark.parametrize("lazy_first", [True, False])
def test_a_name_registered_lazily_and_eagerly_names_both_plugins(lazy_first: bool) -> None:
    @hookimpl
    def lazily(registry):
        registry.add_lazy("t.numbers", "tests.core.kit:Numbers")

    plugins = [("lazy_plugin", types.SimpleNamespace(register_sources=lazily)), kit.KIT]
    host = get_plugin_host(load_entrypoints=False, extra_plugins=plugins if lazy_first else plugins[::-1])
    with pytest.raises(PluginError) as caught:
        host.sources  # noqa: B018 - registries are filled on first use
    assert "'t.numbers'" in str(caught.value) and "'lazy_plugin'" in str(caught.value) and "'kit'" in str(caught.value)


def test_without_a_plugin_manager_a_broken_lazy_type_raises() -> None:
    from connector_core.components import Source

    registry = ComponentRegistry("source", Source)
    registry.current_plugin = "mine"
    registry.add_lazy("mine.numbers", "tests.core.kit:Nothing")
    with pytest.raises(PluginError, match=r"plugin 'mine' failed to load source 'mine\.numbers'"):
        registry.get("mine.numbers")
    assert registry.get("mine.numbers") is None  # reported once, then gone

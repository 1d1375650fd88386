"""The plugin manager: discovery, allow/block lists, registration errors, observers and lifecycle hooks."""

from __future__ import annotations

import logging
import sys
import types
from importlib.metadata import EntryPoint

import attrs
import pytest

from connector_core import hookimpl
from connector_core.components import Mapper, Sink, Source
from connector_core.errors import PluginError
from connector_core.plugin_manager import PluginInfo, get_plugin_host
from connector_core.records import Record
from connector_core.report import RunReport

from . import kit
from .conftest import Jobs

SIMPLE = """\
version: 1
job: hooks
sources:
  nums: {type: t.numbers, count: 4, bad: [2], message: unreadable}
mappers:
  split: {type: t.split, inputs: [nums]}
sinks:
  even: {type: t.collect, inputs: [split]}
  odd: {type: t.collect, inputs: [split.odd]}
"""


def source_plugin(*type_names: str) -> types.SimpleNamespace:
    """A plugin object registering ``t.numbers`` under each of ``type_names``."""

    @hookimpl
    def register_sources(registry):
        for name in type_names:
            registry.add(name, kit.Numbers)

    return types.SimpleNamespace(register_sources=register_sources)


def host(*plugins: tuple[str, object]):
    return get_plugin_host(load_entrypoints=False, extra_plugins=plugins)


# Registration


def test_duplicate_type_names_name_both_plugins() -> None:
    clash = host(("first_plugin", source_plugin("t.shared")), ("second_plugin", source_plugin("t.shared")))
    with pytest.raises(PluginError) as caught:
        clash.sources  # noqa: B018 - registries are filled on first use
    message = str(caught.value)
    assert "'t.shared'" in message and "'first_plugin'" in message and "'second_plugin'" in message
    assert "CRMSYNC_DISABLE_PLUGINS=" in message


def test_duplicate_type_names_fail_loading_a_spec(jobs: Jobs) -> None:
    with pytest.raises(PluginError, match=r"'t\.numbers'.*'kit'.*'copycat'"):
        jobs.load(SIMPLE, plugins=[("copycat", source_plugin("t.numbers"))])


def test_misspelled_hook_is_rejected_at_check_pending() -> None:
    class Typo:
        @hookimpl
        def register_source(registry):
            registry.add("t.typo", kit.Numbers)

    with pytest.raises(PluginError, match="register_source") as caught:
        host(("typo_plugin", Typo))
    assert "typo_plugin" in str(caught.value)


def test_hook_with_a_wrong_argument_name_is_a_plugin_error() -> None:
    class WrongArgument:
        @hookimpl
        def register_sources(registy):
            registy.add("t.wrong", kit.Numbers)

    with pytest.raises(PluginError, match="registy"):
        host(("wrong_argument", WrongArgument))


def test_registration_hook_that_raises_skips_the_whole_plugin_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        @hookimpl
        def register_sources(registry):
            registry.add("t.half", kit.Numbers)

        @hookimpl
        def register_mappers(registry):
            registry.add("t.half_mapper", kit.Split)
            raise ImportError("No module named 'salesforce_sdk'")

        @hookimpl
        def before_sync(context):
            raise AssertionError("a skipped plugin must not be called any more")

    broken = host(kit.KIT, ("broken_plugin", Broken))
    assert "t.half" in broken.sources.names()
    assert "t.split" in broken.mappers.names()  # the other plugins go on
    assert "t.half_mapper" not in broken.mappers.names()
    assert "t.half" not in broken.sources.names()  # what it registered before failing is withdrawn too
    broken.hooks.before_sync(context=None)  # type: ignore[arg-type]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "'broken_plugin'" in warning and "salesforce_sdk" in warning and "register_mappers" in warning
    [info] = [info for info in broken.plugins() if info.name == "broken_plugin"]
    assert info.problem is not None and "salesforce_sdk" in info.problem and info.components == ()


@pytest.mark.parametrize(
    ("hook", "cls", "words"),
    [
        ("register_sources", kit.Collect, ["not a subclass of Source"]),
        ("register_sinks", kit.Split, ["not a subclass of Sink"]),
        ("register_mappers", "not even a class", ["not a subclass of Mapper"]),
        ("register_connections", kit.Numbers, ["not a subclass of Connection"]),
    ],
)
def test_registry_rejects_classes_of_the_wrong_kind(
    hook: str, cls: object, words: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    @hookimpl
    def register(registry):
        registry.add("t.bad", cls)

    bad = host(kit.KIT, ("bad_plugin", types.SimpleNamespace(**{hook: register})))
    for registry in (bad.sources, bad.mappers, bad.sinks, bad.connections):
        assert registry.get("t.bad") is None
    assert "t.numbers" in bad.sources.names()
    for word in [*words, "'bad_plugin'", "'t.bad'"]:
        assert word in caplog.text


def test_registry_rejects_options_that_are_not_attrs() -> None:
    class PlainOptions:
        count: int = 3

    class NoAttrs(Source):
        Options = PlainOptions

    bad = host(("plain_plugin", source_plugin()), ("plain", types.SimpleNamespace(register_sources=None)))
    registry = bad.sources
    registry.current_plugin = "plain"
    with pytest.raises(PluginError, match="Options must be an attrs class"):
        registry.add("t.plain", NoAttrs)
    assert registry.get("t.plain") is None


def test_registry_accepts_a_subclass_and_remembers_the_plugin() -> None:
    registry = host(kit.KIT).sinks
    entry = registry.get("t.collect")
    assert entry is not None and entry.cls is kit.Collect and entry.plugin == "kit"
    assert registry.names() == sorted(registry.names())


def test_host_lists_plugins_with_their_components() -> None:
    plugins = host(kit.KIT, ("extra", source_plugin("t.extra"))).plugins()
    assert [info.name for info in plugins] == ["extra", "kit"]
    extra, kit_info = plugins
    assert extra == PluginInfo("extra", "(registered in code)", "-", ("source:t.extra",))
    assert kit_info.distribution == "(registered in code)"
    assert "connection:t.token" in kit_info.components
    assert "mapper:t.split" in kit_info.components
    assert "sink:t.collect" in kit_info.components
    assert "source:t.numbers" in kit_info.components
    assert list(kit_info.components) == sorted(kit_info.components)


# Entry points, allowlist and blocklist


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace entry-point discovery with plugins ``alpha``, ``beta`` and ``gamma`` (modules made here)."""
    points = []
    for name in ("alpha", "beta", "gamma"):
        module = types.ModuleType(f"crmsync_test_{name}")
        module.register_sources = source_plugin(f"{name}.source").register_sources
        monkeypatch.setitem(sys.modules, module.__name__, module)
        points.append(EntryPoint(name, module.__name__, "crmsync"))

    def entry_points(group: str) -> list[EntryPoint]:
        return [point for point in points if point.group == group]

    monkeypatch.setattr("connector_core.plugin_manager.entry_points", entry_points)
    monkeypatch.delenv("CRMSYNC_PLUGINS")
    return points


def loaded_plugins() -> list[str]:
    return [info.name for info in get_plugin_host().plugins()]


def test_every_entry_point_plugin_loads_by_default(fake_entry_points) -> None:
    assert loaded_plugins() == ["alpha", "beta", "gamma"]
    assert get_plugin_host().sources.names() == ["alpha.source", "beta.source", "gamma.source"]


def test_allowlist_loads_only_the_listed_plugins(fake_entry_points, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_PLUGINS", " gamma, alpha ")
    assert loaded_plugins() == ["alpha", "gamma"]


def test_blocklist_skips_the_listed_plugins(fake_entry_points, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_DISABLE_PLUGINS", "beta")
    assert loaded_plugins() == ["alpha", "gamma"]


def test_blocklist_wins_over_allowlist(fake_entry_points, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_PLUGINS", "alpha,beta")
    monkeypatch.setenv("CRMSYNC_DISABLE_PLUGINS", "alpha")
    assert loaded_plugins() == ["beta"]


def test_entry_points_can_be_switched_off_in_code(fake_entry_points) -> None:
    assert [info.name for info in get_plugin_host(load_entrypoints=False).plugins()] == []


def test_entry_point_that_fails_to_import_is_skipped_with_a_warning(
    fake_entry_points, caplog: pytest.LogCaptureFixture
) -> None:
    fake_entry_points.insert(1, EntryPoint("broken", "crmsync_test_no_such_module", "crmsync"))
    assert get_plugin_host().sources.names() == ["alpha.source", "beta.source", "gamma.source"]
    assert "'broken'" in caplog.text and "No module named 'crmsync_test_no_such_module'" in caplog.text
    assert "CRMSYNC_DISABLE_PLUGINS=broken" in caplog.text


def test_entry_point_with_a_misspelled_hook_is_skipped_with_a_warning(
    fake_entry_points, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    module = types.ModuleType("crmsync_test_typo")
    module.register_source = hookimpl(lambda registry: None)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    fake_entry_points.append(EntryPoint("typo", module.__name__, "crmsync"))
    assert loaded_plugins() == ["alpha", "beta", "gamma", "typo"]
    assert not get_plugin_host().pm.has_plugin("typo")
    assert "'typo'" in caplog.text and "register_source" in caplog.text


def test_blocked_plugin_is_never_imported(fake_entry_points, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points.append(EntryPoint("broken", "crmsync_test_no_such_module", "crmsync"))
    monkeypatch.setenv("CRMSYNC_DISABLE_PLUGINS", "broken")
    assert loaded_plugins() == ["alpha", "beta", "gamma"]


def test_trace_env_prints_hook_calls(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_TRACE_PLUGINS", "1")
    traced = host(kit.KIT, ("recorder", Recorder()))
    traced.sources  # noqa: B018
    traced.hooks.before_sync(context=None)
    err = capsys.readouterr().err
    assert "register_sources -> kit" in err
    assert "before_sync -> recorder" in err


# Observers and lifecycle hooks


class Recorder:
    """Records every lifecycle hook call."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def before_sync(self, context):
        self.events.append(("before_sync", context))

    @hookimpl
    def after_batch(self, context, component, output, records):
        self.events.append(("after_batch", context, component, output, [r.data["i"] for r in records]))

    @hookimpl
    def on_record_error(self, context, component, record, reason):
        self.events.append(("on_record_error", context, component, record, reason))

    @hookimpl
    def after_sync(self, context, report):
        self.events.append(("after_sync", context, report))


def test_lifecycle_hooks_fire_in_order_with_their_arguments(jobs: Jobs) -> None:
    recorder = Recorder()
    report = jobs.run(SIMPLE, plugins=[("recorder", recorder)])
    assert report.status == "success"
    names = [event[0] for event in recorder.events]
    assert names == ["before_sync", "after_batch", "on_record_error", "after_batch", "after_batch", "after_sync"]
    context = recorder.events[0][1]
    assert context.job == "hooks"
    assert all(event[1] is context for event in recorder.events)
    assert recorder.events[1][2:] == ("nums", "default", [0, 1, 3])
    _, _, component, record, reason = recorder.events[2]
    assert (component, reason) == ("nums", "unreadable")
    assert isinstance(record, Record) and record.data == {"i": 2} and record.provenance == "nums:3"
    assert sorted(event[2:] for event in recorder.events[3:5]) == [("split", "default", [0]), ("split", "odd", [1, 3])]
    final = recorder.events[-1][2]
    assert isinstance(final, RunReport) and final is not None and final.status == "success"
    assert final.errors["count"] == 1


def test_hooks_may_take_a_subset_of_the_arguments(jobs: Jobs) -> None:
    seen: list[object] = []

    class Partial:
        @hookimpl
        def after_sync(report):
            seen.append(report.status)

        @hookimpl
        def on_record_error(reason):
            seen.append(reason)

    jobs.run(SIMPLE, plugins=[("partial", Partial)])
    assert seen == ["unreadable", "success"]


def test_failing_observer_is_logged_and_the_run_succeeds(jobs: Jobs, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Grumpy:
        @hookimpl
        def before_sync():
            raise RuntimeError("metrics server down")

        @hookimpl
        def after_batch(component):
            calls.append(component)
            raise ValueError("cannot count")

        @hookimpl
        def after_sync(report):
            raise KeyError("nope")

    caplog.set_level(logging.WARNING, logger="crmsync")
    report = jobs.run(SIMPLE, plugins=[("grumpy", Grumpy)])
    assert report.status == "success"
    assert report.delivered == {"even": 1, "odd": 2}
    assert calls == ["nums", "split", "split"]
    assert "plugin 'grumpy' failed in before_sync: RuntimeError: metrics server down" in caplog.text
    assert "plugin 'grumpy' failed in after_batch: ValueError: cannot count" in caplog.text
    assert "plugin 'grumpy' failed in after_sync" in caplog.text


def test_one_failing_observer_does_not_silence_another(jobs: Jobs) -> None:
    class Grumpy:
        @hookimpl
        def after_sync():
            raise RuntimeError("down")

    recorder = Recorder()
    jobs.run(SIMPLE, plugins=[("grumpy", Grumpy), ("recorder", recorder)])
    assert recorder.events[-1][0] == "after_sync"


def test_component_classes_are_the_public_bases() -> None:
    assert issubclass(kit.Collect, Sink) and issubclass(Sink, Mapper)
    assert attrs.has(kit.Numbers.Options)


def of_distribution(point: EntryPoint, name: str) -> EntryPoint:
    """``point`` as declared by the distribution ``name``."""
    vars(point).update(dist=types.SimpleNamespace(name=name, version="1.0"))
    return point


@pytest.mark.parametrize("impostor_first", [True, False])
def test_a_plugin_taking_a_built_in_name_is_skipped_with_a_warning(
    fake_entry_points, caplog: pytest.LogCaptureFixture, impostor_first: bool
) -> None:
    """Whatever order the distributions are found in, the built-in keeps its name and the other one is named."""
    built_in = of_distribution(EntryPoint("files", "crmsync_plugins.files", "crmsync"), "crmsync")
    impostor = of_distribution(EntryPoint("files", "crmsync_test_alpha", "crmsync"), "crmsync-files")
    fake_entry_points[:] = [impostor, built_in] if impostor_first else [built_in, impostor]
    host = get_plugin_host()
    [info] = host.plugins()
    assert (info.name, info.distribution) == ("files", "crmsync")
    assert "csv" in host.sources.names() and "alpha.source" not in host.sources.names()
    assert "plugin 'files' of distribution crmsync-files is skipped: crmsync's plugin has that name" in caplog.text


def test_a_plugin_handed_in_code_that_is_also_installed_registers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's tests may pass its module to the kit (before it was installed) and keep passing after."""
    import crmsync_plugins.files

    monkeypatch.setenv("CRMSYNC_PLUGINS", "files")

    host = get_plugin_host(extra_plugins=[("files", crmsync_plugins.files)])
    assert [info.name for info in host.plugins()].count("files") == 1
    assert "csv" in host.sources.names()
    with pytest.raises(PluginError, match="'files' cannot be registered"):  # another plugin under its name is not
        get_plugin_host(extra_plugins=[("files", types.ModuleType("crmsync_test_other"))])

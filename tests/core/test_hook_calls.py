"""Lifecycle hooks go through pluggy: wrappers and ordering work; what crmsync cannot honour is refused early."""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

import pytest

from connector_core import hookimpl, hookspecs
from connector_core.errors import PluginError
from connector_core.hooks import LIFECYCLE_HOOKS, REGISTRATION_HOOKS
from connector_core.plugin_manager import get_plugin_host
from connector_core.report import RunReport

from .conftest import Jobs
from .test_plugins import SIMPLE


def test_a_new_style_wrapper_of_after_sync_runs_around_the_observers(jobs: Jobs) -> None:
    events: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def after_sync(self, report: RunReport) -> Generator[None, Any, Any]:
            events.append(f"before:{report.status}")
            result = yield
            events.append("after")
            return result

    class Observer:
        @hookimpl
        def after_sync(self) -> None:
            events.append("observer")

    jobs.run(SIMPLE, plugins=[("observer", Observer()), ("wrapper", Wrapper())])
    assert events == ["before:success", "observer", "after"]


def test_an_old_style_hookwrapper_of_every_lifecycle_hook_runs(jobs: Jobs) -> None:
    seen: list[str] = []

    def wrap(name: str) -> Any:
        @hookimpl(hookwrapper=True)
        def wrapper() -> Generator[None, Any, None]:
            seen.append(name)
            yield

        return wrapper

    plugin = type("Wrappers", (), {name: staticmethod(wrap(name)) for name in LIFECYCLE_HOOKS})
    jobs.run(SIMPLE, plugins=[("wrappers", plugin)])
    assert set(seen) == LIFECYCLE_HOOKS
    assert seen[0] == "before_sync" and seen[-1] == "after_sync"


def test_tryfirst_and_trylast_order_the_observers(jobs: Jobs) -> None:
    order: list[str] = []

    class Last:
        @hookimpl(trylast=True)
        def before_sync(self) -> None:
            order.append("last")

    class First:
        @hookimpl(tryfirst=True)
        def before_sync(self) -> None:
            order.append("first")

    class Plain:
        @hookimpl
        def before_sync(self) -> None:
            order.append("plain")

    jobs.run(SIMPLE, plugins=[("first", First()), ("last", Last()), ("plain", Plain())])
    assert order == ["first", "plain", "last"]


def test_a_failing_wrapper_is_logged_and_the_run_goes_on(jobs: Jobs, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @hookimpl(wrapper=True)
        def after_sync(self) -> Generator[None, Any, Any]:
            yield
            raise RuntimeError("wrapper down")

    report = jobs.run(SIMPLE, plugins=[("broken", Broken())])
    assert report.status == "success"
    assert "a wrapper of after_sync failed: RuntimeError: wrapper down" in caplog.text


@pytest.mark.parametrize("hook", sorted(REGISTRATION_HOOKS))
def test_a_wrapper_of_a_registration_hook_is_refused_naming_the_plugin(hook: str) -> None:
    # pluggy matches implementations by function name: build one named after the hook.
    argument = "commands" if hook == "register_commands" else "registry"
    code = f"def {hook}({argument}):\n    return (yield)\n"
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    plugin = type("Wrapping", (), {hook: staticmethod(hookimpl(wrapper=True)(namespace[hook]))})
    with pytest.raises(PluginError, match=rf"plugin 'wrapping': {hook} cannot be a wrapper"):
        get_plugin_host(load_entrypoints=False, extra_plugins=[("wrapping", plugin)])


def test_an_async_hook_is_refused_naming_the_plugin() -> None:
    class Async:
        @hookimpl
        async def after_sync(self) -> None:
            pass

    with pytest.raises(PluginError, match=r"plugin 'async-obs': after_sync is async.*plain def"):
        get_plugin_host(load_entrypoints=False, extra_plugins=[("async-obs", Async())])


def test_a_generator_not_marked_as_wrapper_is_refused() -> None:
    class Forgot:
        @hookimpl
        def before_sync(self) -> Generator[None, None, None]:
            yield

    with pytest.raises(PluginError, match=r"plugin 'forgot': before_sync yields.*wrapper=True"):
        get_plugin_host(load_entrypoints=False, extra_plugins=[("forgot", Forgot())])


def test_a_refused_plugin_leaves_nothing_registered() -> None:
    class Async:
        @hookimpl
        async def before_sync(self) -> None:
            pass

    host = get_plugin_host(load_entrypoints=False)
    with pytest.raises(PluginError):
        get_plugin_host(load_entrypoints=False, extra_plugins=[("async-obs", Async())])
    assert host.pm.get_plugins() == set()


def test_the_batch_fast_path_sees_only_real_observers() -> None:
    class Batches:
        @hookimpl
        def after_batch(self) -> None:
            pass

    assert not get_plugin_host(load_entrypoints=False).hooks.observes_batches
    assert get_plugin_host(load_entrypoints=False, extra_plugins=[("b", Batches())]).hooks.observes_batches


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_says_since_which_version_it_exists(name: str) -> None:
    assert ".. versionadded::" in (inspect.getdoc(getattr(hookspecs, name)) or "")


def test_the_typed_facade_has_one_method_per_lifecycle_hook() -> None:
    from connector_core.hooks import LifecycleHooks

    for name in LIFECYCLE_HOOKS:
        facade = inspect.signature(getattr(LifecycleHooks, name))
        spec = inspect.signature(getattr(hookspecs, name))
        assert list(facade.parameters)[1:] == list(spec.parameters), name
    assert set(hookspecs.HOOK_NAMES) == LIFECYCLE_HOOKS | REGISTRATION_HOOKS

"""Shared fixtures of the core tests.

Core tests are hermetic: entry-point plugins (the built-ins, anything installed) are switched off with the
``CRMSYNC_PLUGINS`` allowlist, and jobs use the in-code ``kit`` plugin from :mod:`kit`. Tests about
entry-point discovery override that environment themselves.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from connector_core import testing
from connector_core.errors import SpecError
from connector_core.plugin_manager import get_plugin_host
from connector_core.report import RunReport
from connector_core.spec.model import SyncSpec

from . import kit

#: An allowlist naming no installed plugin: no entry-point plugin loads.
NO_ENTRY_POINTS = "__crmsync_core_tests_none__"
CANARY = "sk-canary-XYZ123"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_PLUGINS", NO_ENTRY_POINTS)
    monkeypatch.delenv("CRMSYNC_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("CRMSYNC_TRACE_PLUGINS", raising=False)
    kit.reset()


class Jobs:
    """Writes specs into a temporary folder and loads or runs them with the ``kit`` plugin."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.text = ""
        self.path = folder / "job.yaml"

    def write(self, text: str, name: str = "job.yaml") -> Path:
        self.text = textwrap.dedent(text)
        self.path = testing.write_spec(self.folder, text, name)
        return self.path

    def line(self, needle: str) -> int:
        """The 1-based line of the last written spec where ``needle`` first appears."""
        for number, line in enumerate(self.text.splitlines(), start=1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} is not in the spec")

    def load(
        self, text: str, environ: Mapping[str, str] | None = None, plugins: Iterable[tuple[str, object]] = ()
    ) -> SyncSpec:
        return testing.load(self.write(text), environ, [kit.KIT, *plugins])

    def run(
        self,
        text: str,
        environ: Mapping[str, str] | None = None,
        plugins: Iterable[tuple[str, object]] = (),
        max_error_rate: float | None = None,
    ) -> RunReport:
        return testing.run_job(self.write(text), environ, [kit.KIT, *plugins], max_error_rate)

    def spec_error(
        self, text: str, environ: Mapping[str, str] | None = None, plugins: Iterable[tuple[str, object]] = ()
    ) -> SpecError:
        with pytest.raises(SpecError) as caught:
            self.load(text, environ, plugins)
        return caught.value

    def assert_problem(self, error: SpecError, spec_path: str, line: int, *words: str) -> str:
        """The one problem about ``spec_path``: it names the file, the line and the path, and has ``words``."""
        expected = f"{self.path.resolve()}:{line}: {spec_path}: "
        matching = [problem for problem in error.problems if f": {spec_path}: " in problem]
        assert len(matching) == 1, f"expected one problem about {spec_path}, got {error.problems}"
        problem = matching[0]
        assert problem.startswith(expected), f"{problem!r} does not start with {expected!r}"
        for word in words:
            assert word in problem, f"{word!r} not in {problem!r}"
        return problem


@pytest.fixture
def jobs(tmp_path: Path) -> Jobs:
    return Jobs(tmp_path)


@pytest.fixture
def kit_cli(monkeypatch: pytest.MonkeyPatch):
    """Make ``connector_core.cli.main`` use the ``kit`` plugin (plus any given) instead of entry points."""

    def install(*plugins: tuple[str, object]) -> None:
        monkeypatch.setattr(
            "connector_core.cli.get_plugin_host",
            lambda: get_plugin_host(load_entrypoints=False, extra_plugins=[kit.KIT, *plugins]),
        )

    install()
    return install

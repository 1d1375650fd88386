"""Standard tests for sources, mappers and sinks: subclass one, say what your component is, run pytest.

Each class runs your component in small jobs wired with the ``testkit`` plugin (a JSONL source, a crash
switch, a collecting sink) and checks what every component must do: handle empty input, large inputs in
many batches, route rejects to the error stream with their provenance, resume after a crash with durable state
without losing or doubling a record, and deliver nothing twice when a job is re-run::

    from connector_core.testing.conformance import SinkConformance

    class TestMySink(SinkConformance):
        component_type = "my.sink"
        rejected_record = {"id": -1, "email": "not-an-email"}

        def options(self, folder):
            return {"path": "out.jsonl"}

        def delivered(self, folder):
            return read_jsonl(folder / "out.jsonl")

Records are dicts from :meth:`make_record` (override it for your component's fields); the ``id`` field is the
record key unless you change :attr:`key`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import yaml

from connector_core import api
from connector_core.components import ComponentClass, Mapper
from connector_core.errors import SpecError
from connector_core.plugin_manager import get_plugin_host
from connector_core.registry import ComponentRegistry
from connector_core.report import RunReport
from connector_core.testing import components as testkit_components
from connector_core.testing import read_jsonl, write_jsonl
from connector_core.testing.components import KILLED

INPUT = "testkit-input.jsonl"
ERRORS = "testkit-errors.jsonl"
NEVER = 10**9
#: What the separate process of :meth:`_Conformance.run_killed` runs.
_KILLED_RUN = """
import importlib, json, sys
import connector_core
from connector_core.testing import components
args = json.loads(sys.argv[1])
plugins = [("testkit", components), *((name, importlib.import_module(module)) for name, module in args["plugins"])]
connector_core.run(args["path"], environ=args["environ"], state=args["state"], plugins=plugins)
"""


class _Conformance:
    """What every conformance class shares: building, running and reading the little test jobs."""

    #: The type under test, as written in a spec.
    component_type: ClassVar[str] = ""
    #: Records in the large-input test: several default batches of every kind.
    large: ClassVar[int] = 2500
    #: The record field holding each record's key.
    key: ClassVar[str] = "id"
    #: In-code plugins to register besides the installed ones: ``(name, module_or_object)`` pairs.
    plugins: ClassVar[tuple[tuple[str, object], ...]] = ()

    def make_record(self, index: int) -> dict[str, Any]:
        """The data of the ``index``-th input record (override for your component's fields)."""
        return {"id": index, "email": f"person{index}@example.com", "name": f"Person {index}"}

    def options(self, folder: Path) -> dict[str, Any]:
        """The component's options in a job whose spec lives in ``folder`` (relative paths resolve there)."""
        return {}

    def environ(self) -> Mapping[str, str]:
        """The environment the job's ``${VAR}`` references read (default: none)."""
        return {}

    def run(self, folder: Path, spec: dict[str, Any], state: bool = False) -> RunReport:
        """Write ``spec`` as ``job.yaml`` in ``folder`` and run it (with a state file there when ``state``)."""
        path = folder / "job.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "job": "conformance", **spec}), encoding="utf-8")
        plugins = (("testkit", testkit_components), *self.plugins)
        return api.run(path, environ=self.environ(), plugins=plugins, state=folder / "state.db" if state else None)

    def run_killed(self, folder: Path, spec: dict[str, Any]) -> None:
        """Run ``spec`` with state in a separate process that its ``gate`` ends abruptly, as ``kill -9`` would."""
        if any(not isinstance(plugin, ModuleType) for _, plugin in self.plugins):
            pytest.skip("a separate process can only load plugins that are modules")
        spec["mappers"]["gate"]["hard"] = True
        path = folder / "job.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "job": "conformance", **spec}), encoding="utf-8")
        arguments = {
            "path": str(path),
            "state": str(folder / "state.db"),
            "environ": dict(self.environ()),
            "plugins": [(name, plugin.__name__) for name, plugin in self.plugins],  # type: ignore[attr-defined]
        }
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        result = subprocess.run(
            [sys.executable, "-c", _KILLED_RUN, json.dumps(arguments)], env=env, capture_output=True, text=True
        )
        assert result.returncode == KILLED, f"the run was not killed as planned:\n{result.stderr}"

    def errors(self, folder: Path) -> list[dict[str, Any]]:
        """Records the job's error stream received (each with ``_error``)."""
        path = folder / ERRORS
        return read_jsonl(path) if path.exists() else []

    def _component_class(self, kind: str) -> ComponentClass:
        host = get_plugin_host(extra_plugins=self.plugins)
        registry: ComponentRegistry = getattr(host, f"{kind}s")
        registration = registry.get(self.component_type)
        if registration is None:
            raise SpecError([f"no installed plugin provides the {kind} type {self.component_type!r}"])
        return registration.cls

    def _assert_once(self, keys: list[Any], expected: int) -> None:
        doubled = [key for key, count in Counter(map(str, keys)).items() if count > 1]
        assert not doubled, f"records delivered more than once: {doubled[:10]}"
        assert len(keys) == expected, f"{expected} records went in, {len(keys)} came out"

    def _job_of(self, folder: Path, rows: list[dict[str, Any]], crash_after: int = NEVER) -> dict[str, Any]:
        """The test job over ``rows`` (each kind lays its component out in its own ``job``)."""
        raise NotImplementedError

    def _keys(self, folder: Path) -> list[Any]:
        """The keys of the records the job delivered, as read back from where they went."""
        raise NotImplementedError

    def test_restart_after_a_crash_with_state(self, tmp_path: Path) -> None:
        rows = [self.make_record(i) for i in range(self.large)]
        assert self.run(tmp_path, self._job_of(tmp_path, rows, self.large // 2), state=True).status == "failed"
        resumed = self.run(tmp_path, self._job_of(tmp_path, rows), state=True)
        assert resumed.status == "success", resumed.failure
        self._assert_once(self._keys(tmp_path), self.large)

    def test_restart_after_the_process_is_killed(self, tmp_path: Path) -> None:
        rows = [self.make_record(i) for i in range(self.large)]
        self.run_killed(tmp_path, self._job_of(tmp_path, rows, self.large // 2))
        resumed = self.run(tmp_path, self._job_of(tmp_path, rows), state=True)
        assert resumed.status == "success", resumed.failure
        self._assert_once(self._keys(tmp_path), self.large)

    def test_a_rerun_with_state_delivers_nothing_again(self, tmp_path: Path) -> None:
        rows = [self.make_record(i) for i in range(100)]
        assert self.run(tmp_path, self._job_of(tmp_path, rows), state=True).status == "success"
        again = self.run(tmp_path, self._job_of(tmp_path, rows), state=True)
        assert again.status == "success", again.failure
        assert sum(count for sink, count in again.delivered.items() if sink != "rejected") == 0
        self._assert_once(self._keys(tmp_path), len(rows))


class SinkConformance(_Conformance):
    """Standard tests for a sink. Implement :meth:`delivered`; set :attr:`rejected_record` if it rejects any."""

    #: Data the sink must reject (send to the error stream), or None to skip the error-routing test.
    rejected_record: ClassVar[dict[str, Any] | None] = None

    def delivered(self, folder: Path) -> list[dict[str, Any]]:
        """Read back what the sink wrote (from its file, database or sandbox)."""
        raise NotImplementedError("SinkConformance.delivered: read back what your sink wrote")

    def job(self, folder: Path, rows: list[dict[str, Any]], crash_after: int = NEVER) -> dict[str, Any]:
        write_jsonl(folder / INPUT, rows)
        return {
            "sources": {"rows": {"type": "testkit.rows", "path": INPUT, "key": self.key}},
            "mappers": {"gate": {"type": "testkit.crash", "inputs": ["rows"], "after": crash_after}},
            "sinks": {
                "target": {"type": self.component_type, "inputs": ["gate"], **self.options(folder)},
                "rejected": {"type": "testkit.collect", "inputs": ["errors"], "path": ERRORS},
            },
        }

    def _job_of(self, folder: Path, rows: list[dict[str, Any]], crash_after: int = NEVER) -> dict[str, Any]:
        return self.job(folder, rows, crash_after)

    def _keys(self, folder: Path) -> list[Any]:
        return [row.get(self.key) for row in self.delivered(folder)]

    def test_empty_input(self, tmp_path: Path) -> None:
        report = self.run(tmp_path, self.job(tmp_path, []))
        assert report.status == "success", report.failure
        assert report.delivered.get("target", 0) == 0
        assert self.delivered(tmp_path) == []

    def test_large_input_in_many_batches(self, tmp_path: Path) -> None:
        report = self.run(tmp_path, self.job(tmp_path, [self.make_record(i) for i in range(self.large)]))
        assert report.status == "success", report.failure
        assert report.delivered["target"] == self.large
        self._assert_once(self._keys(tmp_path), self.large)

    def test_rejects_go_to_the_error_stream(self, tmp_path: Path) -> None:
        if self.rejected_record is None:
            pytest.skip("no rejected_record: this sink rejects nothing")
        rows = [self.make_record(i) for i in range(10)]
        rows[3] = {**self.rejected_record, self.key: 3}
        report = self.run(tmp_path, self.job(tmp_path, rows))
        errors = self.errors(tmp_path)
        assert [error[self.key] for error in errors] == [3]
        assert errors[0]["_error"]["component"] == "target" and errors[0]["_error"]["position"] == 4
        assert report.delivered["target"] + report.errors["count"] == len(rows)
        self._assert_once([*self._keys(tmp_path), 3], len(rows))


class MapperConformance(_Conformance):
    """Standard tests for a mapper: every record ends in exactly one of its outputs or the error stream."""

    #: Data the mapper must reject, or None to skip the error-routing test.
    rejected_record: ClassVar[dict[str, Any] | None] = None

    def job(self, folder: Path, rows: list[dict[str, Any]], crash_after: int = NEVER) -> dict[str, Any]:
        write_jsonl(folder / INPUT, rows)
        mapper = self._component_class("mapper")
        outputs = mapper.outputs if issubclass(mapper, Mapper) else ("default",)
        sinks: dict[str, Any] = {
            f"out_{output}": {
                "type": "testkit.collect",
                "inputs": ["target" if output == "default" else f"target.{output}"],
                "path": f"testkit-{output}.jsonl",
            }
            for output in outputs
        }
        sinks["rejected"] = {"type": "testkit.collect", "inputs": ["errors"], "path": ERRORS}
        return {
            "sources": {"rows": {"type": "testkit.rows", "path": INPUT, "key": self.key}},
            "mappers": {
                "gate": {"type": "testkit.crash", "inputs": ["rows"], "after": crash_after},
                "target": {"type": self.component_type, "inputs": ["gate"], **self.options(folder)},
            },
            "sinks": sinks,
        }

    def routed(self, folder: Path) -> dict[str, list[dict[str, Any]]]:
        """What each output of the mapper emitted, by output name."""
        return {path.stem.removeprefix("testkit-"): read_jsonl(path) for path in folder.glob("testkit-*.jsonl")}

    def _job_of(self, folder: Path, rows: list[dict[str, Any]], crash_after: int = NEVER) -> dict[str, Any]:
        return self.job(folder, rows, crash_after)

    def _keys(self, folder: Path) -> list[Any]:
        routed = self.routed(folder)
        routed.pop("input", None)
        return [row.get(self.key) for rows in routed.values() for row in rows]

    def test_empty_input(self, tmp_path: Path) -> None:
        report = self.run(tmp_path, self.job(tmp_path, []))
        assert report.status == "success", report.failure
        assert sum(report.delivered.values()) == 0

    def test_large_input_in_many_batches(self, tmp_path: Path) -> None:
        report = self.run(tmp_path, self.job(tmp_path, [self.make_record(i) for i in range(self.large)]))
        assert report.status == "success", report.failure
        self._assert_once(self._keys(tmp_path), self.large)

    def test_rejects_go_to_the_error_stream(self, tmp_path: Path) -> None:
        if self.rejected_record is None:
            pytest.skip("no rejected_record: this mapper rejects nothing")
        rows = [self.make_record(i) for i in range(10)]
        rows[3] = {**self.rejected_record, self.key: 3}
        self.run(tmp_path, self.job(tmp_path, rows))
        errors = self.errors(tmp_path)
        assert [error[self.key] for error in errors] == [3]
        assert errors[0]["_error"]["component"] == "target" and errors[0]["_error"]["position"] == 4
        self._assert_once(self._keys(tmp_path), len(rows))


class SourceConformance(_Conformance):
    """Standard tests for a source. Implement :meth:`write_input` to lay out input the source reads."""

    def write_input(self, folder: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Write ``rows`` where and how your source reads them; return its options."""
        raise NotImplementedError("SourceConformance.write_input: write the rows and return the source's options")

    def broken_input(self, folder: Path) -> dict[str, Any] | None:
        """Write input with exactly one unreadable record among good ones, return the options (None: skip)."""
        return None

    def job(self, options: dict[str, Any], crash_after: int = NEVER) -> dict[str, Any]:
        return {
            "sources": {"target": {"type": self.component_type, "key": self.key, **options}},
            "mappers": {"gate": {"type": "testkit.crash", "inputs": ["target"], "after": crash_after}},
            "sinks": {
                "out": {"type": "testkit.collect", "inputs": ["gate"], "path": "testkit-out.jsonl"},
                "rejected": {"type": "testkit.collect", "inputs": ["errors"], "path": ERRORS},
            },
        }

    def read_back(self, folder: Path) -> list[dict[str, Any]]:
        path = folder / "testkit-out.jsonl"
        return read_jsonl(path) if path.exists() else []

    def _job_of(self, folder: Path, rows: list[dict[str, Any]], crash_after: int = NEVER) -> dict[str, Any]:
        return self.job(self.write_input(folder, rows), crash_after)

    def _keys(self, folder: Path) -> list[Any]:
        return [row.get(self.key) for row in self.read_back(folder)]

    def test_empty_input(self, tmp_path: Path) -> None:
        report = self.run(tmp_path, self.job(self.write_input(tmp_path, [])))
        assert report.status == "success", report.failure
        assert report.input_records == 0 and self.read_back(tmp_path) == []

    def test_large_input_in_many_batches(self, tmp_path: Path) -> None:
        rows = [self.make_record(i) for i in range(self.large)]
        report = self.run(tmp_path, self.job(self.write_input(tmp_path, rows)))
        assert report.status == "success", report.failure
        assert report.input_records == self.large
        self._assert_once(self._keys(tmp_path), self.large)

    def test_unreadable_input_goes_to_the_error_stream(self, tmp_path: Path) -> None:
        options = self.broken_input(tmp_path)
        if options is None:
            pytest.skip("no broken_input: this source has no unreadable input")
        report = self.run(tmp_path, self.job(options))
        errors = self.errors(tmp_path)
        assert len(errors) == 1 and errors[0]["_error"]["source"] == "target"
        assert report.input_records == len(self.read_back(tmp_path)) + 1

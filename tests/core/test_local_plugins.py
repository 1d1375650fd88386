"""A spec may load plugin modules from files next to it (``plugins: [my_mapper.py]``): no packaging needed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from connector_core.cli import main

from .conftest import Jobs

PLUGIN = '''\
import json
from pathlib import Path

import attrs

from connector_core import hookimpl
from connector_core.components import Mapper
from connector_core.options import option


@attrs.frozen
class DoubleOptions:
    field: str = option(help="the number to double")


class Double(Mapper):
    """Doubles one field."""

    Options = DoubleOptions

    def process(self, batch, out):
        for record in batch:
            out.emit(record.with_data({**record.data, self.options.field: record.data[self.options.field] * 2}))


@hookimpl
def register_mappers(registry):
    registry.add("local.double", Double)


@hookimpl(wrapper=True)
def after_sync(context, report):
    result = yield
    Path(context.spec.base_dir, "hook.json").write_text(json.dumps(report.delivered))
    return result
'''

SPEC = """\
version: 1
job: local
plugins: [helpers/double.py]
sources:
  nums: {type: t.numbers, count: 3}
mappers:
  doubled: {type: local.double, inputs: [nums], field: i}
sinks:
  out: {type: t.collect, inputs: [doubled]}
"""


def write_plugin(folder: Path, text: str = PLUGIN, name: str = "helpers/double.py") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_local_mapper_and_hook_run(jobs: Jobs) -> None:
    from . import kit

    write_plugin(jobs.folder)
    report = jobs.run(SPEC)
    assert report.status == "success", report.failure
    assert [row["i"] for row in kit.STORE["out"]] == [0, 2, 4]
    assert json.loads((jobs.folder / "hook.json").read_text()) == {"out": 3}


def test_a_missing_plugin_file_is_a_spec_error_with_its_line(jobs: Jobs) -> None:
    error = jobs.spec_error(SPEC)
    problem = jobs.assert_problem(error, "$.plugins[0]", jobs.line("plugins:"), "helpers/double.py: not found")
    assert "relative to the spec" in problem


def test_a_plugin_file_that_fails_to_import_is_a_spec_error(jobs: Jobs) -> None:
    write_plugin(jobs.folder, "import no_such_module_here\n")
    error = jobs.spec_error(SPEC)
    jobs.assert_problem(error, "$.plugins[0]", jobs.line("plugins:"), "failed to import", "no_such_module_here")


def test_the_cli_runs_a_spec_with_a_local_plugin(jobs: Jobs, kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    write_plugin(jobs.folder)
    path = jobs.write(SPEC)
    assert main(["validate", str(path)]) == 0
    assert main(["run", str(path)]) == 0
    assert json.loads((jobs.folder / "hook.json").read_text()) == {"out": 3}


def test_loading_the_same_spec_twice_with_one_host_registers_once(jobs: Jobs) -> None:
    from connector_core import api

    write_plugin(jobs.folder)
    path = jobs.write(SPEC)
    from . import kit

    spec, host = api.load(path, environ={}, plugins=[kit.KIT])
    again, _ = api.load(path, environ={}, host=host)
    assert spec.components["doubled"].cls is again.components["doubled"].cls
    assert [info.name for info in host.plugins()].count("local:double.py") == 1

"""``crmsync new plugin NAME``: a ready-to-publish plugin distribution with a mapper, a sink and tests.

The generated tests use the test kit (the conformance classes and the fixtures of the ``pytest11`` plugin)
and pass as generated; the crmsync test suite installs a fresh scaffold and runs them to keep it that way.
"""

from __future__ import annotations

import importlib.util
import re
import string
from pathlib import Path

from connector_core import __version__
from connector_core.errors import UsageError
from connector_core.plugin_manager import built_in_plugins

_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


def new_plugin(name: str, parent: Path) -> Path:
    """Write ``parent/crmsync-NAME/`` and return its path.

    :raises UsageError: for a name that is not a lower-case identifier or is a built-in plugin's, whose package
        is installed already, or when the folder exists.
    """
    if not _NAME.fullmatch(name):
        raise UsageError(f"plugin name {name!r}: use lower-case letters, digits, '-' or '_', starting with a letter")
    built_in = built_in_plugins()
    if name in built_in:
        raise UsageError(
            f"plugin name {name!r} is a built-in plugin's ({', '.join(built_in)}): an installed plugin of that name "
            "would be skipped; pick another name"
        )
    package = f"crmsync_{name.replace('-', '_')}"
    installed = importlib.util.find_spec(package)
    if installed is not None:  # installing the plugin would overwrite it (`plugins`: crmsync's own built-ins)
        where = installed.origin or ", ".join(installed.submodule_search_locations or ())
        raise UsageError(f"plugin name {name!r}: a package {package} is already installed ({where}); pick another name")
    folder = parent / f"crmsync-{name}"
    if folder.exists():
        raise UsageError(f"{folder} already exists; pick another name or remove it")
    values = {
        "name": name,
        "package": package,
        "type_prefix": name.replace("_", "-"),
        "crmsync_version": __version__,
        "title": name.replace("-", " ").replace("_", " ").title(),
    }
    for relative, template in _FILES.items():
        path = folder / string.Template(relative).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(template).substitute(values), encoding="utf-8")
    return folder


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "crmsync-$name"
version = "0.1.0"
description = "$title components for crmsync"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["crmsync>=$crmsync_version"]

[project.optional-dependencies]
test = ["pytest>=8.0"]

# How crmsync finds the plugin: the entry-point name is the plugin's name in `crmsync plugins`.
[project.entry-points.crmsync]
$name = "$package"

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_README = """\
# crmsync-$name

$title components for [crmsync](https://pypi.org/project/crmsync/):

- mapper `$type_prefix.tag`: sets a field to a fixed value; rejects records without the `require`d field
- sink `$type_prefix.jsonl`: appends records to a JSON Lines file; rejects records without an `email`

```sh
pip install -e '.[test]'
crmsync plugins                      # lists $name with its types
crmsync describe $type_prefix.tag    # its options
pytest                               # the conformance tests of the crmsync test kit
```

In a job:

```yaml
mappers:
  tagged: {type: $type_prefix.tag, inputs: [leads], field: source, value: import}
sinks:
  out: {type: $type_prefix.jsonl, inputs: [tagged], path: out/leads.jsonl}
```

Publish with `python -m build && python -m twine upload dist/*`.
"""

_INIT = '''\
"""crmsync-$name: registers its components through the ``crmsync`` entry-point group."""

from __future__ import annotations

from connector_core import hookimpl
from connector_core.registry import ComponentRegistry


@hookimpl
def register_mappers(registry: ComponentRegistry) -> None:
    from $package.components import Tag  # imported lazily: keeps `crmsync --help` fast

    registry.add("$type_prefix.tag", Tag)


@hookimpl
def register_sinks(registry: ComponentRegistry) -> None:
    from $package.components import JsonlSink

    registry.add("$type_prefix.jsonl", JsonlSink)
'''

_COMPONENTS = '''\
"""The components of crmsync-$name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs

from connector_core.components import Emitter, LocalFile, Mapper, Sink
from connector_core.options import option
from connector_core.records import Record


@attrs.frozen
class TagOptions:
    field: str = option(help="the field to set")
    value: str = option(help="the value to set it to")
    require: str | None = option(None, help="reject records where this field is missing or empty")


class Tag(Mapper[TagOptions]):  # the type argument types self.options
    """Sets ``field`` to ``value`` on every record."""

    Options = TagOptions

    @classmethod
    def reads_keys(cls, options: TagOptions) -> bool:
        # It never looks at record.key: a job whose source has no `key` then skips hashing each record for one.
        return False

    def process(self, batch: list[Record], out: Emitter) -> None:
        options = self.options
        for record in batch:
            if options.require and not record.data.get(options.require):
                out.fail(record, f"missing {options.require!r}")
            else:
                out.emit(record.with_data({**record.data, options.field: options.value}))


@attrs.frozen
class JsonlSinkOptions:
    path: Path = option(help="the JSON Lines file to append to (relative to the spec)")


class JsonlSink(Sink[JsonlSinkOptions]):
    """Appends each record with an ``email`` to a JSON Lines file; durable after every batch.

    With state, the checkpoint is the file's length, committed with the deliveries it covers. A run cuts the
    file back to it on open: batches written before a crash but never committed are written again by the
    resumed run, so they must not stay in the file from the first time.
    """

    Options = JsonlSinkOptions

    @classmethod
    def output_file(cls, options: JsonlSinkOptions) -> LocalFile:
        # Declared so that a spec giving a second sink, or a source, the same file is refused when it loads.
        return LocalFile("path", options.path.resolve())

    def open(self) -> None:
        path, state = self.options.path, self.context.state
        path.parent.mkdir(parents=True, exist_ok=True)
        if state is None:
            return
        committed = state.sink_checkpoint(self.name)
        if committed and committed.get("path") == str(path):
            if path.exists() and path.stat().st_size > committed["length"]:
                os.truncate(path, committed["length"])
        else:  # before the first write: what is there now is what a crash cuts back to
            state.save_checkpoint(self.name, self.checkpoint())

    def write(self, batch: list[Record], out: Emitter) -> None:
        with self.options.path.open("a", encoding="utf-8") as handle:
            for record in batch:
                if not record.data.get("email"):
                    out.fail(record, "no email")
                else:
                    handle.write(json.dumps(record.data, default=str) + "\\n")
            handle.flush()
            os.fsync(handle.fileno())

    def checkpoint(self) -> dict[str, object]:
        path = self.options.path
        return {"path": str(path), "length": path.stat().st_size if path.exists() else 0}
'''

_TESTS = '''\
"""Tests of crmsync-$name: the crmsync test kit's conformance classes, plus a job run end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from connector_core.testing import components as testkit
from connector_core.testing import read_jsonl
from connector_core.testing.conformance import MapperConformance, SinkConformance


class TestTag(MapperConformance):
    component_type = "$type_prefix.tag"
    rejected_record: ClassVar[dict[str, Any] | None] = {"name": "no email"}

    def options(self, folder: Path) -> dict[str, Any]:
        return {"field": "source", "value": "import", "require": "email"}


class TestJsonlSink(SinkConformance):
    component_type = "$type_prefix.jsonl"
    rejected_record: ClassVar[dict[str, Any] | None] = {"name": "no email"}

    def options(self, folder: Path) -> dict[str, Any]:
        return {"path": "out/records.jsonl"}

    def delivered(self, folder: Path) -> list[dict[str, Any]]:
        path = folder / "out" / "records.jsonl"
        return read_jsonl(path) if path.exists() else []


def test_a_job_tags_and_writes(crmsync_job, read_stream, tmp_path: Path) -> None:
    (tmp_path / "leads.jsonl").write_text('{"email": "ada@example.com"}\\n{"name": "anonymous"}\\n')
    report = crmsync_job("""
        version: 1
        job: $name-example
        sources: {leads: {type: testkit.rows, path: leads.jsonl}}
        mappers: {tagged: {type: $type_prefix.tag, inputs: [leads], field: source, value: import}}
        sinks:
          out: {type: $type_prefix.jsonl, inputs: [tagged], path: out/leads.jsonl}
          rejected: {type: testkit.collect, inputs: [errors], path: errors.jsonl}
    """, plugins=[("testkit", testkit)])
    assert report.delivered == {"out": 1, "rejected": 1}
    assert read_stream("out/leads.jsonl") == [{"email": "ada@example.com", "source": "import"}]
    assert read_stream("errors.jsonl")[0]["_error"]["reason"] == "no email"

'''

_FILES = {
    "pyproject.toml": _PYPROJECT,
    "README.md": _README,
    "src/$package/__init__.py": _INIT,
    "src/$package/components.py": _COMPONENTS,
    "tests/test_$package.py": _TESTS,
}

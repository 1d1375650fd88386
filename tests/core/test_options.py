"""Declarative options: connection references and secrets come from field metadata, never from option names."""

from __future__ import annotations

import json
import types
from pathlib import Path

import attrs
import pytest

from connector_core import hookimpl
from connector_core.cli import main
from connector_core.components import Emitter, Sink
from connector_core.options import Names, describe, names, option, type_label
from connector_core.records import Record

from . import kit
from .conftest import CANARY, Jobs
from .test_spec_errors import VALID


@attrs.frozen
class CrmOptions:
    #: Not a reference: an option may be called ``connection`` and mean anything.
    connection: str = "keep-alive"
    account: str = option("crm", help="the crm connection to write to", connection="t.token")
    anything: str | None = option(None, help="any connection at all", connection=True)
    password: str = option("", help="a password", secret=True)
    tags: list[str] = option(factory=list, help="labels")


class CrmSink(Sink):
    """Writes nowhere; exposes its options."""

    Options = CrmOptions

    def write(self, batch: list[Record], out: Emitter) -> None:
        out.fail(batch[0], f"the server refused {self.options.password}")


@hookimpl
def register_sinks(registry) -> None:
    registry.add("t.crm", CrmSink)


CRM = ("crm", types.SimpleNamespace(register_sinks=register_sinks))
TOKEN = "connections:\n  crm: {type: t.token, token: abcd}\n"


def crm_spec(options: str, connections: str = TOKEN) -> str:
    return VALID.replace("type: t.collect", f"type: t.crm\n{options}") + connections


def test_an_option_named_connection_is_just_an_option(jobs: Jobs) -> None:
    spec = jobs.load(crm_spec("    connection: close"), plugins=[CRM])
    assert spec.components["out"].options.connection == "close"


def test_a_declared_reference_must_name_a_declared_connection(jobs: Jobs) -> None:
    error = jobs.spec_error(crm_spec("    account: crmm"), plugins=[CRM])
    jobs.assert_problem(error, "$.sinks.out.account", jobs.line("account: crmm"), "unknown connection 'crmm'", "crm")


def test_a_reference_with_a_type_must_name_a_connection_of_that_type(jobs: Jobs) -> None:
    other = "connections:\n  crm: {type: t.token, token: abcd}\n  files: {type: t.other}\n"
    error = jobs.spec_error(crm_spec("    account: files", other), plugins=[CRM, OTHER])
    jobs.assert_problem(error, "$.sinks.out.account", jobs.line("account: files"), "'t.other'", "'t.token'")


def test_a_reference_without_a_type_accepts_any_connection(jobs: Jobs) -> None:
    spec = jobs.load(crm_spec("    anything: crm"), plugins=[CRM])
    assert spec.components["out"].options.anything == "crm"
    jobs.spec_error(crm_spec("    anything: nope"), plugins=[CRM])


def test_a_secret_option_is_masked_even_when_written_in_the_spec(jobs: Jobs) -> None:
    report = jobs.run(crm_spec(f"    password: {CANARY}"), plugins=[CRM])
    assert report.errors["first"][0]["reason"] == "the server refused ***"
    assert CANARY not in json.dumps(report.to_dict())


def test_describe_reads_types_defaults_help_and_flags() -> None:
    by_key = {info.key: info for info in describe(CrmOptions)}
    assert by_key["connection"].help.startswith("Not a reference") and not by_key["connection"].connection
    account = by_key["account"]
    assert (account.type, account.default, account.connection) == ("str", "crm", "t.token")
    assert by_key["password"].secret and not by_key["tags"].required and by_key["tags"].default == []
    assert by_key["anything"].type == "str | None"
    assert describe(kit.CollectOptions)[0].required is False


@pytest.mark.parametrize(
    ("annotation", "label"),
    [(int, "int"), (list[str] | None, "list[str] | None"), (dict[str, Path], "dict[str, Path]")],
)
def test_type_labels_are_short(annotation: object, label: str) -> None:
    assert type_label(annotation) == label


def test_describe_command_shows_options_outputs_and_plugin(kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    kit_cli(CRM)
    assert main(["describe", "t.crm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sink t.crm  (plugin crm, (registered in code) -)\n  Writes nowhere; exposes its options.\n")
    assert '    account     str  (default: "crm")  [names a connection of type t.token]\n' in out
    assert "the crm connection to write to" in out
    assert "password    str  (optional)  [secret: masked in logs and reports]" in out
    assert "common options: inputs, batch_size (default 250), concurrency (default 1)" in out
    assert "outputs: none" in out


def test_describe_shows_every_kind_a_name_has_and_outputs(kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "t.split"]) == 0
    assert "outputs: NAME, NAME.odd  (NAME: the component's name in the spec)\n" in capsys.readouterr().out


def test_describe_an_unknown_type_is_a_usage_error(kit_cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "t.nope"]) == 2
    err = capsys.readouterr().err
    assert "no installed plugin provides a type 't.nope'" in err and "t.collect" in err


class Other(kit.TokenConnection):
    Options = attrs.make_class("OtherOptions", {}, frozen=True)


OTHER = ("other", types.SimpleNamespace(register_connections=hookimpl(lambda registry: registry.add("t.other", Other))))


@attrs.frozen
class NamesOptions:
    by: Names = option(factory=list, help="one field or several")
    maybe: Names | None = None


@pytest.mark.parametrize(
    ("given", "structured", "normalised"),
    [({"by": "email"}, "email", ("email",)), ({"by": ["a", "b"]}, ["a", "b"], ("a", "b")), ({}, [], ())],
)
def test_a_name_or_a_list_is_structured_and_typed(given: dict, structured: object, normalised: tuple) -> None:
    from connector_core.spec.converter import make_converter

    options = make_converter(Path(".")).structure(given, NamesOptions)
    assert options.by == structured and names(options.by) == normalised
    assert options.maybe is None and names(options.maybe) == ()


@pytest.mark.parametrize("bad", [{"by": {"a": 1}}, {"by": None}, {"by": [["nested"]]}])
def test_a_name_or_a_list_rejects_other_shapes(bad: dict) -> None:
    from connector_core.spec.converter import make_converter, structure_errors

    with pytest.raises(Exception) as caught:
        make_converter(Path(".")).structure(bad, NamesOptions)
    assert structure_errors(caught.value, "$")[0][0] == "$.by"


def test_optional_methods_are_declared_on_the_bases() -> None:
    assert not kit.Split(name="s", options=None, context=None).has_plan  # type: ignore[arg-type]

    class Planned(kit.Collect):
        def plan(self, batch, out):
            return None

    assert Planned("p", None, None).has_plan  # type: ignore[arg-type]

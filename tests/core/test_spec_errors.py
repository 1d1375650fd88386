"""Every kind of spec error names the file, the spec path and the line; several problems are all reported."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from connector_core import hookimpl, testing
from connector_core.components import Source
from connector_core.errors import SpecError

from . import kit
from .conftest import CANARY, Jobs

HEAD = """\
version: 1
job: demo
"""

VALID = (
    HEAD
    + """\
sources:
  nums:
    type: t.numbers
    count: 3
sinks:
  out:
    type: t.collect
    inputs: [nums]
"""
)


def test_valid_spec_loads(jobs: Jobs) -> None:
    spec = jobs.load(VALID)
    assert spec.job == "demo"
    assert list(spec.components) == ["nums", "out"]
    assert spec.components["nums"].options.count == 3
    assert spec.warnings == ()


def test_invalid_yaml_names_file_and_line(jobs: Jobs) -> None:
    error = jobs.spec_error("version: 1\njob: demo: again\n")
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"{jobs.path}:2: invalid YAML: mapping values are not allowed")


@pytest.mark.parametrize("text", ["- version\n- job\n", "just a string\n", "\n"])
def test_top_level_must_be_a_mapping(jobs: Jobs, text: str) -> None:
    error = jobs.spec_error(text)
    jobs.assert_problem(error, "$", 1, "must be a mapping")


def test_wrong_version(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("version: 1", "version: 2"))
    jobs.assert_problem(error, "$.version", 1)


def test_missing_job(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("job: demo\n", ""))
    jobs.assert_problem(error, "$.job", 1, "missing")


def test_unknown_top_level_key(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID + "schedule: hourly\n")
    jobs.assert_problem(error, "$.schedule", jobs.line("schedule"), "unknown key")


def test_unknown_component_key(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID + "    colour: red\n")
    jobs.assert_problem(error, "$.sinks.out.colour", jobs.line("colour"), "unknown key")


def test_wrong_option_type(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("count: 3", "count: many"))
    jobs.assert_problem(error, "$.sources.nums.count", jobs.line("count: many"), "int")


def test_missing_required_option_points_at_the_component(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("type: t.collect", "type: t.file"))
    jobs.assert_problem(error, "$.sinks.out.path", jobs.line("  out:"), "missing")


def test_unknown_plugin_type_lists_known_types(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("type: t.collect", "type: t.colect"))
    problem = jobs.assert_problem(error, "$.sinks.out.type", jobs.line("t.colect"), "unknown sink type 't.colect'")
    assert "(known sink types: t.blocking, t.collect, t.database, t.file, t.relay)" in problem


def test_missing_type(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("    type: t.collect\n", ""))
    jobs.assert_problem(error, "$.sinks.out.type", jobs.line("  out:"), "t.collect")


@pytest.mark.parametrize("inputs", ["[]", "{a: 1}", "7"])
def test_consumer_needs_inputs(jobs: Jobs, inputs: str) -> None:
    error = jobs.spec_error(VALID.replace("inputs: [nums]", f"inputs: {inputs}"))
    jobs.assert_problem(error, "$.sinks.out.inputs", jobs.line("inputs:"), "needs a list of input streams")


def test_consumer_without_inputs(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("    inputs: [nums]\n", ""))
    jobs.assert_problem(error, "$.sinks.out.inputs", jobs.line("  out:"), "needs a list of input streams")


def test_a_single_input_may_be_a_string(jobs: Jobs) -> None:
    spec = jobs.load(VALID.replace("inputs: [nums]", "inputs: nums"))
    assert spec.components["out"].inputs == ("nums",)


def test_unknown_input(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("inputs: [nums]", "inputs: [numz]"))
    jobs.assert_problem(error, "$.sinks.out.inputs[0]", jobs.line("numz"), "unknown input 'numz'", "nums")


def test_cyclic_inputs(jobs: Jobs) -> None:
    text = (
        HEAD
        + """\
sources:
  nums: {type: t.numbers}
mappers:
  first:
    type: t.explode
    inputs: [nums, second]
  second:
    type: t.explode
    inputs: [first]
sinks:
  out: {type: t.collect, inputs: [second]}
"""
    )
    error = jobs.spec_error(text)
    assert len(error.problems) == 1, error.problems
    problem = error.problems[0]
    assert "cycle: " in problem and "first" in problem and "second" in problem
    if "$.mappers.first.inputs" in problem:
        assert problem.startswith(f"{jobs.path}:{jobs.line('[nums, second]')}: $.mappers.first.inputs: "), problem
    else:
        assert problem.startswith(f"{jobs.path}:{jobs.line('[first]')}: $.mappers.second.inputs: "), problem


def test_component_reading_itself_is_a_cycle(jobs: Jobs) -> None:
    text = VALID + "mappers:\n  loop:\n    type: t.explode\n    inputs: [nums, loop]\n"
    error = jobs.spec_error(text.replace("inputs: [nums]\n", "inputs: [loop]\n"))
    jobs.assert_problem(error, "$.mappers.loop.inputs", jobs.line("inputs: [nums, loop]"), "cycle")


def test_reading_an_output_the_component_lacks(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("inputs: [nums]", "inputs: [nums.odd]"))
    jobs.assert_problem(error, "$.sinks.out.inputs[0]", jobs.line("nums.odd"), "'nums' has no output 'odd'")


def test_input_listed_twice(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("inputs: [nums]", "inputs:\n      - nums\n      - nums"))
    jobs.assert_problem(error, "$.sinks.out.inputs[1]", jobs.line("      - nums") + 1, "listed twice")


def test_mapper_may_not_read_errors(jobs: Jobs) -> None:
    text = VALID + "mappers:\n  fix:\n    type: t.explode\n    inputs: [errors]\n"
    error = jobs.spec_error(text.replace("inputs: [nums]", "inputs: [fix]"))
    jobs.assert_problem(error, "$.mappers.fix.inputs[0]", jobs.line("inputs: [errors]"), "only sinks")


@pytest.mark.parametrize("name", ["my.sink", "errors"])
def test_invalid_component_name(jobs: Jobs, name: str) -> None:
    text = VALID + f"  {name}:\n    type: t.collect\n    inputs: [nums]\n"
    error = jobs.spec_error(text)
    jobs.assert_problem(error, f"$.sinks.{name}", jobs.line(f"  {name}:"), "invalid component name", repr(name))


def test_duplicate_component_name_across_sections(jobs: Jobs) -> None:
    text = VALID + "  nums:\n    type: t.collect\n    inputs: [out]\n"
    error = jobs.spec_error(text.replace("  out:", "  out:"))
    line = len(jobs.text.splitlines()) - 2
    jobs.assert_problem(error, "$.sinks.nums", line, "'nums' is used twice")


@pytest.mark.parametrize("field", ["batch_size", "concurrency"])
@pytest.mark.parametrize("value", ["0", "-3", "ten", "true", "2.5"])
def test_bad_batch_size_and_concurrency(jobs: Jobs, field: str, value: str) -> None:
    error = jobs.spec_error(VALID + f"    {field}: {value}\n")
    jobs.assert_problem(error, f"$.sinks.out.{field}", jobs.line(f"{field}:"), "positive integer")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("queue_batches", "0"),
        ("source_batch_size", "0"),
        ("source_batch_size", "-1"),
        ("max_error_rate", "-0.5"),
        ("max_error_rate", "1.5"),
        ("stop_on_error", "sometimes"),
    ],
)
def test_bad_settings(jobs: Jobs, setting: str, value: str) -> None:
    error = jobs.spec_error(VALID + f"settings:\n  {setting}: {value}\n")
    jobs.assert_problem(error, f"$.settings.{setting}", jobs.line(f"{setting}:"))


def test_missing_env_var_names_the_key(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("count: 3", "count: 3\n    message: ${GREETING}"), environ={})
    jobs.assert_problem(error, "$.sources.nums.message", jobs.line("GREETING"), "GREETING", "not set")


def test_required_env_var_message(jobs: Jobs) -> None:
    text = VALID.replace("count: 3", "count: 3\n    message: ${GREETING:?set GREETING to a friendly word}")
    error = jobs.spec_error(text, environ={})
    jobs.assert_problem(
        error, "$.sources.nums.message", jobs.line("GREETING"), "GREETING", "set GREETING to a friendly word"
    )


def test_missing_env_var_in_a_list_names_the_index(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("inputs: [nums]", "inputs: [nums]\n    reject: [1, '${ODD}']"))
    jobs.assert_problem(error, "$.sinks.out.reject[1]", jobs.line("ODD"), "ODD")


def test_unknown_connection_reference(jobs: Jobs) -> None:
    text = VALID + "    connection: crm\nconnections:\n  other: {type: t.token, token: abcd}\n"
    error = jobs.spec_error(text)
    jobs.assert_problem(
        error, "$.sinks.out.connection", jobs.line("connection: crm"), "unknown connection 'crm'", "other"
    )


def test_spec_error_does_not_reveal_a_secret(jobs: Jobs) -> None:
    text = VALID + "    connection: ${CRM_CONNECTION}\n"
    error = jobs.spec_error(text, environ={"CRM_CONNECTION": CANARY})
    assert CANARY not in str(error)
    jobs.assert_problem(error, "$.sinks.out.connection", jobs.line("CRM_CONNECTION"), "unknown connection")


def test_several_problems_are_all_reported_one_line_each(jobs: Jobs) -> None:
    text = (
        HEAD
        + """\
sources:
  nums:
    type: t.numbers
    count: lots
  more:
    type: t.nothing
mappers:
  split:
    type: t.split
    inputs: [nums, ghost]
    batch_size: 0
sinks:
  out:
    type: t.collect
    inputs: [split]
    colour: blue
    reason: ${UNSET_VAR}
  other:
    type: t.collect
    inputs: [split.odd, split.even]
"""
    )
    error = jobs.spec_error(text, environ={})
    expected = {
        "$.sources.nums.count": "count: lots",
        "$.sources.more.type": "t.nothing",
        "$.mappers.split.inputs[1]": "ghost",
        "$.mappers.split.batch_size": "batch_size",
        "$.sinks.other.inputs[1]": "split.even",
        "$.sinks.out.colour": "colour",
        "$.sinks.out.reason": "UNSET_VAR",
    }
    for spec_path, needle in expected.items():
        jobs.assert_problem(error, spec_path, jobs.line(needle))
    assert len(error.problems) == len(expected), "\n".join(error.problems)
    assert str(error).splitlines() == error.problems
    assert isinstance(error, SpecError) and error.exit_code == 2


def test_a_broken_component_does_not_cause_unknown_input_errors(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("count: 3", "count: three"))
    jobs.assert_problem(error, "$.sources.nums.count", jobs.line("count: three"))
    assert len(error.problems) == 1, error.problems


def test_a_job_needs_a_source(jobs: Jobs) -> None:
    error = jobs.spec_error(HEAD + "sinks: {}\n")
    assert len(error.problems) == 1
    assert "$.sources: a job needs at least one source" in error.problems[0]


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        testing.load(tmp_path / "nope.yaml", {}, [kit.KIT])
    assert str(tmp_path / "nope.yaml") in str(caught.value)
    assert "cannot read" in str(caught.value)


def test_unread_output_warns(jobs: Jobs) -> None:
    text = (
        VALID.replace("inputs: [nums]", "inputs: [split]")
        + "mappers:\n  split:\n    type: t.split\n    inputs: [nums]\n"
    )
    spec = jobs.load(text)
    assert len(spec.warnings) == 1
    warning = spec.warnings[0]
    assert str(jobs.path) in warning
    assert "$.mappers.split" in warning
    assert "'split.odd' is not read" in warning


def test_quiet_output_does_not_warn(jobs: Jobs) -> None:
    text = (
        VALID.replace("inputs: [nums]", "inputs: [drop]") + "mappers:\n  drop:\n    type: t.quiet\n    inputs: [nums]\n"
    )
    spec = jobs.load(text)
    assert spec.warnings == ()


# --- did you mean, plain-word types, every problem at once ---------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "spec_path", "suggestion"),
    [
        ("sinks:", "sink:", "$.sink", "'sinks'"),
        ("job: demo", "job: demo\nsettings: {queue_batch: 2}", "$.settings.queue_batch", "'queue_batches'"),
        ("job: demo", "job: demo\nstate: {max_attempt: 2}", "$.state.max_attempt", "'max_attempts'"),
        ("inputs: [nums]", "input: [nums]", "$.sinks.out.input", "'inputs'"),
        ("count: 3", "cout: 3", "$.sources.nums.cout", "'count'"),
        ("type: t.collect", "type: t.collect\n    rejects: [1]", "$.sinks.out.rejects", "'reject'"),
        ("type: t.collect", "type: t.colect", "$.sinks.out.type", "'t.collect'"),
        ("type: t.numbers", "type: t.number", "$.sources.nums.type", "'t.numbers'"),
        ("inputs: [nums]", "inputs: [numz]", "$.sinks.out.inputs[0]", "'nums'"),
    ],
)
def test_did_you_mean(jobs: Jobs, old: str, new: str, spec_path: str, suggestion: str) -> None:
    error = jobs.spec_error(VALID.replace(old, new))
    problem = jobs.assert_problem(error, spec_path, jobs.line(new.splitlines()[-1]), f"did you mean {suggestion}?")
    assert problem.count("did you mean") == 1
    # Only the misspelling is reported (a sink without `inputs` also needs some: a consequence, said once).
    assert len(error.problems) <= 2, error.problems


def test_no_suggestion_for_a_key_like_nothing_known(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID + "    xyzzy: 1\n")
    problem = jobs.assert_problem(error, "$.sinks.out.xyzzy", jobs.line("xyzzy"), "unknown key")
    assert "did you mean" not in problem


def test_a_common_key_of_another_kind_says_where_it_belongs(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID + "    key: i\n")
    jobs.assert_problem(error, "$.sinks.out.key", jobs.line("key: i"), "'key' is only for sources")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2.5", "expected an integer, got 2.5"),
        ("true", "expected an integer, got true"),
        ("[3]", "expected an integer, got a list"),
        ("'many'", "expected an integer, got 'many'"),
        ("{a: 1}", "expected an integer, got a mapping"),
    ],
)
def test_type_errors_in_plain_words(jobs: Jobs, value: str, words: str) -> None:
    error = jobs.spec_error(VALID.replace("count: 3", f"count: {value}"))
    problem = jobs.assert_problem(error, "$.sources.nums.count", jobs.line("count:"), words)
    for internal in ("typing", "literal", "int()", "could not convert", "<class"):
        assert internal not in problem


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("reject: 7", "expected a list, got 7"),
        ("reject: '1,2'", "expected a list, got '1,2'"),
        ("reason: [a, b]", "expected a string, got a list"),
        ("track: maybe", "expected true or false, got 'maybe'"),
        ("sleep: soon", "expected a number, got 'soon'"),
    ],
)
def test_option_types_are_strict(jobs: Jobs, option: str, words: str) -> None:
    error = jobs.spec_error(VALID + f"    {option}\n")
    key = option.split(":")[0]
    jobs.assert_problem(error, f"$.sinks.out.{key}", jobs.line(f"{key}:"), words)


def test_a_choice_names_the_choices_and_the_value(jobs: Jobs) -> None:
    error = jobs.spec_error(VALID.replace("version: 1", "version: 2"))
    jobs.assert_problem(error, "$.version", 1, "expected one of: 1; got 2")


def test_a_number_from_the_environment_is_read_as_a_number(jobs: Jobs) -> None:
    spec = jobs.load(VALID.replace("count: 3", "count: ${COUNT}"), environ={"COUNT": "5"})
    assert spec.components["nums"].options.count == 5


def test_top_level_and_component_problems_are_reported_together(jobs: Jobs) -> None:
    text = VALID.replace("version: 1", "version: 3").replace("count: 3", "count: x") + "schedul: daily\n"
    error = jobs.spec_error(text.replace("type: t.collect", "type: t.nope"))
    jobs.assert_problem(error, "$.version", 1)
    jobs.assert_problem(error, "$.schedul", jobs.line("schedul"), "unknown key")
    jobs.assert_problem(error, "$.sources.nums.count", jobs.line("count: x"))
    jobs.assert_problem(error, "$.sinks.out.type", jobs.line("t.nope"))
    assert len(error.problems) == 4, error.problems


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("'${GREETING'", "'${GREETING': it is not closed"),
        ("'${}'", "names no variable"),
        ("'${1BAD}'", "letters, digits and _"),
        ("'${ SPACED }'", "letters, digits and _"),
        ("'${NAME-default}'", "after the name comes } or :- or :?"),
        ("'${A:-${B}}'", "cannot contain another"),
        ("'pre ${OK} and ${BROKEN'", "not closed"),
    ],
)
def test_a_malformed_reference_is_an_error_naming_the_key(jobs: Jobs, value: str, words: str) -> None:
    error = jobs.spec_error(VALID.replace("count: 3", f"count: 3\n    message: {value}"), environ={"OK": "fine"})
    problem = jobs.assert_problem(error, "$.sources.nums.message", jobs.line("message:"), "malformed", words)
    assert "${NAME:-default}" in problem
    assert len(error.problems) == 1, error.problems


@attrs.frozen
class _BuggyOptions:
    level: int = 1

    def __attrs_post_init__(self) -> None:
        raise KeyError("levels")  # a plugin's bug, not the user's mistake


class _Buggy(Source):
    Options = _BuggyOptions

    def read(self):  # pragma: no cover - never runs
        return iter(())


class _BuggyPlugin:
    @hookimpl
    def register_sources(registry):
        registry.add("t.buggy", _Buggy)


def test_a_plugin_options_bug_is_one_line_not_a_traceback(jobs: Jobs) -> None:
    path = jobs.write(VALID.replace("type: t.numbers", "type: t.buggy").replace("    count: 3\n", ""))
    with pytest.raises(SpecError) as caught:
        testing.load(path, {}, [kit.KIT, ("buggy", _BuggyPlugin)])
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path.resolve()}:{jobs.line('nums:')}: $.sources.nums: invalid options (KeyError")

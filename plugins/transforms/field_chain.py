"""The ``fields`` mapper's rules compiled into one Python function per spec.

The mapper runs for every record of a job, and a loop that walks a list of rules and calls a closure per field
spends most of its time on calls and checks that are the same for every record. Here the rules become the
source of one function, generated once when the mapper is built: each field is a few inline statements, the
common case (a non-blank string, as every CSV cell is) takes the inline path — ``str.strip``/``lower``/``upper``
as method calls, other transforms as direct calls, templates as string concatenation — and every other value
(blank, missing, not a string) goes through the rule's ``finish`` function, which holds the complete rules
(see :func:`~crmsync_plugins.transforms.field_rules.compile_rule`). The output dict is built in one display.

Safety: text from the spec (field and column names, a template's literal text) enters the generated source
only as ``repr()`` literals, never as identifiers or code; every value (defaults, literals, functions) is passed
in by name. ``tests/plugins/test_field_chain.py`` runs the compiled function against a plain
reference implementation over generated messy records.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from connector_core.records import Record

from .field_rules import CompiledRule, RecordRejected, required_reason
from .functions import TEXT_RESULT, TRANSFORMS, digits_of_text

if TYPE_CHECKING:
    from connector_core.components import Emitter

#: One batch through the compiled rules: passed records are emitted, rejected ones failed with the reason.
BatchFunction = Callable[[list[Record], "Emitter"], None]

#: Transforms that are method calls of ``str`` when the value is known to be a string.
_STR_METHODS = frozenset({"strip", "lower", "upper"})


class _Source:
    """Lines of generated Python with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def add(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def indented(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Compiler:
    """Generates the batch function of one ``fields`` mapper; :meth:`build` returns it."""

    def __init__(self, rules: list[CompiledRule], keep: bool, drop: frozenset[str]) -> None:
        self.rules, self.keep, self.drop = rules, keep, drop
        self.env: dict[str, Any] = {"Record": Record, "new_tuple": tuple.__new__, "RecordRejected": RecordRejected}
        self.code = _Source()

    def constant(self, prefix: str, value: Any) -> str:
        """The name under which ``value`` is passed into the generated code."""
        name = f"{prefix}{len(self.env)}"
        self.env[name] = value
        return name

    def build(self) -> BatchFunction:
        code = self.code
        code.add("def process(batch, out):")
        with code.indented():
            code.add("passed = []")
            code.add("append = passed.append")
            code.add("fail = out.fail")
            code.add("for record in batch:")
            with code.indented():
                code.add("data = record[0]")
                code.add("get = data.get")
                if self.rules:  # `keep` or `drop` alone has no rule to run
                    code.add("try:")
                    with code.indented():
                        for index in range(len(self.rules)):
                            self.field(index)
                    code.add("except RecordRejected as exc:")
                    with code.indented():
                        code.add("fail(record, exc.reason)")
                        code.add("continue")
                self.result()
                code.add("append(new_tuple(Record, (result,) + record[1:]))")
            code.add("out.emit_many(passed)")
        namespace = dict(self.env)
        exec(compile(code.text(), "<fields mapper>", "exec"), namespace)  # see the module doc
        process: BatchFunction = namespace["process"]
        return process

    def result(self) -> None:
        """The statement building the output dict from the field variables."""
        fields = ", ".join(f"{rule.field!r}: v{index}" for index, rule in enumerate(self.rules))
        if not self.keep:
            self.code.add(f"result = {{{fields}}}")
        elif not self.drop:
            self.code.add(f"result = {{**data, {fields}}}")
        else:
            # Dropped fields first, then the rules' fields in order: a dropped name a rule sets comes back last,
            # as it does when the rules assign one by one into the kept fields.
            drop = self.constant("drop", self.drop)
            self.code.add(f"result = {{name: value for name, value in data.items() if name not in {drop}}}")
            for index, rule in enumerate(self.rules):
                self.code.add(f"result[{rule.field!r}] = v{index}")

    def field(self, index: int) -> None:
        """Statements computing ``v<index>``, the value of the rule's field."""
        compiled = self.rules[index]
        rule, code, var = compiled.rule, self.code, f"v{index}"
        if rule.value is not None:
            code.add(f"{var} = {self.constant('value', rule.value)}")
        elif rule.template is not None:
            self.template(index, rule.template)
        else:
            code.add(f"{var} = get({compiled.source!r})")
        finish = compiled.finish
        if finish is None:
            return
        finish_name = self.constant("finish", finish)
        # Whatever the fast path does not cover, finish() does by the full rules; it is the reference.
        needs_finish = rule.default is not None or rule.required or rule.type is not None
        code.add(f"if {var}.__class__ is str:")
        with code.indented():
            code.add(f"if {var} and not {var}.isspace():")
            with code.indented():
                before = len(code.lines)
                self.steps(index, var, finish_name, needs_finish)
                if len(code.lines) == before:  # a default or required only: a non-blank string is kept as is
                    code.add("pass")
            if needs_finish:  # blank text: the default, a reject, or null once typed
                code.add("else:")
                with code.indented():
                    if rule.required and rule.default is None:
                        # The reject itself, without raising: a messy list has many, and finish() would raise.
                        code.add(f"fail(record, {required_reason(compiled.field, rule)!r})")
                        code.add("continue")
                    else:
                        code.add(f"{var} = {finish_name}({var})")
        if needs_finish:
            code.add("else:")
        else:  # null stays null when there is no default, no reject and no type
            code.add(f"elif {var} is not None:")
        with code.indented():
            code.add(f"{var} = {finish_name}({var})")

    def steps(self, index: int, var: str, finish_name: str, needs_finish: bool) -> None:
        """The transforms and cast of a non-blank string, inline."""
        code, rule = self.code, self.rules[index].rule
        # Whether the value is known to be a string, and known to be non-blank: strip, lower and upper keep a
        # non-blank string non-blank (checked over every Unicode character by the tests).
        text = nonblank = True
        expression = var
        for step in rule.steps:
            if text and step in _STR_METHODS:
                expression = f"{expression}.{step}()"
            elif text and step == "digits":  # the regular expression's own sub, with no Python frame between
                expression = f"{self.constant('digits_', digits_of_text)}({expression})"
                nonblank = False
            else:
                expression = f"{self.constant(step + '_', TRANSFORMS[step])}({expression})"
                text, nonblank = step in TEXT_RESULT, False
        if rule.steps:
            code.add(f"{var} = {expression}")
        convert = self.rules[index].convert
        if not nonblank and needs_finish:
            # Transforms return text or None; emptied, the value takes the default, the reject or null.
            code.add(f"if not {var} or {var}.isspace():")
            with code.indented():
                code.add(f"{var} = {finish_name}(None)")
            if convert is not None:
                code.add("else:")
                with code.indented():
                    code.add(f"{var} = {self.constant('convert', convert)}({var})")
        elif convert is not None:
            code.add(f"{var} = {self.constant('convert', convert)}({var})")

    def template(self, index: int, template: str) -> None:
        """``v<index>`` rendered from a template: concatenation when it names plain fields, else ``format_map``."""
        name = self.rules[index].field
        earlier = {rule.field: f"v{number}" for number, rule in enumerate(self.rules[:index])}
        parts = list(string.Formatter().parse(template))
        if not all(_plain(field, spec, conversion) for _, field, spec, conversion in parts):
            self.fallback_template(index, earlier)
            return
        code, var = self.code, f"v{index}"
        pieces = []
        code.add("try:")
        with code.indented():
            for number, (literal, field, _, _) in enumerate(parts):
                if literal:
                    pieces.append(repr(literal))
                if field is None:
                    continue
                piece = f"t{index}_{number}"
                code.add(f"{piece} = {earlier.get(field, f'data[{field!r}]')}")
                code.add(f"if {piece}.__class__ is not str:")
                with code.indented():
                    code.add(f"{piece} = {self.constant('text', _text_piece(name))}({piece})")
                pieces.append(piece)
            code.add(f"{var} = {' + '.join(pieces) or repr('')}")
        code.add("except KeyError as exc:")
        with code.indented():
            reason = f"field {name!r}: template refers to missing field "
            code.add(f"raise RecordRejected({reason!r} + repr(exc.args[0])) from None")

    def fallback_template(self, index: int, earlier: dict[str, str]) -> None:
        """Templates with conversions, format specs or item access render through the rule's own producer."""
        done = ", ".join(f"{field!r}: {var}" for field, var in earlier.items())
        self.code.add(f"v{index} = {self.constant('template', self.rules[index].produce)}(data, {{{done}}})")


def _plain(field: str | None, spec: str | None, conversion: str | None) -> bool:
    """Whether a template replacement field is a bare name (``{First Name}``), rendered as the value's text."""
    return field is None or (not spec and conversion is None and not any(char in field for char in ".["))


def _text_piece(field: str) -> Callable[[Any], str]:
    """How a template renders a value that is not a string: null as empty, others by ``format(value, "")``."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        try:
            return format(value, "")
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise RecordRejected(f"field {field!r}: cannot render template: {exc}") from None

    return text


def compile_fields(rules: list[CompiledRule], keep: bool, drop: frozenset[str]) -> BatchFunction:
    """The batch function of a ``fields`` mapper: its rules in order, ``keep`` and ``drop`` as in its options."""
    return _Compiler(rules, keep, drop).build()

"""The ``fields`` mapper: rules, transforms, casts and spec-time validation."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from connector_core.errors import SpecError
from connector_core.testing import load
from crmsync_plugins.transforms.fields import FieldRule, FieldsMapper, FieldsOptions
from crmsync_plugins.transforms.functions import TRANSFORMS

from .kit import MapperFactory, Pipeline, Write

ADA = {"First Name": "Ada", "Last Name": "Lovelace", "Email": " Ada@Example.COM ", "Age": "36"}


def one(mapper: MapperFactory, rule: dict[str, Any], row: dict[str, Any]) -> Any:
    """The value of output field ``out`` computed by ``rule`` from ``row`` (asserting it was not rejected)."""
    routed, failures = mapper(FieldsMapper, {"fields": {"out": rule}})(row)
    assert failures == []
    return routed["default"][0]["out"]


@pytest.mark.parametrize(
    ("rule", "row", "expected"),
    [
        ({}, {"out": "same name"}, "same name"),
        ({"from": "Email"}, ADA, " Ada@Example.COM "),
        ({"from": "missing"}, ADA, None),
        ({"value": "crm-import"}, ADA, "crm-import"),
        ({"value": 0}, ADA, 0),
        ({"template": "{First Name} {Last Name}"}, ADA, "Ada Lovelace"),
        ({"template": "{a}-{b}"}, {"a": 1, "b": None}, "1-"),
        ({"template": "{n:>4}"}, {"n": "7"}, "   7"),
        ({"from": "x", "default": "n/a"}, {"x": ""}, "n/a"),
        ({"from": "x", "default": "n/a"}, {"x": "   "}, "n/a"),
        ({"from": "x", "default": "n/a"}, {}, "n/a"),
        ({"from": "x", "default": "n/a"}, {"x": "set"}, "set"),
        ({"from": "x", "default": "n/a", "transform": "email_domain"}, {"x": "no-at-sign"}, "n/a"),
        ({"from": "Email", "strip": True}, ADA, "Ada@Example.COM"),
        ({"from": "Email", "lower": True}, ADA, " ada@example.com "),
        ({"from": "Email", "upper": True}, ADA, " ADA@EXAMPLE.COM "),
        ({"from": "Email", "strip": True, "lower": True}, ADA, "ada@example.com"),
        ({"from": "x", "required": True}, {"x": 0}, 0),
    ],
)
def test_rules(mapper: MapperFactory, rule: dict[str, Any], row: dict[str, Any], expected: Any) -> None:
    assert one(mapper, rule, row) == expected


EMAIL_SHA256 = hashlib.sha256(b"ada@example.com").hexdigest()
EMAIL_MD5 = hashlib.md5(b"ada@example.com").hexdigest()


TRANSFORM_CASES = [
    ("strip", "  a b  ", "a b"),
    ("lower", "ÀB", "àb"),
    ("upper", "ab", "AB"),
    ("email_domain", "x@Sub.Example.com", "sub.example.com"),
    ("email_domain", "Ada <ada@Example.org>", "example.org"),
    ("email_domain", "not an email", None),
    ("url_domain", "https://user:pw@www.Example.com:8080/path?q=1#top", "example.com"),
    ("url_domain", "HTTP://WWW.EXAMPLE.CO.UK", "example.co.uk"),
    ("url_domain", "example.com/about", "example.com"),
    ("url_domain", "//cdn.example.com/x.js", "cdn.example.com"),
    ("url_domain", "example.com:443", "example.com"),
    ("url_domain", "https://[2001:db8::1]:8080/", "[2001:db8::1]"),
    ("url_domain", "https://www2.example.com", "www2.example.com"),
    ("first_name", "Dr. Ada M. Lovelace Jr.", "Ada"),
    ("last_name", "Dr. Ada M. Lovelace Jr.", "Lovelace"),
    ("first_name", "Lovelace, Ada", "Ada"),
    ("last_name", "Lovelace, Ada", "Lovelace"),
    ("first_name", "Ada Lovelace, PhD", "Ada"),
    ("last_name", "Ada Lovelace, PhD", "Lovelace"),
    ("last_name", "Ludwig van Beethoven", "van Beethoven"),
    ("first_name", "Cher", "Cher"),
    ("last_name", "Cher", None),
    ("md5", " Ada@Example.COM ", EMAIL_MD5),
    ("sha256", " Ada@Example.COM ", EMAIL_SHA256),
    ("digits", "+1 (555) 010-9999", "15550109999"),
    ("digits", 4155550100, "4155550100"),
]


@pytest.mark.parametrize(("transform", "value", "expected"), TRANSFORM_CASES)
def test_transforms(mapper: MapperFactory, transform: str, value: Any, expected: Any) -> None:
    assert one(mapper, {"from": "x", "transform": transform}, {"x": value}) == expected


def test_every_transform_is_tested() -> None:
    assert {transform for transform, _, _ in TRANSFORM_CASES} == set(TRANSFORMS)


def test_transform_chain_runs_in_order(mapper: MapperFactory) -> None:
    rule = {"from": "Website", "transform": ["url_domain", "upper"]}
    assert one(mapper, rule, {"Website": "https://www.example.com/"}) == "EXAMPLE.COM"


def test_transforms_skip_empty_values(mapper: MapperFactory) -> None:
    # Hashing an empty email would produce a real-looking hash for a contact without email.
    assert one(mapper, {"from": "Email", "transform": "sha256"}, {"Email": ""}) == ""
    assert one(mapper, {"from": "Email", "transform": "sha256"}, {}) is None


@pytest.mark.parametrize(
    ("cast", "value", "expected"),
    [
        ("int", "42", 42),
        ("int", " 42.0 ", 42),
        ("int", 7.0, 7),
        ("float", "1.5", 1.5),
        ("float", 2, 2.0),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ("bool", "off", False),
        ("bool", True, True),
        ("str", 42, "42"),
        ("str", True, "true"),
        ("int", "", None),
        ("int", None, None),
    ],
)
def test_casts(mapper: MapperFactory, cast: str, value: Any, expected: Any) -> None:
    result = one(mapper, {"from": "x", "type": cast}, {"x": value})
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9007199254740993", 9007199254740993),  # 2**53 + 1: the first integer a float cannot hold
        ("123456789012345678", 123456789012345678),
        ("-99999999999999999999999", -99999999999999999999999),
        (" 12345678901234567890.0 ", 12345678901234567890),
        ("1.2345678901234567e17", 123456789012345670),
        (10**30, 10**30),
    ],
)
def test_int_keeps_every_digit_of_a_large_integer(mapper: MapperFactory, value: Any, expected: int) -> None:
    """IDs and phone numbers beyond 2**53 were read through a float and came out rounded."""
    assert one(mapper, {"from": "x", "type": "int"}, {"x": value}) == expected


@pytest.mark.parametrize(
    ("cast", "value"),
    [
        ("int", "abc"),
        ("int", "1.5"),
        ("int", "nan"),
        ("int", "inf"),
        ("int", "1e999999999"),  # would be a billion digits
        ("float", "1,5"),
        ("float", "nan"),
        ("float", "-Infinity"),
        ("float", "1e999"),  # no JSON, CSV reader or CRM takes NaN or an infinity as a number
        ("bool", "maybe"),
    ],
)
def test_bad_cast_rejects_the_record_naming_field_and_value(mapper: MapperFactory, cast: str, value: str) -> None:
    routed, failures = mapper(FieldsMapper, {"fields": {"age": {"from": "x", "type": cast}}})({"x": value})
    assert routed.get("default", []) == []
    assert failures == [f"field 'age': cannot convert {value!r} to {cast}"]


def test_default_is_cast_too(mapper: MapperFactory) -> None:
    assert one(mapper, {"from": "x", "type": "int", "default": "0"}, {"x": ""}) == 0


@pytest.mark.parametrize(
    ("rule", "row", "reason"),
    [
        ({"from": "Email", "required": True}, {"Email": "  "}, "field 'out' is required (from 'Email')"),
        ({"required": True}, {}, "field 'out' is required (from 'out')"),
        (
            {"from": "Email", "transform": "email_domain", "required": True},
            {"Email": "nobody"},
            "field 'out' is required (from 'Email')",
        ),
        ({"template": "{First} {Last}"}, {"First": "Ada"}, "field 'out': template refers to missing field 'Last'"),
    ],
)
def test_rejections(mapper: MapperFactory, rule: dict[str, Any], row: dict[str, Any], reason: str) -> None:
    routed, failures = mapper(FieldsMapper, {"fields": {"out": rule}})(row)
    assert routed.get("default", []) == []
    assert failures == [reason]


def test_template_sees_fields_computed_before_it(mapper: MapperFactory) -> None:
    fields = {
        "first": {"from": "Name", "transform": "first_name"},
        "last": {"from": "Name", "transform": "last_name"},
        "label": {"template": "{last}, {first} <{Email}>"},
    }
    routed, _ = mapper(FieldsMapper, {"fields": fields})({"Name": "Ada Lovelace", "Email": "a@x.com"})
    assert routed["default"] == [{"first": "Ada", "last": "Lovelace", "label": "Lovelace, Ada <a@x.com>"}]


def test_an_empty_rule_copies_the_field(mapper: MapperFactory) -> None:
    routed, _ = mapper(FieldsMapper, {"fields": {"Age": None, "Email": {}}})(ADA)
    assert routed["default"] == [{"Age": "36", "Email": " Ada@Example.COM "}]


def test_only_listed_fields_by_default(mapper: MapperFactory) -> None:
    routed, _ = mapper(FieldsMapper, {"fields": {"email": {"from": "Email"}}})(ADA)
    assert routed["default"] == [{"email": " Ada@Example.COM "}]


def test_keep_and_drop(mapper: MapperFactory) -> None:
    options = {"keep": True, "drop": ["Age", "Email"], "fields": {"email": {"from": "Email", "strip": True}}}
    routed, _ = mapper(FieldsMapper, options)(ADA)
    assert routed["default"] == [{"First Name": "Ada", "Last Name": "Lovelace", "email": "Ada@Example.COM"}]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"keep": True}, {"First Name": "Ada", "Last Name": "Lovelace", "Age": "36", "Email": " Ada@Example.COM "}),
        ({"keep": True, "drop": ["Age", "Email"]}, {"First Name": "Ada", "Last Name": "Lovelace"}),
    ],
)
def test_keep_or_drop_without_any_rule(
    mapper: MapperFactory, options: dict[str, Any], expected: dict[str, str]
) -> None:
    routed, _ = mapper(FieldsMapper, options)(ADA)
    assert routed["default"] == [expected]


def test_keep_overrides_input_fields_in_place(mapper: MapperFactory) -> None:
    routed, _ = mapper(FieldsMapper, {"keep": True, "fields": {"Age": {"type": "int"}}})(ADA)
    assert routed["default"][0]["Age"] == 36


def test_key_and_provenance_are_kept(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "id,Email\n7,A@X.COM\n")
    mappers = {"shape": {"type": "fields", "fields": {"email": {"from": "Email", "lower": True}}}}
    result = pipeline({"type": "csv", "path": "in.csv", "key": "id"}, mappers)
    assert result.records == [{"email": "a@x.com", "_key": "7", "_source": "src", "_position": 2}]


def test_required_failure_reaches_the_error_stream(pipeline: Pipeline, write: Write) -> None:
    write("in.csv", "Email,Name\n,Ada\nb@x.com,Bob\n")
    mappers = {"shape": {"type": "fields", "fields": {"email": {"from": "Email", "required": True}}}}
    result = pipeline({"type": "csv", "path": "in.csv"}, mappers)
    assert [r["email"] for r in result.records] == ["b@x.com"]
    assert result.reasons == ["field 'email' is required (from 'Email')"]
    assert result.errors[0]["_error"]["component"] == "shape"
    assert result.errors[0]["Name"] == "Ada"  # the error stream carries the record as the mapper received it


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"transform": "lowercase"}, "unknown transform 'lowercase' (known transforms: strip, lower, upper,"),
        ({"transform": ["strip", "nope"]}, "unknown transform 'nope'"),
        ({"from_": "a", "value": "b"}, "a field takes one of from, value and template, not from and value"),
        ({"lower": True, "upper": True}, "lower and upper exclude each other"),
        ({"template": "{First"}, "invalid template '{First'"),
        ({"template": "{} {}"}, "must name its fields"),
        ({"template": "{a!z}"}, "template '{a!z}': unknown conversion !z (use !s, !r or !a)"),
        ({"template": "{a} {b!x} {c!r} {d!q:>4}"}, "unknown conversion !x, !q"),
        ({"template": "{b:{a!z}}"}, "unknown conversion !z"),  # nested in a format spec
        ({"template": "{b:{}}"}, "must name its fields"),
        ({"template": "{b:>{0}}"}, "must name its fields"),
        ({"template": "{a!r:zz}"}, "{a!r:zz}: Unknown format code 'z'"),  # text whatever the value
    ],
)
def test_rule_validation_messages(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FieldRule(**rule)


@pytest.mark.parametrize("template", ["{a!r}", "{a!s:>8}", "{a!a}", "{a:{b}}", "{a!s:>{b}}", "{a:zz}", "{{x}} {a}"])
def test_templates_with_valid_conversions_load(template: str) -> None:
    FieldRule(template=template)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fields": {"a": None}, "drop": ["x"]}, "drop only applies with keep: true"),
        ({}, "list some fields, or set keep: true"),
    ],
)
def test_options_validation(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FieldsOptions(**options)


SPEC = """\
version: 1
job: t
sources:
  src: {type: jsonl, path: in.jsonl}
mappers:
  shape:
    type: fields
    inputs: [src]
    fields:
      email: {from: Email, transform: [strip, lowercase]}
sinks:
  out: {type: jsonl, path: out.jsonl, inputs: [shape]}
"""


def test_unknown_transform_is_a_spec_error_naming_the_field_and_the_known_transforms(write: Write) -> None:
    with pytest.raises(SpecError) as caught:
        load(write("job.yaml", SPEC))
    (problem,) = caught.value.problems
    assert problem.endswith(
        "job.yaml:10: $.mappers.shape.fields.email: unknown transform 'lowercase' (known transforms: "
        "strip, lower, upper, email_domain, url_domain, first_name, last_name, md5, sha256, digits)"
    )

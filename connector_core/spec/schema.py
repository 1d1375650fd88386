"""The JSON Schema (draft 2020-12) of a spec, built from the spec model and every installed plugin's options.

Editors use it (``# yaml-language-server: $schema=...``) to complete keys and flag typos as you type; CI can
validate specs with any JSON Schema validator. Every object forbids unknown keys, so a misspelled option fails.
It mirrors what the loader accepts: strings also accept other YAML scalars, and numbers and booleans also
accept a ``${VAR}`` reference (substituted at load time).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import attrs

from connector_core.components import ComponentClass, Mapper
from connector_core.options import CHOICES, describe, resolved_fields, spec_key
from connector_core.plugin_manager import PluginHost
from connector_core.registry import ComponentRegistry
from connector_core.spec.model import RawSpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: A value the loader takes from the environment: it is checked once substituted, not here.
ENV_REFERENCE: dict[str, Any] = {"type": "string", "pattern": r"\$\{"}
_BOOL_WORDS = ["true", "false", "yes", "no", "on", "off", "True", "False", "0", "1"]
_SECTIONS = {"connections": "connection", "sources": "source", "mappers": "mapper", "sinks": "sink"}
_INPUTS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
_POSITIVE = {"anyOf": [{"type": "integer", "minimum": 1}, ENV_REFERENCE]}


def schema_text(host: PluginHost) -> str:
    """:func:`spec_schema` as the file ``crmsync schema`` writes (indented JSON, a final line break)."""
    return json.dumps(spec_schema(host), indent=2) + "\n"


def spec_schema(host: PluginHost) -> dict[str, Any]:
    """The schema of a spec that may use every component type registered in ``host``."""
    defs: dict[str, Any] = {}
    top = attrs_schema(RawSpec)
    for section, kind in _SECTIONS.items():
        registry = getattr(host, section)
        defs[kind] = _kind_schema(kind, registry, defs)
        top["properties"][section] = {
            "type": "object",
            "description": f"{kind}s of the job, by name",
            "additionalProperties": {"$ref": f"#/$defs/{kind}"},
        }
    return {"$schema": DRAFT, "title": "crmsync job spec", **top, "$defs": defs}


def _kind_schema(kind: str, registry: ComponentRegistry, defs: dict[str, Any]) -> dict[str, Any]:
    branches = []
    for name in registry.names():
        entry = registry.entries[name]
        ref = f"{kind}.{name}"
        defs[ref] = _component_schema(kind, name, entry.cls)
        branches.append(
            {"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": {"$ref": f"#/$defs/{ref}"}}
        )
    return {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": registry.names(), "description": f"the {kind} type"}},
        "allOf": branches,
    }


def _component_schema(kind: str, name: str, cls: ComponentClass) -> dict[str, Any]:
    schema = attrs_schema(cls.Options)
    summary = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    common: dict[str, Any] = {"type": {"const": name}}
    if kind == "source":
        common["key"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    elif issubclass(cls, Mapper):
        common["inputs"] = {**_INPUTS, "description": "streams this component reads: name or name.output"}
        batch = {"anyOf": [{"type": "integer", "minimum": 1}, ENV_REFERENCE]}
        if cls.max_batch_size:
            batch["anyOf"][0]["maximum"] = cls.max_batch_size
        common["batch_size"] = {**batch, "description": f"records per call (default {cls.batch_size})"}
        common["concurrency"] = {**_POSITIVE, "description": f"calls in flight (default {cls.concurrency})"}
        schema["required"] = ["inputs", *schema.get("required", [])]
    schema["properties"] = {**common, **schema["properties"]}
    schema["required"] = ["type", *schema.get("required", [])]
    if summary:
        schema["description"] = summary
    return schema


def attrs_schema(cls: type) -> dict[str, Any]:
    """An object schema for the attrs class ``cls``: its fields, which are required, nothing else."""
    properties: dict[str, Any] = {}
    required = []
    helps = {info.key: info.help for info in describe(cls)}
    for field in resolved_fields(cls):
        key = spec_key(field)
        properties[key] = type_schema(field.type)
        if field.metadata.get(CHOICES):
            properties[key] = _only(properties[key], list(field.metadata[CHOICES]))
        if helps.get(key):
            properties[key]["description"] = helps[key]
        if field.default is attrs.NOTHING:
            required.append(key)
    result: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        result["required"] = required
    return result


def _only(schema: dict[str, Any], choices: list[str]) -> dict[str, Any]:
    """``schema`` with its text values restricted to ``choices`` (also inside lists and alternatives)."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [_only(option, choices) for option in schema["anyOf"]]}
    if schema.get("type") == "array":
        return {**schema, "items": _only(schema.get("items", {}), choices)}
    if schema.get("type") in ("string", ["string", "number", "boolean"]):
        return {"enum": choices}
    return schema


def type_schema(annotation: Any) -> dict[str, Any]:
    """The schema of values the spec converter structures into ``annotation``; unknown types accept anything."""
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return {"anyOf": [type_schema(arg) for arg in args]}
    if origin in (list, set, frozenset) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(args[1])} if args else {"type": "object"}
    if annotation is bool:
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1, *_BOOL_WORDS]}, ENV_REFERENCE]}
    if annotation is int:
        return {"anyOf": [{"type": "integer"}, ENV_REFERENCE]}
    if annotation is float:
        return {"anyOf": [{"type": "number"}, ENV_REFERENCE]}
    if annotation is str:
        return {"type": ["string", "number", "boolean"]}
    if annotation is Path:
        return {"type": "string"}
    if isinstance(annotation, type) and attrs.has(annotation):
        return attrs_schema(annotation)
    return {}

"""Built-in transform plugins: the ``fields``, ``filter`` and ``dedupe`` mappers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core import hookimpl

from .dedupe import DedupeMapper
from .fields import FieldsMapper
from .filter import FilterMapper

if TYPE_CHECKING:
    from connector_core.registry import ComponentRegistry


@hookimpl
def register_mappers(registry: ComponentRegistry) -> None:
    """The ``fields``, ``filter`` and ``dedupe`` mappers."""
    registry.add("fields", FieldsMapper)
    registry.add("filter", FilterMapper)
    registry.add("dedupe", DedupeMapper)

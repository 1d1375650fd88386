"""Built-in transform plugins: the ``fields``, ``filter`` and ``dedupe`` mappers.

The mappers are registered by place (``registry.add_lazy``): a mapper's module is imported when a spec uses it,
not with the plugin nor when the registry is filled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core import hookimpl

if TYPE_CHECKING:
    from connector_core.registry import ComponentRegistry


@hookimpl
def register_mappers(registry: ComponentRegistry) -> None:
    """The ``fields``, ``filter`` and ``dedupe`` mappers."""
    registry.add_lazy("fields", f"{__name__}.fields:FieldsMapper")
    registry.add_lazy("filter", f"{__name__}.filter:FilterMapper")
    registry.add_lazy("dedupe", f"{__name__}.dedupe:DedupeMapper")

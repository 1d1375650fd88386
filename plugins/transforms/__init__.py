"""Built-in transform plugins: the ``fields``, ``filter`` and ``dedupe`` mappers.

The mapper modules are imported when the registry is first filled, not with the plugin: listing the plugins
for ``crmsync --help`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector_core import hookimpl

if TYPE_CHECKING:
    from connector_core.registry import ComponentRegistry


@hookimpl
def register_mappers(registry: ComponentRegistry) -> None:
    """The ``fields``, ``filter`` and ``dedupe`` mappers."""
    from .dedupe import DedupeMapper
    from .fields import FieldsMapper
    from .filter import FilterMapper

    registry.add("fields", FieldsMapper)
    registry.add("filter", FilterMapper)
    registry.add("dedupe", DedupeMapper)

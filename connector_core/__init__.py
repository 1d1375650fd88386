"""crmsync's core engine: the sync-spec model, the plugin system and the streaming engine."""

import pluggy

#: The single source of the version (pyproject.toml reads it from here).
__version__ = "0.1.0"

#: Marker for hook implementations: decorate functions named after the specs in :mod:`connector_core.hookspecs`.
hookimpl = pluggy.HookimplMarker("crmsync")


def __getattr__(name: str) -> object:
    # The run API is imported on first use: `import connector_core` stays as light as the hook marker.
    if name in ("run", "load", "execute"):
        from connector_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'connector_core' has no attribute {name!r}")

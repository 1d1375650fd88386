"""crmsync's core engine: the sync-spec model, the plugin system and the streaming engine."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("crmsync")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

#: Marker for hook implementations: decorate functions named after the specs in :mod:`connector_core.hookspecs`.
hookimpl = pluggy.HookimplMarker("crmsync")

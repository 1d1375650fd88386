"""Plugins loaded from files next to a spec (``plugins: [my_mapper.py]``): a one-off component needs no package.

A local plugin is an ordinary plugin module — ``@hookimpl`` functions such as ``register_mappers`` — that is
imported from its file and registered under the name ``local:FILE`` for the spec's run only.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from connector_core.errors import PluginError


def import_plugin_file(path: Path) -> ModuleType:
    """Import the Python file at ``path`` as a module with a name unique to its location.

    :raises PluginError: naming the file when it is missing or fails to import.
    """
    if path.suffix != ".py" or not path.is_file():
        raise PluginError(f"{path}: not found (a local plugin is a .py file, relative to the spec)")
    import hashlib  # only for a spec's `plugins:`; not on the path of `crmsync --help`

    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"crmsync_local_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as for any import: attrs and cattrs resolve its annotations through it.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"{path}: local plugin failed to import: {type(exc).__name__}: {exc}") from None
    return module

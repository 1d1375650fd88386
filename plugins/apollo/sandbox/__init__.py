"""A faithful local stand-in for the Apollo.io API, for tests, demos and benchmarks.

In process: ``ApolloSandbox`` (the request handler) with ``sandbox_transport`` for httpx clients. Over
HTTP: ``SandboxServer``, or the ``crmsync sandbox apollo`` command (:func:`main`).
"""

import importlib
from typing import Any

#: Public name → the module defining it; imported on first use so `crmsync --help` does not load httpx.
_EXPORTS = {
    "ApolloSandbox": "app",
    "add_arguments": "cli",
    "main": "cli",
    "run": "cli",
    "RateLimits": "config",
    "SandboxConfig": "config",
    "DEFAULT_SEED": "data",
    "Seed": "data",
    "example_leads": "data",
    "load_seed": "data",
    "SandboxConnectionReset": "responses",
    "SandboxResponse": "responses",
    "SandboxServer": "server",
    "SandboxTransport": "transport",
    "sandbox_transport": "transport",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_SEED",
    "ApolloSandbox",
    "RateLimits",
    "SandboxConfig",
    "SandboxConnectionReset",
    "SandboxResponse",
    "SandboxServer",
    "SandboxTransport",
    "Seed",
    "add_arguments",
    "example_leads",
    "load_seed",
    "main",
    "run",
    "sandbox_transport",
]

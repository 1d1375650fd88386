"""crmsync-hello: a tiny example plugin registered through the ``crmsync`` entry-point group.

Its components are imported by the hooks, not with the plugin: ``crmsync --help`` loads every plugin, and
should not pay for what only a run needs.
"""

from __future__ import annotations

from connector_core import hookimpl


@hookimpl
def register_sources(registry):
    from .components import Greetings

    registry.add("hello.greetings", Greetings)


@hookimpl
def register_mappers(registry):
    from .components import Shout

    registry.add("hello.shout", Shout)


@hookimpl
def register_sinks(registry):
    from .components import JsonlSink

    registry.add("hello.jsonl", JsonlSink)

"""Built-in Apollo.io plugin: people enrichment, organization enrichment, contact creation, and a local sandbox.

Registered through the ``crmsync`` entry-point group exactly like a third-party plugin; its component types are
registered by place (``registry.add_lazy``), so a job imports only the Apollo modules it uses.
"""

from __future__ import annotations

from connector_core import hookimpl
from connector_core.registry import CommandRegistry, ComponentRegistry


@hookimpl
def register_connections(registry: ComponentRegistry) -> None:
    registry.add_lazy("apollo", f"{__name__}.connection:ApolloConnection")


@hookimpl
def register_mappers(registry: ComponentRegistry) -> None:
    registry.add_lazy("apollo.bulk_match", f"{__name__}.bulk_match:BulkMatch")
    registry.add_lazy("apollo.organizations_bulk_enrich", f"{__name__}.organizations:OrganizationsBulkEnrich")


@hookimpl
def register_sinks(registry: ComponentRegistry) -> None:
    registry.add_lazy("apollo.contacts", f"{__name__}.contacts:ContactsSink")


@hookimpl
def register_commands(commands: CommandRegistry) -> None:
    # Imported only when a command runs, so `crmsync --help` stays fast.
    from crmsync_plugins.apollo import demo

    commands.add("sandbox", "run a local stand-in of a remote API (apollo)", demo.configure_sandbox, demo.run_sandbox)
    from crmsync_plugins.apollo.webhook import cli as webhook

    commands.add(
        "webhook", "receive Apollo's phone/waterfall deliveries, or print their URL", webhook.configure, webhook.run
    )
    commands.add("demo", "run the example job against an in-process Apollo sandbox", demo.configure, demo.run)

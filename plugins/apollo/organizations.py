"""Mapper ``apollo.organizations_bulk_enrich``: company data for up to 10 domains a call."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.records import Record
from crmsync_plugins.apollo.connection import ApolloConnection
from crmsync_plugins.apollo.errors import ApolloError, ApolloUnavailable
from crmsync_plugins.apollo.identity import norm
from crmsync_plugins.apollo.paths import get_path

MAX_DOMAINS = 10

DEFAULT_SELECT = {
    "organization_id": "id",
    "organization_name": "name",
    "organization_industry": "industry",
    "organization_employees": "estimated_num_employees",
    "organization_website": "website_url",
}


@attrs.frozen
class OrganizationsOptions:
    """Options of ``apollo.organizations_bulk_enrich``."""

    connection: str
    #: The record field holding the company's domain (no ``www.``, no ``@``).
    domain_field: str = "domain"
    #: Output field → dotted path in Apollo's organization.
    select: dict[str, str] = attrs.field(factory=lambda: dict(DEFAULT_SELECT))


class OrganizationsBulkEnrich(Mapper):
    """Merge Apollo organization fields into records by domain. A domain Apollo does not know is not an error:
    the record passes through unchanged."""

    Options = OrganizationsOptions
    batch_size: ClassVar[int] = 50  # records; they are grouped into calls of 10 distinct domains
    concurrency: ClassVar[int] = 2

    def open(self) -> None:
        self.connection: ApolloConnection = self.context.connection(self.options.connection)

    def domains(self, batch: list[Record]) -> list[str]:
        """The distinct normalised domains of a batch."""
        return sorted({norm(r.data.get(self.options.domain_field)) for r in batch} - {""})

    def plan(self, batch: list[Record], out: Emitter) -> None:
        """Count the calls :meth:`process` would make; records pass through unchanged."""
        calls = -(-len(self.domains(batch)) // MAX_DOMAINS)
        if calls:
            self.connection.stats.planned[self.connection.options.url("organizations/bulk_enrich")] += calls
        out.emit_many(batch)

    async def process(self, batch: list[Record], out: Emitter) -> None:
        domains = self.domains(batch)
        found: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        transient: set[str] = set()
        for start in range(0, len(domains), MAX_DOMAINS):
            chunk = domains[start : start + MAX_DOMAINS]
            try:
                body = await self.connection.client.post(  # type: ignore[union-attr]
                    "organizations/bulk_enrich", {"domains": chunk}
                )
            except ApolloError as exc:
                failed.update(dict.fromkeys(chunk, f"organizations/bulk_enrich failed: {exc}"))
                if isinstance(exc, ApolloUnavailable):
                    transient.update(chunk)
                continue
            for organization in body.get("organizations") or []:
                if isinstance(organization, dict):
                    domain = norm(organization.get("primary_domain"))
                    if domain:
                        found[domain] = organization
        for record in batch:
            domain = norm(record.data.get(self.options.domain_field))
            if domain in failed:
                (out.defer if domain in transient else out.fail)(record, failed[domain])
                continue
            organization = found.get(domain)
            if organization is None:
                out.emit(record)
            else:
                fields = {name: get_path(organization, path) for name, path in self.options.select.items()}
                out.emit(record.with_data({**record.data, **fields}))

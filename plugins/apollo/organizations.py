"""Mapper ``apollo.organizations_bulk_enrich``: company data for up to 10 domains a call."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.options import option
from connector_core.records import Record
from crmsync_plugins.apollo.connection import ApolloConnection
from crmsync_plugins.apollo.errors import (
    ApolloAuthError,
    ApolloError,
    ApolloUnavailable,
    EndpointPaused,
    MalformedResponse,
    OutOfCredits,
)
from crmsync_plugins.apollo.paths import get_path

MAX_DOMAINS = 10
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def norm_domain(value: Any) -> str:
    """A company's bare domain as Apollo wants it: ``https://WWW.Apollo.io/about`` and ``jane@apollo.io`` are
    ``apollo.io`` (no scheme, ``www.``, path, port, ``@`` or case)."""
    text = str(value or "").strip().lower().rpartition("@")[2]
    text = _SCHEME.sub("", text).split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].split(":", 1)[0]
    return text.strip(".").removeprefix("www.")


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

    connection: str = option(help="the name of an apollo connection under connections:", connection="apollo")
    #: The record field holding the company's domain; a URL or an email address also works (normalised).
    domain_field: str = "domain"
    #: Output field → dotted path in Apollo's organization.
    select: dict[str, str] = attrs.field(factory=lambda: dict(DEFAULT_SELECT))


class OrganizationsBulkEnrich(Mapper[OrganizationsOptions]):
    """Merge Apollo organization fields into records by domain, with ``organizations/bulk_enrich`` (the domains
    sent as ``domains[]`` query parameters, as Apollo's reference documents). A domain Apollo does not know is
    not an error: the record passes through unchanged. Records of calls that failed transiently, or that were
    not sent because the account ran out of credits, are set aside for the next run."""

    Options = OrganizationsOptions
    batch_size: ClassVar[int] = 50  # records; they are grouped into calls of 10 distinct domains
    concurrency: ClassVar[int] = 2

    def open(self) -> None:
        self.connection: ApolloConnection = self.context.connection(self.options.connection)

    def domains(self, batch: list[Record]) -> list[str]:
        """The distinct normalised domains of a batch."""
        return sorted({self._domain(record) for record in batch} - {""})

    def _domain(self, record: Record) -> str:
        return norm_domain(record.data.get(self.options.domain_field))

    def plan(self, batch: list[Record], out: Emitter) -> None:
        """Count the calls :meth:`process` would make; records pass through unchanged."""
        domains = self.domains(batch)
        calls = -(-len(domains) // MAX_DOMAINS)
        if calls:
            stats = self.connection.stats
            stats.planned[self.connection.options.url("organizations/bulk_enrich")] += calls
            stats.estimated_credits += len(domains)
        out.emit_many(batch)

    async def process(self, batch: list[Record], out: Emitter) -> None:
        domains = self.domains(batch)
        found: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        deferred: dict[str, str] = {}
        for start in range(0, len(domains), MAX_DOMAINS):
            chunk = domains[start : start + MAX_DOMAINS]
            try:
                found.update(await self._enrich(chunk))
            except ApolloAuthError as exc:
                self.context.halt(f"{self.name}: {exc}")  # nothing more is sent; the records are set aside
                deferred.update(dict.fromkeys(chunk, f"organizations/bulk_enrich: {exc}"))
            except (OutOfCredits, ApolloUnavailable) as exc:
                deferred.update(dict.fromkeys(chunk, f"organizations/bulk_enrich: {exc}"))
            except ApolloError as exc:
                failed.update(dict.fromkeys(chunk, f"organizations/bulk_enrich failed: {exc}"))
        for record in batch:
            domain = self._domain(record)
            if domain in failed:
                out.fail(record, failed[domain])
            elif domain in deferred:
                out.defer(record, deferred[domain])
            elif (organization := found.get(domain)) is None:
                out.emit(record)
            else:
                fields = {name: get_path(organization, path) for name, path in self.options.select.items()}
                out.emit(record.with_data({**record.data, **fields}))

    async def _enrich(self, domains: list[str]) -> dict[str, dict[str, Any]]:
        """One call for up to 10 normalised domains: domain → organization, for those Apollo knows."""
        stats, client = self.connection.stats, self.connection.client
        assert client is not None
        try:
            body = await client.post("organizations/bulk_enrich", None, {"domains[]": domains})
            organizations = body.get("organizations") or []
            if not isinstance(organizations, list):
                raise MalformedResponse(f"HTTP 200: 'organizations' is not a list: {str(organizations)[:80]!r}")
        except OutOfCredits:
            self.context.mark_failed(f"{self.name}: {client.out_of_credits}; the rest is set aside for the next run")
            raise
        except EndpointPaused as exc:
            self.context.mark_failed(f"{self.name}: {exc}; the rest is set aside for the next run")
            raise
        except (ApolloUnavailable, MalformedResponse) as exc:
            if not isinstance(exc, ApolloUnavailable) or exc.uncertain:
                stats.credits_at_risk += len(domains)  # one credit per company Apollo may have enriched
            raise
        found = {}
        for organization in organizations:
            if isinstance(organization, dict):
                for url in (organization.get("primary_domain"), organization.get("website_url")):
                    domain = norm_domain(url)
                    if domain in domains and domain not in found:
                        found[domain] = organization
        consumed = body.get("credits_consumed", body.get("unique_enriched_records"))
        try:
            stats.credits += Decimal(str(consumed))
        except (ArithmeticError, ValueError):
            stats.credits_unreported_calls += 1
            stats.credits_at_risk += len(found)
        return found

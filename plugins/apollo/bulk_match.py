"""Mapper ``apollo.bulk_match``: people enrichment, 10 people a call, matched and missing outputs."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.records import Record
from crmsync_plugins.apollo.connection import ApolloConnection
from crmsync_plugins.apollo.errors import ApolloError, ApolloUnavailable, OutOfCredits
from crmsync_plugins.apollo.identity import join_answers, person_key
from crmsync_plugins.apollo.paths import get_path

#: The identifying fields Apollo accepts in a ``details[]`` entry.
DETAIL_FIELDS = (
    "first_name",
    "last_name",
    "name",
    "email",
    "hashed_email",
    "organization_name",
    "domain",
    "id",
    "linkedin_url",
)
#: What happened to one person: (``matched``, person) or (``missing``/``skipped``/``failed``/``deferred``, reason).
Answer = tuple[str, Any]

#: At most this many people per call (Apollo answers 400 RECORD_LIMIT_EXCEEDED beyond it).
MAX_DETAILS = 10

DEFAULT_SELECT = {
    "apollo_id": "id",
    "apollo_title": "title",
    "apollo_email": "email",
    "apollo_email_status": "email_status",
    "apollo_linkedin_url": "linkedin_url",
    "apollo_organization_name": "organization.name",
    "apollo_organization_domain": "organization.primary_domain",
    "apollo_phone_numbers": "phone_numbers",
}


def _known_details(_: object, attribute: attrs.Attribute, value: dict[str, str]) -> None:
    unknown = sorted(set(value) - set(DETAIL_FIELDS))
    if unknown:
        raise ValueError(f"Apollo does not accept {unknown} in details (accepted: {', '.join(DETAIL_FIELDS)})")


@attrs.frozen
class BulkMatchOptions:
    """Options of ``apollo.bulk_match``."""

    #: The name of the ``apollo`` connection under ``connections:``.
    connection: str
    #: Apollo detail field → record field. Unlisted detail fields are read from a record field of the same name.
    match: dict[str, str] = attrs.field(factory=dict, validator=_known_details)
    #: Output field → dotted path in Apollo's person (``organization.primary_domain``).
    select: dict[str, str] = attrs.field(factory=lambda: dict(DEFAULT_SELECT))
    #: Also put the whole Apollo person under this field.
    raw_field: str | None = None
    reveal_personal_emails: bool = False
    #: Requires ``webhook_url``: Apollo delivers phone numbers there, asynchronously.
    reveal_phone_number: bool = False
    run_waterfall_email: bool = False
    run_waterfall_phone: bool = False
    #: Where Apollo posts phone/waterfall results. Put a secret token in it (``${APOLLO_WEBHOOK_URL}``).
    webhook_url: str | None = None
    #: Stop sending calls once this many credits would be exceeded; the rest go to ``skipped``.
    max_credits: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.asynchronous_flags and not self.webhook_url:
            flags = " and ".join(self.asynchronous_flags)
            raise ValueError(f"{flags} requires webhook_url (Apollo posts the results there)")

    @property
    def asynchronous_flags(self) -> list[str]:
        """The flags whose results Apollo delivers later, to the webhook."""
        return [
            flag
            for flag in ("reveal_phone_number", "run_waterfall_email", "run_waterfall_phone")
            if getattr(self, flag)
        ]

    def query(self) -> dict[str, str]:
        """The call's query parameters: the flags that are on, and the webhook only when one needs it."""
        flags = (
            ["reveal_personal_emails", *self.asynchronous_flags]
            if self.reveal_personal_emails
            else self.asynchronous_flags
        )
        params = {flag: "true" for flag in flags}
        if self.asynchronous_flags and self.webhook_url:
            params["webhook_url"] = self.webhook_url
        return params

    @property
    def credits_per_person(self) -> int:
        """The most one matched person can cost: 1, plus 8 for a mobile number."""
        return 9 if self.reveal_phone_number else 1


class BulkMatch(Mapper):
    """Enrich people with ``POST /api/v1/people/bulk_match``.

    Outputs: ``matched`` (the record plus the selected Apollo fields), ``missing`` (no match, or nothing to
    match on, with ``_missing_reason``) and ``skipped`` (not sent: the credit budget ran out).
    """

    Options = BulkMatchOptions
    outputs: ClassVar[tuple[str, ...]] = ("matched", "missing", "skipped")
    quiet_outputs: ClassVar[tuple[str, ...]] = ("skipped",)
    deferred_outputs: ClassVar[tuple[str, ...]] = ("skipped",)
    batch_size: ClassVar[int] = MAX_DETAILS
    concurrency: ClassVar[int] = 4

    max_batch_size: ClassVar[int] = MAX_DETAILS

    def open(self) -> None:
        self.connection: ApolloConnection = self.context.connection(self.options.connection)
        self.params = self.options.query()
        #: Credits promised to calls in flight, so concurrent calls cannot overrun max_credits together.
        self.reserved = Decimal(0)
        self.out_of_credits: str | None = None
        #: Identity → the answer being fetched, so a person asked twice in one run is paid for once.
        self.in_flight: dict[str, asyncio.Future[Answer]] = {}
        #: Identities a plan already counted.
        self.planned: set[str] = set()

    def detail(self, record: Record) -> dict[str, Any]:
        """The ``details[]`` entry for one record: every identifying field it has."""
        data, mapping = record.data, self.options.match
        detail = {}
        for field in DETAIL_FIELDS:
            value = data.get(mapping.get(field, field))
            if value not in (None, ""):
                detail[field] = str(value).strip()
        return detail

    async def process(self, batch: list[Record], out: Emitter) -> None:
        asked = self._identifiable(batch, out)
        answers = self._cached(asked)
        shared: dict[int, asyncio.Future[Answer]] = {}
        mine: dict[int, asyncio.Future[Answer]] = {}
        for position, (_, detail) in enumerate(asked):
            if position in answers:
                continue
            key = person_key(detail)
            pending = self.in_flight.get(key)
            if pending is not None:  # the same person is already being asked about: pay once
                shared[position] = pending
            else:
                mine[position] = self.in_flight[key] = asyncio.get_running_loop().create_future()
        if mine:
            results = await self._call([asked[position][1] for position in mine])
            for (position, future), answer in zip(mine.items(), results, strict=True):
                answers[position] = answer
                future.set_result(answer)
                self.in_flight.pop(person_key(asked[position][1]), None)
            self._remember([(asked[p][1], answers[p]) for p in mine])
        for position, future in shared.items():
            answers[position] = await future
        self._emit(asked, answers, out)

    def plan(self, batch: list[Record], out: Emitter) -> None:
        """What :meth:`process` would do, without calling Apollo: cached answers are used, every other person
        is assumed matched and counted as a planned call and its worst-case credits."""
        asked = self._identifiable(batch, out)
        answers = self._cached(asked)
        new = 0
        for position, (_, detail) in enumerate(asked):
            if position not in answers:
                key = person_key(detail)
                new += key not in self.planned
                self.planned.add(key)
                answers[position] = ("matched", {})
        if new:
            stats = self.connection.stats
            stats.planned[self.connection.options.url("people/bulk_match")] += 1
            stats.estimated_credits += new * self.options.credits_per_person
        self._emit(asked, answers, out)

    def _identifiable(self, batch: list[Record], out: Emitter) -> list[tuple[Record, dict[str, Any]]]:
        """The records Apollo can be asked about, with their details; the others go to ``missing`` for free."""
        asked: list[tuple[Record, dict[str, Any]]] = []
        for record in batch:
            detail = self.detail(record)
            if _identifies(detail):
                asked.append((record, detail))
            else:
                self.connection.stats.outcomes["missing"] += 1
                reason = "no identifying field (email, hashed_email, id, linkedin_url or name)"
                out.emit(_tagged(record, "_missing_reason", reason), "missing")
        return asked

    def _emit(self, asked: list[tuple[Record, dict[str, Any]]], answers: dict[int, Answer], out: Emitter) -> None:
        stats = self.connection.stats
        for position, (record, _) in enumerate(asked):
            kind, value = answers[position]
            stats.outcomes[kind] += 1
            if kind == "failed":
                out.fail(record, value)
            elif kind == "deferred":
                out.defer(record, value)
            elif kind == "matched":
                out.emit(record.with_data({**record.data, **self._selected(value)}), "matched")
            else:
                out.emit(_tagged(record, f"_{kind}_reason", value), kind)

    async def _call(self, details: list[dict[str, Any]]) -> list[Answer]:
        """One bulk_match call for ``details`` (at most 10); an answer per detail, in order."""
        cost = Decimal(len(details) * self.options.credits_per_person)
        budget_left = self._credits_left()
        stop = self.out_of_credits or self.context.halted
        if stop is None and budget_left is not None and cost > budget_left:
            stop = f"max_credits {self.options.max_credits} would be exceeded"
            self.context.mark_failed(f"{self.name}: {stop}; the rest is skipped and retried next run")
        if stop:
            return [("skipped", stop)] * len(details)
        self.reserved += cost
        try:
            body = await self.connection.client.post(  # type: ignore[union-attr]
                "people/bulk_match", {"details": details}, self.params or None
            )
        except OutOfCredits as exc:
            self.out_of_credits = f"Apollo reports no credits left ({exc})"
            self.context.mark_failed(self.out_of_credits)
            return [("skipped", self.out_of_credits)] * len(details)
        except ApolloError as exc:
            # Retries ran out on a transient failure: set aside for the next run, not a reject.
            kind = "deferred" if isinstance(exc, ApolloUnavailable) else "failed"
            return [(kind, f"people/bulk_match failed: {exc}")] * len(details)
        finally:
            self.reserved -= cost
        joined = join_answers(details, body.get("matches") or [])
        consumed = body.get("credits_consumed")
        stats = self.connection.stats
        if consumed is not None:
            stats.credits += Decimal(str(consumed))
        else:  # waterfall mode leaves the count out; assume the worst so max_credits stays a ceiling
            stats.credits += Decimal(sum(1 for key in joined if key >= 0) * self.options.credits_per_person)
        for key, person in joined.items():
            if key < 0:
                stats.outcomes["unjoined_matches"] += 1
                self.context.log.warning(
                    "%s: Apollo returned person %s that matches no record of the batch", self.name, person.get("id")
                )
        return [
            ("matched", joined[position]) if position in joined else ("missing", "Apollo found no match")
            for position in range(len(details))
        ]

    def _credits_left(self) -> Decimal | None:
        if self.options.max_credits is None:
            return None
        return Decimal(str(self.options.max_credits)) - self.connection.stats.credits - self.reserved

    def _cached(self, asked: list[tuple[Record, dict[str, Any]]]) -> dict[int, Answer]:
        """Answers the enrichment cache already holds (the job keeps state): no call, no credits."""
        state = self.context.state
        if state is None or not asked:
            return {}
        keys = [person_key(detail) for _, detail in asked]
        ttl = self.context.spec.state_settings.cache_ttl_days * 86400
        hits = state.cache_get(self.cache_namespace, sorted(set(keys)), ttl)
        answers: dict[int, Answer] = {}
        for position, key in enumerate(keys):
            hit = hits.get(key)
            if hit is not None:
                self.connection.stats.outcomes["cache_hits"] += 1
                answers[position] = (
                    ("matched", hit["person"]) if hit["person"] else ("missing", "Apollo found no match (cached)")
                )
        return answers

    def _remember(self, results: list[tuple[dict[str, Any], Answer]]) -> None:
        state = self.context.state
        if state is None:
            return
        entries = {
            person_key(detail): {"person": value if kind == "matched" else None}
            for detail, (kind, value) in results
            if kind in ("matched", "missing")
        }
        if entries:
            state.cache_put(self.cache_namespace, entries)

    @property
    def cache_namespace(self) -> str:
        """Cache entries are only reused for the same Apollo account endpoint and the same reveal flags."""
        flags = ",".join(sorted(flag for flag in self.params if flag != "webhook_url"))
        return f"apollo.bulk_match {self.connection.options.base_url.rstrip('/')} {flags}"

    def _selected(self, person: dict[str, Any]) -> dict[str, Any]:
        fields = {name: get_path(person, path) for name, path in self.options.select.items()}
        if self.options.raw_field:
            fields[self.options.raw_field] = person
        return fields


def _identifies(detail: dict[str, Any]) -> bool:
    return any(field in detail for field in ("email", "hashed_email", "id", "linkedin_url", "name")) or (
        "first_name" in detail and "last_name" in detail
    )


def _tagged(record: Record, field: str, reason: str) -> Record:
    return record.with_data({**record.data, field: reason})

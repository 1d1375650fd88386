"""Mapper ``apollo.bulk_match``: people enrichment, 10 people a call, matched and missing outputs."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from connector_core.components import Emitter, Mapper
from connector_core.options import option
from connector_core.records import Record
from crmsync_plugins.apollo.connection import ApolloConnection
from crmsync_plugins.apollo.deliveries import Deliveries
from crmsync_plugins.apollo.errors import (
    ApolloAuthError,
    ApolloError,
    ApolloUnavailable,
    EndpointPaused,
    MalformedResponse,
    OutOfCredits,
)
from crmsync_plugins.apollo.identity import join_answers, person_key
from crmsync_plugins.apollo.paths import get_path, selector

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
#: What happened to one person: (``matched``, person) or (``missing``/``skipped``/``deferred``/``failed``, reason).
Answer = tuple[str, Any]
#: A record Apollo can be asked about, its ``details[]`` entry and its strongest identity (computed once, carried).
Asked = tuple[Record, dict[str, Any], str]
#: A call in flight (resolving to an answer per person it asks about) and one person's place in it.
Pending = tuple[asyncio.Future[list[Answer]], int]

#: Response fields copied onto matched records when an asynchronous flag is on: the keys the webhook results
#: (delivered later) are joined back with.
ASYNC_FIELDS = {
    "apollo_request_id": "request_id",
    "apollo_waterfall_status": "waterfall.status",
    "apollo_phone_request_id": "phone_enrichment.request_id",
    "apollo_phone_status": "phone_enrichment.status",
}

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


def _known_details(_: object, attribute: attrs.Attribute[dict[str, str]], value: dict[str, str]) -> None:
    unknown = sorted(set(value) - set(DETAIL_FIELDS))
    if unknown:
        raise ValueError(f"Apollo does not accept {unknown} in details (accepted: {', '.join(DETAIL_FIELDS)})")


@attrs.frozen
class BulkMatchOptions:
    """Options of ``apollo.bulk_match``."""

    connection: str = option(help="the name of an apollo connection under connections:", connection="apollo")
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
    webhook_url: str | None = option(
        None, help="where Apollo posts phone/waterfall results; it carries a token, so it is masked", secret=True
    )
    #: Stop sending calls once this many credits would be exceeded; the rest go to ``skipped``.
    max_credits: float | None = None
    #: After the last batch, poll ``webhook_result`` this long for phone/waterfall deliveries still pending;
    #: with state, what is still pending then is collected by the next run.
    delivery_wait_s: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))

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


class BulkMatch(Mapper[BulkMatchOptions]):
    """Enrich people with ``POST /api/v1/people/bulk_match``.

    Outputs: ``matched`` (the record plus the selected Apollo fields), ``missing`` (no match, or nothing to
    match on, with ``_missing_reason``) and ``skipped`` (not sent: the credit budget or the account's credits
    ran out). ``phones`` and ``waterfall`` carry the asynchronous deliveries (see
    :mod:`~crmsync_plugins.apollo.deliveries`): one record per matched person per request, the input record
    with ``phone_numbers`` (and ``emails``) and ``apollo_delivery_status``. Records of calls that failed
    transiently (retries used up, a ``Retry-After`` too long to wait) are set aside with ``out.defer``; rejected
    calls send their records to the error stream with Apollo's message.
    """

    Options = BulkMatchOptions
    outputs: ClassVar[tuple[str, ...]] = ("matched", "missing", "skipped", "phones", "waterfall")
    quiet_outputs: ClassVar[tuple[str, ...]] = ("skipped", "phones", "waterfall")
    deferred_outputs: ClassVar[tuple[str, ...]] = ("skipped",)
    batch_size: ClassVar[int] = MAX_DETAILS
    concurrency: ClassVar[int] = 4

    max_batch_size: ClassVar[int] = MAX_DETAILS

    def open(self) -> None:
        self.connection: ApolloConnection = self.context.connection(self.options.connection)
        if self.options.webhook_url:  # its token is a secret wherever it was written
            self.context.redactor.add(self.options.webhook_url)
        self.params = self.options.query()
        #: Credits promised to calls in flight, so concurrent calls cannot overrun max_credits together.
        self.reserved = Decimal(0)
        self.out_of_credits: str | None = None
        #: Identity → the call fetching its answer, so a person asked twice in one run is paid for once.
        self.in_flight: dict[str, Pending] = {}
        #: Identities a plan already counted.
        self.planned: set[str] = set()
        self.deliveries = Deliveries(self.name, self.context)

    @functools.cached_property
    def _detail_sources(self) -> tuple[tuple[str, str], ...]:
        """(detail field, record field) pairs, worked out once rather than per record."""
        return tuple((field, self.options.match.get(field, field)) for field in DETAIL_FIELDS)

    @functools.cached_property
    def _select(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The ``select`` fields of an Apollo person, each path split once."""
        return selector(self.options.select)

    def detail(self, record: Record) -> dict[str, Any]:
        """The ``details[]`` entry for one record: every identifying field it has."""
        get = record.data.get
        detail = {}
        for field, source in self._detail_sources:
            value = get(source)
            if value is not None and value != "":
                detail[field] = (value if value.__class__ is str else str(value)).strip()
        return detail

    async def process(self, batch: list[Record], out: Emitter) -> None:
        asked = self._identifiable(batch, out)
        answers = self._cached(asked)
        mine: list[int] = []  # the positions this batch's call asks about
        shared: dict[int, Pending] = {}
        call: asyncio.Future[list[Answer]] | None = None
        for position, (_, _, key) in enumerate(asked):
            if position in answers:
                continue
            pending = self.in_flight.get(key)
            if pending is not None:  # the same person is already being asked about: pay once
                shared[position] = pending
                continue
            if call is None:  # one future per call, not per person: a batch asks about ten
                call = asyncio.get_running_loop().create_future()
            self.in_flight[key] = (call, len(mine))
            mine.append(position)
        if call is not None:
            keys = [asked[position][2] for position in mine]
            try:
                results = await self._call([asked[position][1] for position in mine])
            except BaseException as exc:
                self._abandon(keys, call, exc)
                raise
            call.set_result(results)
            for key in keys:
                self.in_flight.pop(key, None)
            for position, answer in zip(mine, results, strict=True):
                answers[position] = answer
            self._remember(keys, results)
            if self.options.asynchronous_flags:  # otherwise nothing is delivered later
                self._record_deliveries([(asked[position][0], answers[position]) for position in mine])
        for position, (future, index) in shared.items():
            try:
                answers[position] = (await future)[index]
            except ApolloError as exc:
                answers[position] = ("failed", str(exc))
        self._emit(asked, answers, out)

    def _record_deliveries(self, answered: list[tuple[Record, Answer]]) -> None:
        """Write down the deliveries the calls' matches are owed, before the matched records move on."""
        groups: dict[tuple[str, str, str], dict[str, Record]] = {}
        waterfall = self.options.run_waterfall_email or self.options.run_waterfall_phone
        for record, (kind, person) in answered:
            if kind != "matched" or person.get("id") is None or "_apollo_async" not in person:
                continue
            meta = person["_apollo_async"]
            owed = []
            if self.options.reveal_phone_number:
                # No phone_enrichment in the answer: Apollo announced no delivery, none will come.
                rid = meta.get("apollo_phone_request_id")
                owed.append(("phone", rid, meta.get("apollo_phone_status") == "pending"))
            if waterfall:
                owed.append(
                    ("waterfall", meta.get("apollo_request_id"), meta.get("apollo_waterfall_status") == "accepted")
                )
            for delivery, rid, coming in owed:
                status = "pending" if coming and rid is not None else "skipped"
                groups.setdefault((delivery, str(rid), status), {})[str(person["id"])] = record
        for (delivery, rid, status), people in groups.items():
            # A mobile number costs 8 credits on top of the match; an accepted waterfall's whole cost is unknown
            # until its payload says (the call's answer leaves it out), so the worst case is held per person.
            worst_case = 8 if delivery == "phone" else self.options.credits_per_person
            self.deliveries.record(delivery, rid, people, status, self.connection.stats, worst_case)

    async def finish(self, out: Emitter) -> None:
        """Collect the phone/waterfall deliveries of this run and of earlier ones (see ``delivery_wait_s``)."""
        client = self.connection.client
        assert client is not None
        await self.deliveries.collect(client, self.connection.stats, self.options.delivery_wait_s, out)

    def _abandon(self, keys: list[str], call: asyncio.Future[list[Answer]], exc: BaseException) -> None:
        """Wake every batch waiting on a call that died: a shared future left pending would hang the run."""
        for key in keys:
            self.in_flight.pop(key, None)
        if not call.done():
            call.set_exception(ApolloError(f"people/bulk_match failed: {type(exc).__name__}: {exc}"))
            call.add_done_callback(lambda done: done.exception())  # retrieved even with no waiter

    def plan(self, batch: list[Record], out: Emitter) -> None:
        """What :meth:`process` would do, without calling Apollo: cached answers are used, every other person
        is assumed matched and counted as a planned call and its worst-case credits."""
        asked = self._identifiable(batch, out)
        answers = self._cached(asked)
        new = 0
        for position, (_, _, key) in enumerate(asked):
            if position not in answers:
                new += key not in self.planned
                self.planned.add(key)
                answers[position] = ("matched", {})
        if new:
            stats = self.connection.stats
            stats.planned[self.connection.options.url("people/bulk_match")] += 1
            stats.estimated_credits += new * self.options.credits_per_person
        self._emit(asked, answers, out)

    def _identifiable(self, batch: list[Record], out: Emitter) -> list[Asked]:
        """The records Apollo can be asked about, with their details and identities; the others go to ``missing``
        for free."""
        asked: list[Asked] = []
        for record in batch:
            detail = self.detail(record)
            if _identifies(detail):
                asked.append((record, detail, person_key(detail)))
            else:
                self.connection.stats.outcomes["missing"] += 1
                reason = "no identifying field (email, hashed_email, id, linkedin_url or name)"
                out.emit(_tagged(record, "_missing_reason", reason), "missing")
        return asked

    def _emit(self, asked: list[Asked], answers: dict[int, Answer], out: Emitter) -> None:
        outcomes = self.connection.stats.outcomes
        for position, (record, _, _) in enumerate(asked):
            kind, value = answers[position]
            outcomes[kind] += 1
            if kind == "matched":
                out.emit(record.with_data({**record.data, **self._selected(value)}), "matched")
            elif kind == "failed":
                out.fail(record, value)
            elif kind == "deferred":
                out.defer(record, value)
            else:
                out.emit(_tagged(record, f"_{kind}_reason", value), kind)

    async def _call(self, details: list[dict[str, Any]]) -> list[Answer]:
        """One bulk_match call for ``details`` (at most 10); an answer per detail, in order."""
        cost = Decimal(len(details) * self.options.credits_per_person)
        client, stats = self.connection.client, self.connection.stats
        assert client is not None
        if "people/bulk_match" in client.paused:  # set aside like the call that was told to wait
            return [("deferred", f"people/bulk_match: {client.paused['people/bulk_match']}")] * len(details)
        stop = self._stop_reason(cost)
        if stop:
            return [("skipped", stop)] * len(details)
        self.reserved += cost

        def count_lost_attempt(body: dict[str, Any]) -> dict[str, Any]:
            # Apollo may have charged the attempt whose answer was lost; the retry would be charged again.
            stats.credits_at_risk += cost
            left = self._credits_left()
            if left is not None and left < 0:
                raise _CeilingReached(f"max_credits {self.options.max_credits} could be passed by a retry")
            return body

        try:
            body = await client.post(
                "people/bulk_match", {"details": details}, self.params or None, on_uncertain_retry=count_lost_attempt
            )
            matches = _matches(body)
        except _CeilingReached as exc:
            self.context.mark_failed(f"{self.name}: {exc}; the rest is skipped and retried next run")
            return [("skipped", str(exc))] * len(details)
        except ApolloAuthError as exc:
            # No call is sent after this one; what was read is set aside (skipped), not lost.
            self.context.halt(f"{self.name}: {exc}")
            return [("skipped", str(exc))] * len(details)
        except OutOfCredits as exc:
            self.out_of_credits = client.out_of_credits or f"Apollo reports no credits left ({exc})"
            self.context.mark_failed(f"{self.name}: {self.out_of_credits}; the rest is skipped and retried next run")
            return [("skipped", self.out_of_credits)] * len(details)
        except ApolloUnavailable as exc:
            if exc.uncertain:  # Apollo may have applied (and charged) the call whose answer was lost
                stats.credits_at_risk += cost
            if isinstance(exc, EndpointPaused):
                self.context.mark_failed(f"{self.name}: {exc}; the rest is set aside for the next run")
            return [("deferred", f"people/bulk_match: {exc}")] * len(details)
        except MalformedResponse as exc:
            stats.credits_at_risk += cost
            return [("failed", f"people/bulk_match answered oddly: {exc}")] * len(details)
        except ApolloError as exc:
            return [("failed", f"people/bulk_match failed: {exc}")] * len(details)
        finally:
            self.reserved -= cost
        joined = join_answers(details, matches)
        # An accepted waterfall's credits are held at risk by its pending delivery until the payload counts them.
        waterfall = body.get("waterfall")
        delivered_later = isinstance(waterfall, dict) and waterfall.get("status") == "accepted"
        self._count_credits(body, 0 if delivered_later else sum(1 for key in joined if key >= 0))
        self._check_async(body)
        for key, person in joined.items():
            if key < 0:
                stats.outcomes["unjoined_matches"] += 1
                self.context.log.warning(
                    "%s: Apollo returned person %s that matches no record of the batch", self.name, person.get("id")
                )
        extra = self._async_fields(body)
        return [
            ("matched", {**joined[position], **extra} if extra else joined[position])
            if position in joined
            else ("missing", "Apollo found no match")
            for position in range(len(details))
        ]

    def _stop_reason(self, cost: Decimal) -> str | None:
        """Why this call must not be sent (out of credits, over max_credits, the run is stopping), or None."""
        client = self.connection.client
        stop = self.out_of_credits or (client.out_of_credits if client is not None else None) or self.context.halted
        budget_left = self._credits_left()
        if stop is None and budget_left is not None and cost > budget_left:
            stop = (
                f"max_credits {self.options.max_credits} would be exceeded (confirmed "
                f"{self.connection.stats.credits}, at risk {self.connection.stats.credits_at_risk}, "
                f"in flight {self.reserved})"
            )
            self.context.mark_failed(f"{self.name}: {stop}; the rest is skipped and retried next run")
        return stop

    def _count_credits(self, body: dict[str, Any], matched: int) -> None:
        """Add the call's credits to the report: Apollo's own count, else (waterfall mode leaves it out) the most
        the matched people can cost, as credits at risk so max_credits stays a ceiling."""
        stats = self.connection.stats
        consumed = body.get("credits_consumed")
        try:
            stats.credits += Decimal(str(consumed))
        except (ArithmeticError, ValueError):
            stats.credits_unreported_calls += 1
            stats.credits_at_risk += Decimal(matched * self.options.credits_per_person)

    def _check_async(self, body: dict[str, Any]) -> None:
        """Warn when Apollo will not deliver the waterfall results the flags asked for."""
        if not (self.options.run_waterfall_email or self.options.run_waterfall_phone):
            return
        status = get_path(body, "waterfall.status")
        self.connection.stats.outcomes[f"waterfall_{status or 'absent'}"] += 1
        if status != "accepted":
            self.context.log.warning(
                "%s: Apollo did not accept the waterfall request (status %r: %s); no webhook will come for it",
                self.name,
                status,
                get_path(body, "waterfall.message") or "no message",
            )

    def _async_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """Keys of the asynchronous results, kept in each matched person so they reach the matched record."""
        if not self.options.asynchronous_flags:
            return {}
        return {"_apollo_async": {name: get_path(body, path) for name, path in ASYNC_FIELDS.items()}}

    def _credits_left(self) -> Decimal | None:
        """What max_credits still allows: the cap minus confirmed, possibly spent and in-flight credits."""
        if self.options.max_credits is None:
            return None
        stats = self.connection.stats
        return Decimal(str(self.options.max_credits)) - stats.credits - stats.credits_at_risk - self.reserved

    def _cached(self, asked: list[Asked]) -> dict[int, Answer]:
        """Answers the enrichment cache already holds (the job keeps state): no call, no credits."""
        state = self.context.state
        if state is None or not asked:
            return {}
        keys = [key for _, _, key in asked]
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

    def _remember(self, keys: list[str], results: list[Answer]) -> None:
        """Cache the answers of a call by identity: a later run, or a later record of this one, pays nothing."""
        state = self.context.state
        if state is None:
            return
        entries = {
            key: {"person": value if kind == "matched" else None}
            for key, (kind, value) in zip(keys, results, strict=True)
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
        asynchronous = person.get("_apollo_async")
        if asynchronous is not None:
            person = {key: value for key, value in person.items() if key != "_apollo_async"}
        fields = self._select(person)
        if self.options.raw_field:
            fields[self.options.raw_field] = person
        if asynchronous:
            fields.update({name: value for name, value in asynchronous.items() if value is not None})
        return fields


class _CeilingReached(Exception):
    """A retry of a call whose answer was lost could take the credits past ``max_credits``."""


def _matches(body: dict[str, Any]) -> list[dict[str, Any] | None]:
    """The response's ``matches``, checked: a list of person objects and nulls (``[]`` when absent)."""
    matches = body.get("matches")
    if matches is None:
        return []
    if not isinstance(matches, list) or not all(item is None or isinstance(item, dict) for item in matches):
        raise MalformedResponse(f"HTTP 200: 'matches' is not a list of people: {str(matches)[:80]!r}")
    return matches


#: Any one of these identifies a person (else a first and a last name together).
_IDENTIFYING = frozenset({"email", "hashed_email", "id", "linkedin_url", "name"})


def _identifies(detail: dict[str, Any]) -> bool:
    return not _IDENTIFYING.isdisjoint(detail) or ("first_name" in detail and "last_name" in detail)


def _tagged(record: Record, field: str, reason: str) -> Record:
    return record.with_data({**record.data, field: reason})

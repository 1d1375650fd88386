"""Sink ``apollo.contacts``: create contacts with ``contacts/bulk_create``; emits ``created`` and ``existing``."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import attrs

from connector_core.components import Emitter, Sink
from connector_core.options import option
from connector_core.records import Record
from crmsync_plugins.apollo.connection import ApolloConnection
from crmsync_plugins.apollo.errors import (
    ApolloAuthError,
    ApolloError,
    ApolloRejected,
    EndpointPaused,
    MalformedResponse,
)
from crmsync_plugins.apollo.identity import full_name, norm

#: Apollo refuses more than this many contacts per call (422 "Please limit your array to 100 contacts").
MAX_CONTACTS = 100

#: Contact fields read from a record field of the same name unless ``fields`` maps them elsewhere.
CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "title",
    "organization_name",
    "account_id",
    "organization_id",
    "phone",
    "linkedin_url",
    "present_raw_address",
    "contact_stage_id",
    "salesforce_id",
    "hubspot_id",
)


@attrs.frozen
class ContactsOptions:
    """Options of ``apollo.contacts``."""

    connection: str = option(help="the name of an apollo connection under connections:", connection="apollo")
    #: Let Apollo match existing contacts instead of creating duplicates (strongly recommended).
    run_dedupe: bool = True
    #: Labels added to every contact of the request (Apollo has no per-contact labels in bulk create).
    append_label_names: list[str] = attrs.Factory(list)
    #: Owner of every created contact (must be on the team, or Apollo answers 422).
    owner_id: str | None = None
    #: Contact field → record field, for fields named differently in the records.
    fields: dict[str, str] = attrs.Factory(dict)
    #: Custom field id → record field.
    typed_custom_fields: dict[str, str] = attrs.Factory(dict)
    #: Record field holding a list of phone numbers (strings) sent as ``phone_numbers``.
    phone_numbers_field: str | None = None
    #: The request's array key: Apollo's reference says ``contacts``; its n8n node sends ``contacts_with_labels``.
    array_key: str = "contacts"
    #: After a lost response, the replay (with dedupe) reports our own new contacts as existing; one whose
    #: ``created_at`` is no older than the first attempt minus this many seconds counts as created by us.
    clock_skew_s: float = 60.0
    #: A batch Apollo rejects for one of its contacts is halved to find the bad ones; this bounds the extra
    #: calls per batch (the contacts still unresolved then go to errors with Apollo's message).
    max_split_calls: int = attrs.field(default=30, validator=attrs.validators.ge(0))


class ContactsSink(Sink[ContactsOptions]):
    """Create Apollo contacts in batches of up to 100.

    Every record ends in exactly one place: ``created`` (Apollo created it), ``existing`` (dedupe matched a
    contact Apollo already had; returned unchanged), ``skipped`` (not sent because the run was stopping), or
    the error stream (rejected, with Apollo's message), or set aside for the next run (a transient failure).
    A batch Apollo rejects (400/422) for one of its contacts is split in halves until the bad contacts are
    isolated (at most ``max_split_calls`` extra calls); a rejection of the request as a whole (missing
    ``contact_attributes``, too many contacts, a bad ``owner_id``) sends the batch to errors at once.
    """

    Options = ContactsOptions
    outputs: ClassVar[tuple[str, ...]] = ("created", "existing", "skipped")
    quiet_outputs: ClassVar[tuple[str, ...]] = ("skipped",)
    deferred_outputs: ClassVar[tuple[str, ...]] = ("skipped",)
    batch_size: ClassVar[int] = MAX_CONTACTS
    max_batch_size: ClassVar[int] = MAX_CONTACTS
    concurrency: ClassVar[int] = 2

    def open(self) -> None:
        self.connection: ApolloConnection = self.context.connection(self.options.connection)
        #: Contacts this run created: Apollo reports one as existing to a later twin (same email), and the twin
        #: must not count as created because the contact is recent. Kept only while an answer still to come
        #: could be taken for a lost attempt's (see _forget_old_created)...
        self.created_ids: set[str] = set()
        #: ...for which they are listed per answer, in order, with the answer's latest creation time.
        self._created_by_answer: deque[tuple[float, list[str]]] = deque()
        #: When each call still waiting for its answer was first sent.
        self._in_flight: list[float] = []
        #: When the oldest write of this sink whose answer was never recorded was sent (an open intent: its
        #: records are replayed when they come again, with the contacts created since as maybe theirs).
        self._oldest_lost: float | None = None

    @functools.cached_property
    def _field_sources(self) -> tuple[tuple[str, str], ...]:
        """(contact field, record field) pairs, worked out once rather than per record, in a stable order."""
        fields = self.options.fields
        return tuple((field, fields.get(field, field)) for field in dict.fromkeys((*CONTACT_FIELDS, *fields)))

    def contact(self, record: Record) -> dict[str, Any]:
        """The contact Apollo is asked to create for ``record``."""
        data, options = record.data, self.options
        get = data.get
        contact = {}
        for field, source in self._field_sources:
            value = get(source)
            if value is not None and value != "":
                contact[field] = value
        if options.typed_custom_fields:
            custom = {field_id: get(source) for field_id, source in options.typed_custom_fields.items()}
            if any(value not in (None, "") for value in custom.values()):
                contact["typed_custom_fields"] = {k: v for k, v in custom.items() if v not in (None, "")}
        if options.phone_numbers_field and data.get(options.phone_numbers_field):
            numbers = data[options.phone_numbers_field]
            numbers = numbers if isinstance(numbers, list) else [numbers]
            contact["phone_numbers"] = [
                {"raw_number": _raw_number(number), "position": index} for index, number in enumerate(numbers)
            ]
        return contact

    async def write(self, batch: list[Record], out: Emitter) -> None:
        if self.context.halted:  # the run is stopping: set the records aside for the next run
            _skip(batch, f"not sent: {self.context.halted}", out)
            return
        state = self.context.state
        replay_since: float | None = None
        if state is not None:
            batch = self._known(batch, out)
            # Writes whose response was never recorded: Apollo may have created these contacts already.
            lost = state.open_intents(self.name)
            self._oldest_lost = min(lost.values(), default=None)
            started = [lost[record.key] for record in batch if record.key in lost]
            replay_since = min(started) if started else None
        if batch:
            splits = _SplitBudget(self.options.max_split_calls)
            await self._create(batch, [self.contact(record) for record in batch], out, replay_since, splits)

    def plan(self, batch: list[Record], out: Emitter) -> None:
        """What :meth:`write` would do, without calling Apollo: contacts this job already sent are replayed from
        state; the rest count as contacts to create (Apollo's dedupe may find some existing)."""
        if self.context.state is not None:
            batch = self._known(batch, out)
        if batch:
            stats = self.connection.stats
            stats.planned[self.connection.options.url("contacts/bulk_create")] += 1
            stats.outcomes["contacts_to_create"] += len(batch)
            out.emit_many(batch, "created")

    def _known(self, batch: list[Record], out: Emitter) -> list[Record]:
        """Emit the records whose contact this job already created or matched; return the others."""
        known = self.context.state.objects(self.name, [record.key for record in batch])  # type: ignore[union-attr]
        for record in batch:
            outcome = known.get(record.key)
            if outcome is not None:
                self.connection.stats.outcomes["contacts_replayed_from_state"] += 1
                out.emit(_with_contact(record, outcome["contact"]), outcome["output"])
        return [record for record in batch if record.key not in known]

    async def _create(
        self,
        records: list[Record],
        contacts: list[dict[str, Any]],
        out: Emitter,
        replay_since: float | None,
        splits: _SplitBudget,
    ) -> None:
        options = self.options
        body: dict[str, Any] = {
            options.array_key: contacts,
            "run_dedupe": options.run_dedupe or replay_since is not None,
        }
        if options.append_label_names:
            body["append_label_names"] = options.append_label_names
        if options.owner_id:
            body["owner_id"] = options.owner_id
        first_sent = time.time()
        self._in_flight.append(first_sent)
        try:
            await self._send(records, contacts, body, first_sent, out, replay_since, splits)
        finally:
            self._in_flight.remove(first_sent)

    async def _send(
        self,
        records: list[Record],
        contacts: list[dict[str, Any]],
        body: dict[str, Any],
        first_sent: float,
        out: Emitter,
        replay_since: float | None,
        splits: _SplitBudget,
    ) -> None:
        """Send one bulk_create call (its intent recorded around it) and route its answer."""
        options, state = self.options, self.context.state
        retried_uncertain: list[bool] = []

        def with_dedupe(sent: dict[str, Any]) -> dict[str, Any]:
            # The lost attempt may have created the contacts: with dedupe on, the replay finds them instead.
            retried_uncertain.append(True)
            return {**sent, "run_dedupe": True}

        intent = None
        if state is not None:  # a state commit: off the event loop, where the other batches' calls are running
            intent = await asyncio.to_thread(state.open_intent, self.name, [r.key for r in records], first_sent)
        try:
            response = await self.connection.client.post(  # type: ignore[union-attr]
                "contacts/bulk_create", body, on_uncertain_retry=with_dedupe
            )
            _check_contacts(response)
        except (ApolloAuthError, ApolloRejected) as exc:
            # Refused outright: nothing was created, so the intent is settled with no contacts.
            if intent is not None:
                await asyncio.to_thread(state.close_intent, intent, self.name, {})  # type: ignore[union-attr]
            if isinstance(exc, ApolloAuthError):
                # Nothing more is sent; this batch and the rest are set aside for the next run, not lost.
                self.context.halt(f"{self.name}: {exc}")
                _skip(records, f"not sent: {exc}", out)
                return
            await self._rejected(records, contacts, out, replay_since, splits, exc)
            return
        except ApolloError as exc:  # transient, malformed or out of credits: nothing says what Apollo did
            # The intent stays open: the next run replays these contacts with dedupe on (so may this run, should
            # they come again: the contacts created since must be remembered as long as for any open intent).
            if intent is not None:
                self._oldest_lost = min(first_sent, self._oldest_lost or first_sent)
            if isinstance(exc, EndpointPaused):
                self.context.mark_failed(f"{self.name}: {exc}; the rest is set aside for the next run")
            for record in records:
                out.defer(record, f"contacts/bulk_create: {exc}")
            return
        starts = [t for t in (replay_since, first_sent if retried_uncertain else None) if t is not None]
        created_since = min(starts) - options.clock_skew_s if starts else None
        outcomes = self._route(records, contacts, response, out, created_since)
        if intent is not None:
            await asyncio.to_thread(state.close_intent, intent, self.name, outcomes)  # type: ignore[union-attr]

    async def _rejected(
        self,
        records: list[Record],
        contacts: list[dict[str, Any]],
        out: Emitter,
        replay_since: float | None,
        splits: _SplitBudget,
        exc: ApolloRejected,
    ) -> None:
        """Apollo refused the request: find the bad contacts by halving, unless no half could fare better."""
        stats = self.connection.stats
        if len(records) == 1 or exc.batch_level or splits.calls_left < 2:
            if exc.batch_level:
                stats.outcomes["batch_rejections"] += 1
            elif len(records) > 1:
                stats.outcomes["split_limit_reached"] += 1
            reason = "Apollo rejected the contact" if len(records) == 1 else "Apollo rejected the batch"
            for record in records:
                out.fail(record, f"{reason}: {exc}")
            return
        # Apollo rejects the whole batch for one bad contact: halve until the bad ones stand alone.
        stats.outcomes["split_batches"] += 1
        splits.calls_left -= 2
        middle = len(records) // 2
        await self._create(records[:middle], contacts[:middle], out, replay_since, splits)
        await self._create(records[middle:], contacts[middle:], out, replay_since, splits)

    def _route(
        self,
        records: list[Record],
        contacts: list[dict[str, Any]],
        response: Mapping[str, Any],
        out: Emitter,
        created_since: float | None,
    ) -> dict[str, dict[str, Any]]:
        """Emit each record to ``created`` or ``existing``; returns the outcome by record key.

        Answers are joined by email, CRM ids, then name + company. What is left is paired by name, then one to
        one: Apollo's dedupe also matches identifiers the request cannot be joined on (an additional email).
        A record whose twin (same email, CRM id...) was answered in this response shares its contact as
        ``existing``. An answer that fits no record is reported, never sent to errors (it is not an input).
        """
        stats = self.connection.stats
        index = _ContactIndex(contacts)
        outcomes: dict[str, dict[str, Any]] = {}
        leftovers: list[tuple[str, Mapping[str, Any]]] = []

        def deliver(position: int, output: str, answer: Mapping[str, Any]) -> None:
            stats.outcomes[f"contacts_{output}"] += 1
            record = records[position]
            outcomes[record.key] = {"output": output, "contact": answer}
            out.emit(_with_contact(record, answer), output)

        for output, answer in self._answers(response, created_since):
            position = index.claim(answer)
            if position is None:
                leftovers.append((output, answer))
            else:
                deliver(position, output, answer)
        for output, answer in leftovers:
            position = index.claim_leftover(answer, sole_answer=len(leftovers) == 1)
            if position is None:
                stats.outcomes["unjoined_contacts"] += 1
                self.context.log.warning(
                    "%s: Apollo %s contact %s matches no record of the batch", self.name, output, answer.get("id")
                )
            else:
                deliver(position, output, answer)
        for position in index.unclaimed():
            twin = index.twin(position)
            if twin is not None:
                deliver(position, "existing", outcomes[records[twin].key]["contact"])
            else:
                out.fail(records[position], "Apollo's response does not mention this contact")
        return outcomes

    def _answers(self, response: Mapping[str, Any], created_since: float | None) -> list[tuple[str, Mapping[str, Any]]]:
        """(output, contact) for every contact of the response, created ones first."""
        self._forget_old_created()
        answers: list[tuple[str, Mapping[str, Any]]] = []
        created_now: list[str] = []
        latest = 0.0
        for listed, key in (("created", "created_contacts"), ("existing", "existing_contacts")):
            for answer in response.get(key) or []:
                output, contact_id = listed, str(answer.get("id") or "")
                if (
                    listed == "existing"
                    and created_since is not None
                    and contact_id not in self.created_ids
                    and _created_at(answer) >= created_since
                ):
                    output = "created"  # created by an attempt whose response was lost
                if output == "created" and contact_id:
                    if contact_id in self.created_ids:
                        output = "existing"  # already counted as created for another record of this run
                    else:
                        self.created_ids.add(contact_id)
                        created_now.append(contact_id)
                        latest = max(latest, _created_at(answer))
                answers.append((output, answer))
        if created_now:
            self._created_by_answer.append((latest, created_now))
        return answers

    def _forget_old_created(self) -> None:
        """Forget the contacts this run created before any answer still to come could take one for a lost
        attempt's: an existing contact counts as one only when it is newer than the attempt's first sending
        minus ``clock_skew_s``, and no attempt still to be answered (a call in flight, a write whose answer was
        never recorded) is older than the oldest of those. Memory then holds the contacts of that window, not
        of the whole run; a true ``created_contacts`` entry is never an id Apollo listed before."""
        starts = [time.time(), *self._in_flight]
        if self._oldest_lost is not None:
            starts.append(self._oldest_lost)
        horizon = min(starts) - self.options.clock_skew_s
        # In the order they were answered, which is about their creation time: the first answer kept stops the
        # pass (one answered a little out of order waits for the next).
        by_answer = self._created_by_answer
        while by_answer and by_answer[0][0] < horizon:
            self.created_ids.difference_update(by_answer.popleft()[1])


class _SplitBudget:
    """Extra calls one batch may still spend halving itself to isolate rejected contacts."""

    def __init__(self, calls_left: int) -> None:
        self.calls_left = calls_left


class _ContactIndex:
    """Joins response contacts to request contacts: normalised email first, then CRM ids, then name + company.

    The request's keys are indexed one kind at a time, when an answer first has a key of that kind: most answers
    are joined by their email, so names are rarely normalised.
    """

    def __init__(self, contacts: list[dict[str, Any]]) -> None:
        self.contacts = contacts
        self.claimed: set[int] = set()
        self.by_key: dict[str, list[int]] = {}
        self.indexed: set[Callable[[Mapping[str, Any]], list[str]]] = set()

    def claim(self, answer: Mapping[str, Any]) -> int | None:
        """The first open request contact sharing the answer's strongest key (in :data:`_KINDS` order)."""
        for kind in _KINDS:
            keys = kind(answer)
            if not keys:
                continue
            self._index(kind)
            for key in keys:
                for position in self.by_key.get(key, ()):
                    if position not in self.claimed:
                        self.claimed.add(position)
                        return position
        return None

    def claim_leftover(self, answer: Mapping[str, Any], sole_answer: bool) -> int | None:
        """For an answer no key joined: the one open contact with its name, else — when it is the only answer
        left over — the only open contact (one answer for one request cannot belong to anyone else)."""
        open_positions = self.unclaimed()
        name = full_name(answer)
        named = [p for p in open_positions if name and full_name(self.contacts[p]) == name]
        choice = named if named or not sole_answer else open_positions
        if len(choice) != 1:
            return None
        self.claimed.add(choice[0])
        return choice[0]

    def twin(self, position: int) -> int | None:
        """A claimed contact of the request sharing a strong identifier (email, CRM id) with ``position``."""
        for kind in _STRONG_KINDS:
            self._index(kind)
            for key in kind(self.contacts[position]):
                for other in self.by_key.get(key, ()):
                    if other != position and other in self.claimed:
                        return other
        return None

    def unclaimed(self) -> list[int]:
        return [position for position in range(len(self.contacts)) if position not in self.claimed]

    def _index(self, kind: Callable[[Mapping[str, Any]], list[str]]) -> None:
        if kind in self.indexed:
            return
        self.indexed.add(kind)
        # Weak keys only ever place an open contact (twins are found by strong ones): the contacts claimed by
        # then need none. Most answers are joined by email, so the few that need a name find most claimed.
        skip = () if kind in _STRONG_KINDS else self.claimed
        for position, contact in enumerate(self.contacts):
            if position in skip:
                continue
            for key in kind(contact):
                self.by_key.setdefault(key, []).append(position)


def _email_keys(contact: Mapping[str, Any]) -> list[str]:
    email = norm(contact.get("email"))
    return ["email:" + email] if email else []


def _crm_keys(contact: Mapping[str, Any]) -> list[str]:
    return [f"{crm_id}:{norm(contact[crm_id])}" for crm_id in ("salesforce_id", "hubspot_id") if contact.get(crm_id)]


def _name_keys(contact: Mapping[str, Any]) -> list[str]:
    """Name + company, where the company is the organization name or, as Apollo also does, the email's domain;
    the bare name for a contact without an email."""
    name = full_name(contact)
    if not name:
        return []
    email, company = norm(contact.get("email")), norm(contact.get("organization_name"))
    keys = [f"name+org:{name}|{company}"] if company else []
    if "@" in email:
        keys.append(f"name+org:{name}|@{email.rpartition('@')[2]}")
    if not email:
        keys.append(f"name:{name}")
    return keys


#: The kinds of join keys in the order Apollo's dedupe matches; a key of one kind never equals a key of another
#: (its prefix). Identifiers only one person has come first: a twin is found by those.
_STRONG_KINDS: tuple[Callable[[Mapping[str, Any]], list[str]], ...] = (_email_keys, _crm_keys)
_KINDS = (*_STRONG_KINDS, _name_keys)


def _check_contacts(response: Mapping[str, Any]) -> None:
    """Raise :class:`MalformedResponse` unless both contact lists are lists of objects (or absent)."""
    for key in ("created_contacts", "existing_contacts"):
        listed = response.get(key)
        if listed is not None and (not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed)):
            raise MalformedResponse(f"HTTP 200: {key!r} is not a list of contacts: {str(listed)[:80]!r}")


def _with_contact(record: Record, contact: Mapping[str, Any]) -> Record:
    return record.with_data({**record.data, "apollo_contact_id": contact.get("id"), "apollo_contact": contact})


def _created_at(contact: Mapping[str, Any]) -> float:
    """The contact's creation time as a Unix timestamp (0 when Apollo gave none)."""
    try:
        return datetime.fromisoformat(str(contact.get("created_at"))).timestamp()
    except ValueError:
        return 0.0


def _raw_number(number: Any) -> str:
    if isinstance(number, dict):
        return str(number.get("raw_number") or number.get("sanitized_number") or "")
    return str(number)


def _skip(records: list[Record], reason: str, out: Emitter) -> None:
    """Set ``records`` aside on the ``skipped`` output, saying why."""
    out.emit_many((r.with_data({**r.data, "_skipped_reason": reason}) for r in records), "skipped")

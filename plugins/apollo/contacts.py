"""Sink ``apollo.contacts``: create contacts with ``contacts/bulk_create``; emits ``created`` and ``existing``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import attrs

from connector_core.components import Emitter, Sink
from connector_core.records import Record, content_key
from crmsync_plugins.apollo.connection import ApolloConnection
from crmsync_plugins.apollo.errors import ApolloAuthError, ApolloError, ApolloRejected
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

    #: The name of the ``apollo`` connection under ``connections:``.
    connection: str
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


class ContactsSink(Sink):
    """Create Apollo contacts in batches of up to 100.

    Every record ends in exactly one place: ``created`` (Apollo created it), ``existing`` (dedupe matched a
    contact Apollo already had; returned unchanged), ``skipped`` (not sent because the run was stopping), or
    the error stream (rejected, with Apollo's message).
    A batch Apollo rejects (400/422) is split in halves until the bad contacts are isolated.
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

    def contact(self, record: Record) -> dict[str, Any]:
        """The contact Apollo is asked to create for ``record``."""
        data, options = record.data, self.options
        contact = {}
        for field in {*CONTACT_FIELDS, *options.fields}:
            value = data.get(options.fields.get(field, field))
            if value not in (None, ""):
                contact[field] = value
        custom = {field_id: data.get(source) for field_id, source in options.typed_custom_fields.items()}
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
            reason = f"not sent: {self.context.halted}"
            out.emit_many((r.with_data({**r.data, "_skipped_reason": reason}) for r in batch), "skipped")
            return
        state = self.context.state
        replay_since: float | None = None
        if state is not None:
            batch = self._known(batch, out)
            # Writes whose response was never recorded: Apollo may have created these contacts already.
            lost = state.open_intents(self.name)
            started = [lost[record.key] for record in batch if record.key in lost]
            replay_since = min(started) if started else None
        if batch:
            await self._create(batch, [self.contact(record) for record in batch], out, replay_since)

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
        self, records: list[Record], contacts: list[dict[str, Any]], out: Emitter, replay_since: float | None
    ) -> None:
        options, stats, state = self.options, self.connection.stats, self.context.state
        body: dict[str, Any] = {
            options.array_key: contacts,
            "run_dedupe": options.run_dedupe or replay_since is not None,
        }
        if options.append_label_names:
            body["append_label_names"] = options.append_label_names
        if options.owner_id:
            body["owner_id"] = options.owner_id
        retried_uncertain: list[bool] = []

        def with_dedupe(sent: dict[str, Any]) -> dict[str, Any]:
            # The lost attempt may have created the contacts: with dedupe on, the replay finds them instead.
            retried_uncertain.append(True)
            return {**sent, "run_dedupe": True}

        first_sent = time.time()
        intent = None
        if state is not None:  # a state commit: off the event loop, where the other batches' calls are running
            intent = await asyncio.to_thread(state.open_intent, self.name, [r.key for r in records], first_sent)
        try:
            response = await self.connection.client.post(  # type: ignore[union-attr]
                "contacts/bulk_create", body, on_uncertain_retry=with_dedupe
            )
        except (ApolloAuthError, ApolloRejected) as exc:
            # Refused outright: nothing was created, so the intent is settled with no contacts.
            if intent is not None:
                await asyncio.to_thread(state.close_intent, intent, self.name, {})  # type: ignore[union-attr]
            if isinstance(exc, ApolloAuthError):
                raise
            if len(records) == 1:
                out.fail(records[0], f"Apollo rejected the contact: {exc}")
                return
            # Apollo rejects the whole batch for one bad contact: halve until the bad ones stand alone.
            stats.outcomes["split_batches"] += 1
            middle = len(records) // 2
            await self._create(records[:middle], contacts[:middle], out, replay_since)
            await self._create(records[middle:], contacts[middle:], out, replay_since)
            return
        except ApolloError as exc:
            # The intent stays open: the next run replays these contacts with dedupe on.
            for record in records:
                out.fail(record, f"contacts/bulk_create failed: {exc}")
            return
        starts = [t for t in (replay_since, first_sent if retried_uncertain else None) if t is not None]
        created_since = min(starts) - options.clock_skew_s if starts else None
        outcomes = self._route(records, contacts, response, out, created_since)
        if intent is not None:
            await asyncio.to_thread(state.close_intent, intent, self.name, outcomes)  # type: ignore[union-attr]

    def _route(
        self,
        records: list[Record],
        contacts: list[dict[str, Any]],
        response: Mapping[str, Any],
        out: Emitter,
        created_since: float | None,
    ) -> dict[str, dict[str, Any]]:
        """Emit each record to ``created`` or ``existing``; returns the outcome by record key."""
        stats = self.connection.stats
        index = _ContactIndex(contacts)
        outcomes: dict[str, dict[str, Any]] = {}
        for listed, key in (("created", "created_contacts"), ("existing", "existing_contacts")):
            for answer in response.get(key) or []:
                output = listed
                if listed == "existing" and created_since is not None and _created_at(answer) >= created_since:
                    output = "created"  # created by an attempt whose response was lost
                position = index.claim(answer)
                if position is None:
                    orphan = Record(dict(answer), f"apollo:{answer.get('id') or content_key(answer)}", self.name, 0)
                    out.fail(orphan, f"Apollo {output} contact {answer.get('id')} matches no record of the batch")
                    continue
                stats.outcomes[f"contacts_{output}"] += 1
                record = records[position]
                outcomes[record.key] = {"output": output, "contact": answer}
                out.emit(_with_contact(record, answer), output)
        for position in index.unclaimed():
            out.fail(records[position], "Apollo's response does not mention this contact")
        return outcomes


class _ContactIndex:
    """Joins response contacts to request contacts: normalised email first, then name + company."""

    def __init__(self, contacts: list[dict[str, Any]]) -> None:
        self.size = len(contacts)
        self.claimed: set[int] = set()
        self.by_key: dict[str, list[int]] = {}
        for position, contact in enumerate(contacts):
            for key in _join_keys(contact):
                self.by_key.setdefault(key, []).append(position)

    def claim(self, answer: Mapping[str, Any]) -> int | None:
        for key in _join_keys(answer):
            for position in self.by_key.get(key, ()):
                if position not in self.claimed:
                    self.claimed.add(position)
                    return position
        return None

    def unclaimed(self) -> list[int]:
        return [position for position in range(self.size) if position not in self.claimed]


def _join_keys(contact: Mapping[str, Any]) -> list[str]:
    """Keys in the order Apollo's dedupe matches: email, CRM ids, then name + company, where the company is
    the organization name or, as Apollo also does, the email's domain."""
    keys = []
    email = norm(contact.get("email"))
    if email:
        keys.append("email:" + email)
    for crm_id in ("salesforce_id", "hubspot_id"):
        if contact.get(crm_id):
            keys.append(f"{crm_id}:{norm(contact[crm_id])}")
    name, company = full_name(contact), norm(contact.get("organization_name"))
    if name and company:
        keys.append(f"name+org:{name}|{company}")
    if name and "@" in email:
        keys.append(f"name+org:{name}|@{email.rpartition('@')[2]}")
    if name and not email:
        keys.append(f"name:{name}")
    return keys


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

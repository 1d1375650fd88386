"""What can go wrong talking to Apollo, and how to read its many error shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from connector_core.errors import RunFailed

#: Longest Apollo message kept in an error (bodies can be whole HTML pages).
MAX_MESSAGE = 500


class ApolloError(Exception):
    """An Apollo call that did not succeed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApolloRejected(ApolloError):
    """Apollo refused the request's content (400/422, or a 200 whose ``status`` is ``failed``): retrying the same
    body cannot help."""

    @property
    def batch_level(self) -> bool:
        """True when the message is about the request as a whole (see :func:`is_batch_level`)."""
        return is_batch_level(str(self))


class ApolloUnavailable(ApolloError):
    """A transient failure outlasted the retries (5xx, timeouts, dropped connections, rate limiting): the records
    are set aside for the next run.

    ``uncertain`` is True when Apollo may have applied the last attempt (its response was lost or was a 5xx),
    so credits it would cost may have been charged; earlier attempts are reported through the client's
    ``on_uncertain_retry`` callback.
    """

    def __init__(self, message: str, status: int | None = None, uncertain: bool = False) -> None:
        super().__init__(message, status)
        self.uncertain = uncertain


class EndpointPaused(ApolloUnavailable):
    """Apollo asked to wait (``Retry-After``) longer than the run will: nothing more is sent to this endpoint."""


class MalformedResponse(ApolloError):
    """A 2xx whose body is not what the endpoint documents; Apollo may have charged for it."""


class OutOfCredits(ApolloError):
    """The account has no credits left (402, or Apollo's documented 422 "Insufficient credits"): no paid call is
    sent for the rest of the run."""


class ApolloAuthError(RunFailed):
    """The key was refused (401/403): the run stops before sending anything else."""


_INSUFFICIENT_CREDITS = re.compile(
    r"insufficient[ _]credits|not enough credits|out of credits|credit limit|insufficient[ _](quota|balance)", re.I
)
#: Apollo's 422 messages that concern the request as a whole, not one of its records: its OpenAPI examples
#: (missing ``contact_attributes``/``contacts``, more than 100 contacts) and an ``owner_id`` outside the team.
_BATCH_LEVEL = re.compile(
    r"array of contact attributes|contact_attributes\W* parameter|limit your array|contacts? or fewer|owner_id"
    r"|append_label_names|must be an array|request body|missing details|more than \d+ in a single request",
    re.I,
)
#: A message naming one item of the request (``contact_attributes[3].email``) is about that record.
_NAMES_AN_ITEM = re.compile(r"\[\d+\]")


def is_out_of_credits(status: int, message: str) -> bool:
    """True for 402 and for the 422 Apollo documents for an exhausted credit balance."""
    return status == 402 or (status in (400, 403, 422) and bool(_INSUFFICIENT_CREDITS.search(message)))


def is_batch_level(message: str) -> bool:
    """True when Apollo's message is about the whole request, so splitting the batch cannot help."""
    return bool(_BATCH_LEVEL.search(message)) and not _NAMES_AN_ITEM.search(message)


def error_message(status: int, body: bytes, mask: Callable[[str], str] = str) -> str:
    """Apollo's message from an error body of any of its shapes, else the raw text, masked and then shortened
    (masking after shortening would leave the head of a secret cut at the limit)."""
    text = body.decode("utf-8", "replace").strip()
    parsed: Any = text
    for _ in range(2):  # some bodies are JSON encoded as a string inside JSON
        if not isinstance(parsed, str):
            break
        try:
            parsed = json.loads(parsed)
        except ValueError:
            break
    message = find_message(parsed) if isinstance(parsed, dict) else None
    message = mask(message or text or "(empty body)")
    return f"HTTP {status}: {message[:MAX_MESSAGE]}"


def find_message(body: dict[str, Any]) -> str | None:
    """The human-readable message of an Apollo error body (``error``, ``error_message``, ``message``...)."""
    error = body.get("error")
    if isinstance(error, dict):  # the aisa.one gateway's shape
        return str(error.get("message") or error.get("code") or error)
    for key in ("error_message", "message", "error", "error_code"):
        if body.get(key):
            return str(body[key])
    return None

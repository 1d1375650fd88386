"""The handler's response type and the small builders for Apollo's (many) error shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


class SandboxConnectionReset(Exception):
    """Raised by the handler when the connection must be dropped without any response.

    The HTTP server turns it into an abrupt socket close; the in-process transport into ``httpx.ReadError``.
    ``applied`` tells whether the request had already changed the sandbox's state.
    """

    def __init__(self, applied: bool) -> None:
        super().__init__("connection reset by sandbox fault" + (" after apply" if applied else ""))
        self.applied = applied


@dataclass
class SandboxResponse:
    """A complete HTTP response produced by :class:`~.app.ApolloSandbox`."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Seconds to stall before sending (a scripted latency spike); servers and transports honour it.
    delay_s: float = 0.0

    def json(self) -> Any:
        """Decode the body as JSON (handy in tests)."""
        return json.loads(self.body)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> SandboxResponse:
    """A JSON response; non-ASCII stays readable because the seed data has emoji in headlines."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return SandboxResponse(status, {"Content-Type": JSON_TYPE, **(headers or {})}, body)


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> SandboxResponse:
    """A plain-text response (Apollo's 401 on the direct API is text, not JSON)."""
    return SandboxResponse(status, {"Content-Type": TEXT_TYPE, **(headers or {})}, text.encode("utf-8"))


def failed(status: int, error_code: str, message: str) -> SandboxResponse:
    """The ``status/error_code/error_message`` shape used by the enrichment endpoints."""
    payload = {"status": "failed", "error_code": error_code, "error_message": message}
    return json_response(status, payload)


def error(status: int, message: str) -> SandboxResponse:
    """The ``{"error": "..."}`` shape used by contacts endpoints and server errors."""
    return json_response(status, {"error": message})


#: Apollo's documented answers (OpenAPI examples) for a whole request it cannot use.
MISSING_CONTACT_ATTRIBUTES = 'Please provide an array of contact attributes in the "contact_attributes" parameter.'
INSUFFICIENT_CREDITS = "Insufficient credits. Please upgrade your plan."


def misconfigured(detail: str) -> SandboxResponse:
    """Apollo's 422 for invalid parameters."""
    return error(422, f"Parameters misconfigured. {detail}")

"""What can go wrong talking to Apollo, and how to read its many error shapes."""

from __future__ import annotations

import json
from typing import Any

from connector_core.errors import RunFailed


class ApolloError(Exception):
    """An Apollo call that did not succeed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApolloRejected(ApolloError):
    """Apollo refused the request's content (400/422): retrying the same body cannot help."""


class ApolloUnavailable(ApolloError):
    """Retries are exhausted (5xx, timeouts, dropped connections, rate limiting)."""


class OutOfCredits(ApolloError):
    """The account has no credits left (402): nothing more should be sent this run."""


class ApolloAuthError(RunFailed):
    """The key was refused (401/403): the run stops before sending anything else."""


def error_message(status: int, body: bytes) -> str:
    """Apollo's message from an error body of any of its shapes, else the raw text (shortened)."""
    text = body.decode("utf-8", "replace").strip()
    parsed: Any = text
    for _ in range(2):  # some bodies are JSON encoded as a string inside JSON
        if not isinstance(parsed, str):
            break
        try:
            parsed = json.loads(parsed)
        except ValueError:
            break
    message = _find_message(parsed) if isinstance(parsed, dict) else None
    message = message or text or "(empty body)"
    return f"HTTP {status}: {message[:500]}"


def _find_message(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    if isinstance(error, dict):  # the aisa.one gateway's shape
        return str(error.get("message") or error.get("code") or error)
    for key in ("error_message", "message", "error", "error_code"):
        if body.get(key):
            return str(body[key])
    return None

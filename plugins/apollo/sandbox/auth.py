"""Authentication of the two deployments: Apollo direct (``X-Api-Key``) and the aisa.one gateway (Bearer)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from .responses import SandboxResponse, json_response, text_response

DIRECT = "direct"
GATEWAY = "gateway"

_INVALID_KEY = (
    "Invalid API key. Send your Apollo API key in the X-Api-Key header "
    "(Bearer tokens are only accepted for OAuth apps)."
)


def direct_unauthorized() -> SandboxResponse:
    """Apollo's 401: plain text, no rate-limit headers."""
    return text_response(401, _INVALID_KEY)


def gateway_unauthorized(code: str = "invalid_api_key", message: str = "Invalid API key provided.") -> SandboxResponse:
    """The gateway's own error envelope."""
    payload = {
        "error": {
            "type": "authentication_error",
            "code": code,
            "message": message,
            "request_id": f"req_{secrets.token_hex(12)}",
        }
    }
    return json_response(401, payload)


def unauthorized(layout: str) -> SandboxResponse:
    """A 401 in the style of ``layout``."""
    return gateway_unauthorized() if layout == GATEWAY else direct_unauthorized()


def check(layout: str, headers: Mapping[str, str], api_key: str | None) -> SandboxResponse | None:
    """``None`` when the call is authenticated, else the 401 to send.

    ``headers`` must have lower-case names. Any non-empty credential is accepted unless ``api_key`` is set.
    """
    if layout == GATEWAY:
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return gateway_unauthorized("missing_api_key", "Missing bearer token in the Authorization header.")
        credential = token.strip()
    else:
        # Apollo refuses an API key sent as a Bearer token, and keys in the URL or body are not honoured.
        credential = headers.get("x-api-key", "").strip()
        if not credential:
            return direct_unauthorized()
    if api_key is not None and not secrets.compare_digest(credential.encode(), api_key.encode()):
        return unauthorized(layout)
    return None

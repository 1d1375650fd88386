"""The webhook's secret: Apollo signs nothing, so an unguessable token in the URL path is the only proof."""

from __future__ import annotations

import secrets

from connector_core.state.store import StateStore

#: State component and key the token is kept under, per job (created once, reused by every command).
TOKEN_COMPONENT = "webhook.token"
TOKEN_KEY = "token"
#: Path of the receiver; the token follows it.
PATH_PREFIX = "/apollo/webhook/"


def job_token(store: StateStore, job: str) -> str:
    """The job's webhook token, created (256 random bits) the first time it is asked for."""
    stored = store.objects(job, TOKEN_COMPONENT, [TOKEN_KEY]).get(TOKEN_KEY)
    if stored is not None:
        return str(stored["token"])
    token = secrets.token_urlsafe(32)
    store.put_objects(job, TOKEN_COMPONENT, {TOKEN_KEY: {"token": token}})
    return token


def webhook_url(public_url: str, token: str) -> str:
    """The URL to give Apollo as ``webhook_url``: the receiver's public address, its path and the token."""
    return public_url.rstrip("/") + PATH_PREFIX + token

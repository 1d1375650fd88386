"""Replay Apollo's published response examples (tests/data/apollo) through jobs with ``httpx.MockTransport``."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmsync_plugins.apollo import client
from crmsync_plugins.apollo.client import ApolloClient

EXAMPLES = json.loads((Path(__file__).parents[1] / "data" / "apollo" / "openapi_examples.json").read_text())


def example(operation: str, name: str) -> httpx.Response:
    """Apollo's published example ``name`` (e.g. ``"422 Result"``) of ``operation``, as the response it shows."""
    found = EXAMPLES[operation][name]
    body = found["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(found["status"], headers={"Content-Type": found["content_type"]}, content=content)


def example_body(operation: str, name: str) -> Any:
    """The example's body, decoded when it is JSON (some are JSON inside a string)."""
    body = EXAMPLES[operation][name]["body"]
    return json.loads(body) if isinstance(body, str) and body.lstrip().startswith("{") else body


class Replay:
    """Serves scripted responses to every Apollo call of a job and records the requests it saw."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        response = self.respond(request)
        return _bound(response, request)

    def calls(self, path_end: str) -> list[httpx.Request]:
        """The requests whose path ends with ``path_end`` (``"people/bulk_match"``)."""
        return [r for r in self.requests if r.url.path.endswith(path_end)]

    def bodies(self, path_end: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) if r.content else {} for r in self.calls(path_end)]


def _bound(response: httpx.Response, request: httpx.Request) -> httpx.Response:
    # A fresh response per call: httpx binds a response to one request and one read of its stream.
    return httpx.Response(response.status_code, headers=response.headers, content=response.content, request=request)


def install(monkeypatch: pytest.MonkeyPatch, respond: Callable[[httpx.Request], httpx.Response]) -> Replay:
    """Make every Apollo connection of the jobs run in this test talk to ``respond`` instead of the network."""
    replay = Replay(respond)
    transport = httpx.MockTransport(replay.handler)
    # The connection imports the client class when it opens (httpx loads only for jobs that use Apollo).
    monkeypatch.setattr(client, "ApolloClient", functools.partial(ApolloClient, transport=transport))
    return replay

"""An httpx transport that serves requests from an in-process :class:`~.app.ApolloSandbox`."""

from __future__ import annotations

import asyncio

import httpx

from .app import ADMIN_PREFIX, ApolloSandbox
from .responses import SandboxConnectionReset, SandboxResponse


class SandboxTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Use with ``httpx.Client(transport=...)`` or ``httpx.AsyncClient(transport=...)``; no sockets involved.

    A reset fault raises ``httpx.ReadError`` like a dropped connection; latency is an ``asyncio.sleep`` on
    the async path so it never blocks the event loop.
    """

    def __init__(self, sandbox: ApolloSandbox) -> None:
        self.sandbox = sandbox

    @staticmethod
    def _to_httpx(request: httpx.Request, response: SandboxResponse) -> httpx.Response:
        return httpx.Response(response.status, headers=response.headers, content=response.body, request=request)

    @staticmethod
    def _reset_error(request: httpx.Request, exc: SandboxConnectionReset) -> httpx.ReadError:
        return httpx.ReadError(f"Connection reset by peer ({exc})", request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        try:
            response = self.sandbox.handle(request.method, _target(request), None, dict(request.headers), body)
        except SandboxConnectionReset as exc:
            raise self._reset_error(request, exc) from exc
        return self._to_httpx(request, response)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        path = request.url.path
        delay = 0.0 if path.startswith(ADMIN_PREFIX) else self.sandbox.latency_seconds()
        if delay:
            await asyncio.sleep(delay)
        try:
            response = self.sandbox.process(request.method, _target(request), None, dict(request.headers), body)
        except SandboxConnectionReset as exc:
            raise self._reset_error(request, exc) from exc
        if response.delay_s:
            await asyncio.sleep(response.delay_s)
        return self._to_httpx(request, response)


def _target(request: httpx.Request) -> str:
    """Path and query string, so repeated array parameters (``domains[]``) survive."""
    return request.url.raw_path.decode("ascii")


def sandbox_transport(sandbox: ApolloSandbox) -> SandboxTransport:
    """A transport for ``httpx.Client``/``httpx.AsyncClient`` backed by ``sandbox``."""
    return SandboxTransport(sandbox)

"""A proxy in the environment (HTTP_PROXY, ALL_PROXY) is not used for a local sandbox or mock, and still is for
any other host."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector_core.testing import run_job
from crmsync_plugins.apollo.client import ApolloClient
from crmsync_plugins.apollo.errors import ApolloUnavailable
from crmsync_plugins.apollo.sandbox import SandboxServer
from crmsync_plugins.apollo.settings import ApolloSettings

from .conftest import CANARY_KEY, env, people, write_job, write_leads

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class FakeProxy:
    """A listening socket standing in for a proxy: records the first line of each request it gets, answers 502."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.request_lines: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                self.request_lines.append(connection.makefile("rb").readline().decode().strip())
                connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), which close() alone does not
        self.listener.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProxy]:
    """Every proxy variable of the environment pointed at a fake proxy; no NO_PROXY."""
    fake = FakeProxy()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, fake.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield fake
    fake.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_job_against_a_local_sandbox_ignores_the_environment_s_proxy(
    tmp_path: Path, sandbox: SandboxServer, proxy: FakeProxy, host: str
) -> None:
    write_leads(tmp_path, people(12))
    report = run_job(
        write_job(tmp_path), env(sandbox) | {"APOLLO_BASE_URL": sandbox.base_url.replace("127.0.0.1", host)}
    )
    assert report.status == "success", report.failure
    assert report.streams["enrich.matched"] == 12 and proxy.request_lines == []


@pytest.mark.parametrize("base_url", ["http://apollo.example.test", "http://10.1.2.3:8080"])
def test_any_other_host_still_goes_through_the_environment_s_proxy(proxy: FakeProxy, base_url: str) -> None:
    settings = ApolloSettings(api_key=CANARY_KEY, base_url=base_url, max_attempts=1, backoff_s=0.0)

    async def call() -> None:
        client = ApolloClient(settings)
        try:
            await client.post("people/bulk_match", {"details": []})
        finally:
            await client.aclose()

    with pytest.raises(ApolloUnavailable):
        asyncio.run(call())
    assert proxy.request_lines == [f"POST {base_url}/api/v1/people/bulk_match HTTP/1.1"]


@pytest.mark.parametrize(
    ("base_url", "loopback"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1"),
        ("http://127.5.0.1", "127.5.0.1"),
        ("http://[::1]:9000/apis/v1", "::1"),
        ("http://localhost:1234", "localhost"),
        ("http://sandbox.localhost", "sandbox.localhost"),
        ("https://api.apollo.io", None),
        ("http://localhost.example.com", None),
        ("http://10.0.0.1", None),
    ],
)
def test_which_base_urls_are_this_machine(base_url: str, loopback: str | None) -> None:
    assert ApolloSettings(api_key="k", base_url=base_url).loopback_host == loopback

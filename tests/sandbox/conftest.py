"""Fixtures for the Apollo sandbox tests: an in-process sandbox, httpx clients on it, a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, sandbox_transport

DIRECT_BASE = "https://api.apollo.io"
GATEWAY_BASE = "https://api.aisa.one"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sandbox(clock: FakeClock) -> Callable[..., ApolloSandbox]:
    """Build a sandbox from config keyword arguments, on the fake clock."""

    def build(**config: object) -> ApolloSandbox:
        return ApolloSandbox(SandboxConfig(**config), clock=clock)  # type: ignore[arg-type]

    return build


@pytest.fixture
def sandbox(make_sandbox: Callable[..., ApolloSandbox]) -> ApolloSandbox:
    return make_sandbox()


@pytest.fixture
def client_for() -> Iterator[Callable[..., httpx.Client]]:
    """Make an httpx client on a sandbox: ``client_for(sb)`` (X-Api-Key) or ``client_for(sb, gateway=True)``."""
    clients: list[httpx.Client] = []

    def build(sb: ApolloSandbox, *, gateway: bool = False, key: str = "test-key") -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if gateway else {"X-Api-Key": key}
        client = httpx.Client(
            transport=sandbox_transport(sb),
            base_url=GATEWAY_BASE if gateway else DIRECT_BASE,
            headers=headers,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(sandbox: ApolloSandbox, client_for: Callable[..., httpx.Client]) -> httpx.Client:
    return client_for(sandbox)

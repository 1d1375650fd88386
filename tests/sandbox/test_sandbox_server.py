"""The real HTTP server: round trips over sockets, dropped connections, clean stop."""

from __future__ import annotations

import socket

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

BULK = "/api/v1/people/bulk_match"
CREATE = "/api/v1/contacts/bulk_create"


def test_round_trip_over_http() -> None:
    sandbox = ApolloSandbox()
    with SandboxServer(sandbox) as server, httpx.Client(base_url=server.base_url) as client:
        assert server.base_url.startswith("http://127.0.0.1:")
        matched = client.post(
            BULK,
            params={"reveal_personal_emails": "true"},
            headers={"X-Api-Key": "k"},
            json={"details": [{"email": "roy@apollo.io"}, {"email": "ghost@nowhere.example"}]},
        )
        assert matched.status_code == 200
        assert matched.headers["content-type"].startswith("application/json")
        assert matched.headers["x-minute-usage"] == "1"
        body = matched.json()
        assert body["matches"][0]["personal_emails"] == ["royychung@gmail.com"]  # non-ASCII headline survives
        assert body["matches"][0]["headline"].startswith("Ideating")
        assert body["matches"][1] is None

        gateway = client.post(
            "/apis/v1/apollo/contacts/bulk_create",
            headers={"Authorization": "Bearer sk-aisa-test"},
            json={"contacts": [{"first_name": "Http", "last_name": "Test", "email": "http@test.example"}]},
        )
        assert gateway.status_code == 200
        assert client.get("/_sandbox/state").json()["calls"] == {
            BULK: 1,
            "/apis/v1/apollo/contacts/bulk_create": 1,
        }
        assert client.get("/nope").status_code == 404


@pytest.mark.parametrize(("fault", "written"), [("reset", 0), ("reset:after", 1)])
def test_reset_drops_the_connection(fault: str, written: int) -> None:
    sandbox = ApolloSandbox()
    sandbox.script_faults([fault])
    payload = {"contacts": [{"first_name": "R", "last_name": "S", "email": "reset@test.example"}]}
    with (
        SandboxServer(sandbox) as server,
        httpx.Client(base_url=server.base_url, headers={"X-Api-Key": "k"}) as client,
    ):
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            client.post(CREATE, json=payload)
        assert [c["email"] for c in sandbox.contacts].count("reset@test.example") == written
        # The server keeps serving new connections after dropping one.
        assert client.post(BULK, json={"details": []}).status_code == 200


def test_stop_closes_the_port_and_idle_connections() -> None:
    server = SandboxServer(ApolloSandbox(SandboxConfig())).start()
    port = server.port
    client = httpx.Client(base_url=server.base_url)
    assert client.get("/_sandbox/state").status_code == 200  # leaves an idle keep-alive connection
    server.stop()
    client.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    server.stop()  # idempotent


def test_server_builds_a_default_sandbox() -> None:
    with SandboxServer(port=0) as server:
        assert server.sandbox.people.by_email("tim@apollo.io") is not None
        assert httpx.get(f"{server.base_url}/_sandbox/state").status_code == 200

"""The HTTP receiver of Apollo's phone/waterfall deliveries: stores each payload in the job's state, once.

Built on the standard library's ``ThreadingHTTPServer`` rather than an ASGI stack: it serves one POST route,
every request ends in a blocking state write (SQLite or PostgreSQL) that a thread per connection suits, and it
adds no dependency. TLS comes from a reverse proxy in front of it, or from ``--certfile``/``--keyfile``.

A delivery is answered 200 only once it is committed to the state, so Apollo retries anything not kept; the
same payload twice (Apollo may retry a webhook) is stored once, keyed by a hash of its canonical JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connector_core.state.store import StateStore
from crmsync_plugins.apollo.deliveries import RECEIVED
from crmsync_plugins.apollo.webhook.token import PATH_PREFIX

log = logging.getLogger("crmsync.webhook")

#: Largest body accepted (413 beyond): a delivery for 10 people is a few kilobytes.
DEFAULT_MAX_BODY = 1024 * 1024


class DeliveryStore:
    """Keeps received payloads in one job's state; one writer at a time over a single store connection."""

    def __init__(self, store: StateStore, job: str) -> None:
        self.store = store
        self.job = job
        self.lock = threading.Lock()
        self.counts = {"stored": 0, "duplicates": 0}

    def keep(self, payload: dict[str, Any]) -> bool:
        """Commit ``payload`` unless it is already kept; True when it was new."""
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        with self.lock:
            if self.store.objects(self.job, RECEIVED, [key]):
                self.counts["duplicates"] += 1
                return False
            self.store.put_objects(self.job, RECEIVED, {key: {"payload": payload, "received_at": time.time()}})
            self.counts["stored"] += 1
            return True


class WebhookServer(ThreadingHTTPServer):
    """Serves ``POST /apollo/webhook/<token>`` into a :class:`DeliveryStore`."""

    daemon_threads = True
    #: Bursts of deliveries queue in the kernel instead of being refused.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], deliveries: DeliveryStore, token: str, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        super().__init__(address, _Handler)
        self.deliveries = deliveries
        self.expected_path = (PATH_PREFIX + token).encode()
        self.max_body = max_body

    def use_tls(self, certfile: str, keyfile: str | None) -> None:
        """Serve HTTPS with this certificate (Apollo only calls HTTPS URLs)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.socket = context.wrap_socket(self.socket, server_side=True)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].encode()
        if not hmac.compare_digest(path, self.server.expected_path):
            self._answer(401, {"error": "unknown webhook token"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(411, {"error": "Content-Length required"})
            return
        if length > self.server.max_body or length < 0:
            self._answer(413, {"error": f"body larger than {self.server.max_body} bytes"})
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            log.warning("webhook: malformed JSON body (%d bytes) from %s: %s", length, self.client_address[0], exc)
            self._answer(400, {"error": "body is not JSON"})
            return
        if not isinstance(payload, dict):
            log.warning("webhook: body from %s is JSON but not an object", self.client_address[0])
            self._answer(400, {"error": "body is not a JSON object"})
            return
        try:
            new = self.server.deliveries.keep(payload)
        except Exception as exc:  # not kept: a 5xx makes Apollo deliver it again
            log.error("webhook: could not store a delivery: %s: %s", type(exc).__name__, exc)
            self._answer(503, {"error": "could not store the delivery; retry"})
            return
        self._answer(200, {"status": "stored" if new else "already stored"})

    def do_GET(self) -> None:
        self._answer(405, {"error": "POST deliveries here"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:  # an unread body would be taken for the next request on this connection
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The default line holds the request path, and the path holds the token: log without it.
        log.debug("webhook: %s %s", self.command, args[1] if len(args) > 1 else "")

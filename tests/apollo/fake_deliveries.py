"""A loopback stand-in for Apollo's asynchronous half: bulk_match with ``reveal_phone_number`` answers a
phone request id, the phone payload is served by ``webhook_result`` after a delay and, when asked, POSTed to
the ``webhook_url``. Counts the enrichment calls, so tests can prove nothing is paid for twice."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx


def person_id(email: str) -> str:
    return "p-" + hashlib.md5(email.encode()).hexdigest()[:10]


def phones_of(email: str) -> list[dict[str, Any]]:
    """Everyone has a mobile number except people whose address starts with ``nophone``."""
    if email.startswith("nophone"):
        return []
    digits = str(int(hashlib.md5(email.encode()).hexdigest()[:8], 16))[:9]
    return [{"raw_number": f"+1 {digits}", "sanitized_number": f"+1{digits}", "type_cd": "mobile"}]


class FakeApollo:
    """``with FakeApollo(...) as apollo``: serves on a free loopback port (``apollo.base_url``)."""

    def __init__(self, ready_after_s: float = 0.3, push: bool = False, answer: str | None = None) -> None:
        self.ready_after_s = ready_after_s
        self.push = push
        #: Make every ``webhook_result`` answer this final error (``request_id_expired`` ...), or never be ready
        #: (``never``).
        self.answer = answer
        self.enrichment_calls = 0
        self.polls = 0
        self.requests: dict[str, tuple[float, dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeApollo:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bulk_match(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            self.enrichment_calls += 1
            request_id = f"ph-{self.enrichment_calls}"
        matches: list[dict[str, Any] | None] = []
        people = []
        for detail in body["details"]:
            email = detail.get("email", "")
            if "nowhere" in email:
                matches.append(None)
                continue
            pid = person_id(email)
            matches.append({"id": pid, "email": email, "first_name": detail.get("first_name")})
            people.append({"id": pid, "status": "success", "phone_numbers": phones_of(email)})
        found = sum(1 for person in people if person["phone_numbers"])
        payload = {"status": "success", "credits_consumed": 8 * found, "people": people}
        with self.lock:
            self.requests[request_id] = (time.monotonic() + self.ready_after_s, payload)
        if self.push and people:
            url = query["webhook_url"][0]
            threading.Timer(self.ready_after_s, lambda: httpx.post(url, json=payload, timeout=10)).start()
        return {
            "status": "success",
            "request_id": -12345,
            "credits_consumed": len(people),
            "matches": matches,
            "phone_enrichment": {"request_id": request_id, "status": "pending", "message": "on its way"},
        }

    def webhook_result(self, request_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.polls += 1
            known = self.requests.get(request_id)
        if self.answer in ("request_id_unknown", "request_id_expired", "invalid_request_id"):
            status = {"request_id_unknown": 404, "request_id_expired": 410, "invalid_request_id": 400}[self.answer]
            return status, {"error": self.answer}
        if known is None:
            return 404, {"error": "request_id_unknown"}
        ready_at, payload = known
        if self.answer == "never" or time.monotonic() < ready_at:
            return 404, {"error": "result_pending", "retry_after_seconds": 0.2}
        return 200, {
            "webhook_status": "delivered",
            "request_type": "phone",
            "last_dispatched_at": None,
            "failure_reason": None,
            "webhook_result": payload,
        }


def _handler(apollo: FakeApollo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(200, apollo.bulk_match(body, parse_qs(url.query)))

        def do_GET(self) -> None:
            self._send(*apollo.webhook_result(self.path.rsplit("/", 1)[1]))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler

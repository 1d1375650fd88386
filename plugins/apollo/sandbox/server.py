"""A real HTTP/1.1 server (stdlib) around :class:`~.app.ApolloSandbox`, run in a background thread."""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .app import ApolloSandbox
from .responses import SandboxConnectionReset, SandboxResponse, error

_MAX_BODY = 16 * 1024 * 1024


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so stop() can end idle keep-alive ones instead of leaking their threads."""

    daemon_threads = True
    allow_reuse_address = True
    #: Listen backlog: socketserver's default of 5 resets bursts of concurrent connections (load tests open
    #: hundreds at once); the kernel caps it at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], sandbox: ApolloSandbox) -> None:
        self.sandbox = sandbox
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request (a cancelled run, a timeout) is normal traffic, not a server bug.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, every response has Content-Length
    server_version = "ApolloSandbox/1.0"
    timeout = 120  # idle keep-alive connections do not hold a thread forever
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request logs would drown test and demo output

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        """The request body; raises ValueError for a malformed or oversized one (chunked or not)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(64).split(b";", 1)[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                total += size
                if total > _MAX_BODY:
                    raise ValueError("request body too large")
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            # The rest of the body is unread: answer, then close rather than parse it as the next request.
            self.close_connection = True
            status = 413 if "too large" in str(exc) else 400
            self._send(error(status, f"Bad request body: {exc}"))
            return
        try:
            # The raw target keeps repeated array parameters (domains[]=a&domains[]=b) for the sandbox to parse.
            response = self.server.sandbox.handle(self.command, self.path, None, dict(self.headers.items()), body)
        except SandboxConnectionReset:
            self._abort()
            return
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = error(500, "Internal server error")
        self._send(response)

    def _send(self, response: SandboxResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _abort(self) -> None:
        """Drop the connection with a TCP reset and no response, like a crashed upstream."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class SandboxServer:
    """Serves an :class:`ApolloSandbox` over HTTP on ``host:port`` (port 0 picks a free one).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``base_url`` is known once started.
    """

    def __init__(self, sandbox: ApolloSandbox | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox if sandbox is not None else ApolloSandbox()
        self._owns_sandbox = sandbox is None
        self.host = host
        self._requested_port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._httpd is None:
            raise RuntimeError("the sandbox server is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), self.sandbox)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="apollo-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join the server thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None
        if self._owns_sandbox:
            self.sandbox.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

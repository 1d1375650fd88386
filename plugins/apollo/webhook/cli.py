"""``crmsync webhook serve SPEC`` and ``crmsync webhook url SPEC --public-url URL``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the state modules load when the command runs, not to build `crmsync --help`
    from connector_core.state.store import StateStore


log = logging.getLogger("crmsync.webhook")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` and ``url`` actions."""
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve", help="receive Apollo's phone/waterfall deliveries into the job's state", description=__doc__
    )
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port to listen on (default: 8787; 0 picks one)")
    serve.add_argument("--max-body-bytes", type=int, default=None, help="larger bodies get 413 (default: 1 MiB)")
    serve.add_argument("--certfile", help="serve HTTPS with this certificate (PEM; else put a proxy in front)")
    serve.add_argument("--keyfile", help="the certificate's private key (PEM), if not in --certfile")
    serve.set_defaults(webhook_action="serve")
    url = actions.add_parser("url", help="print the URL to set as the job's webhook_url", description=__doc__)
    _common(url)
    url.add_argument("--public-url", required=True, help="where Apollo reaches the receiver (https://host[:port])")
    url.set_defaults(webhook_action="url")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="the job's YAML spec")
    parser.add_argument("--state", metavar="FILE|URL", help="the state database (default: from the spec)")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    from connector_core.api import open_state
    from connector_core.plugin_manager import get_plugin_host
    from connector_core.spec.loader import load_spec
    from crmsync_plugins.apollo.webhook.token import job_token, webhook_url

    spec = load_spec(args.spec, get_plugin_host(), offline=True)
    store = open_state(spec, args.state)
    try:
        token = job_token(store, spec.job)
        if args.webhook_action == "url":
            print(webhook_url(args.public_url, token))
            return 0
        return _serve(args, store, spec.job, token)
    finally:
        store.close()


def _serve(args: argparse.Namespace, store: StateStore, job: str, token: str) -> int:
    from crmsync_plugins.apollo.webhook.receiver import DEFAULT_MAX_BODY, DeliveryStore, WebhookServer

    server = WebhookServer(
        (args.host, args.port), DeliveryStore(store, job), token, args.max_body_bytes or DEFAULT_MAX_BODY
    )
    if args.certfile:
        server.use_tls(args.certfile, args.keyfile)
    host, port = server.server_address[:2]
    scheme = "https" if args.certfile else "http"
    # Flushed at once: a test or a supervisor waits for this line to know the port.
    print(
        f"crmsync webhook: job {job!r} receiving on {scheme}://{host!s}:{port} (path from `crmsync webhook url`)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.info("webhook: %s", server.deliveries.counts)
    return 0

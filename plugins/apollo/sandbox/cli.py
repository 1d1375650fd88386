"""``crmsync sandbox apollo``: run the Apollo sandbox as a local HTTP server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded when a sandbox starts, not to list its options in `crmsync --help`
    from .config import SandboxConfig


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options to ``parser`` (used by the crmsync CLI and by :func:`main`)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=_non_negative_int, default=8787, help="port (0 = any free port)")
    parser.add_argument("--seed", metavar="FILE", help="seed JSON {people, contacts} replacing the default")
    parser.add_argument("--api-key", metavar="KEY", help="accept only this key/token (default: any)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each response")
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0, help="extra random delay, up to this")
    parser.add_argument("--rate-limit-per-minute", type=_non_negative_int, metavar="N")
    parser.add_argument("--rate-limit-per-hour", type=_non_negative_int, metavar="N")
    parser.add_argument("--rate-limit-per-day", type=_non_negative_int, metavar="N")
    parser.add_argument("--fail-rate", type=_rate, default=0.0, help="share of calls answered 500")
    parser.add_argument("--throttle-rate", type=_rate, default=0.0, help="share of calls answered a spurious 429")
    parser.add_argument("--reset-rate", type=_rate, default=0.0, help="share of calls whose connection is dropped")
    parser.add_argument(
        "--reset-after-apply-fraction",
        type=_rate,
        default=0.5,
        help="share of dropped connections that happen after the request was applied (default: 0.5)",
    )
    parser.add_argument(
        "--fail-statuses",
        type=_statuses,
        default=(500,),
        metavar="CODES",
        help="statuses --fail-rate answers with, drawn evenly, e.g. 500,502,503,504 (default: 500)",
    )
    parser.add_argument("--spike-rate", type=_rate, default=0.0, help="share of calls stalled by --spike-ms")
    parser.add_argument("--spike-ms", type=float, default=0.0, help="length of a latency spike")
    parser.add_argument(
        "--credit-balance",
        type=float,
        metavar="N",
        help="credits the account can spend; then paid calls get Apollo's 422 'Insufficient credits'",
    )
    parser.add_argument(
        "--owner-ids",
        metavar="IDS",
        help="comma-separated users of the team; any other owner_id gets Apollo's 422 (default: any owner)",
    )
    parser.add_argument("--no-retry-after", action="store_true", help="never send Retry-After on 429")
    parser.add_argument("--omit-missing-matches", action="store_true", help="drop nulls from bulk_match matches")
    parser.add_argument("--random-seed", type=int, default=0, help="seed for fault injection and ids")
    parser.add_argument(
        "--delivery-delay-s",
        type=_non_negative_float,
        default=2.0,
        metavar="S",
        help="seconds until phone/waterfall results are POSTed to webhook_url and served by webhook_result "
        "(default: 2)",
    )
    parser.add_argument(
        "--duplicate-deliveries",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="POST every webhook payload N extra times, as Apollo's retries may (default: 0)",
    )
    parser.add_argument(
        "--webhook-retries",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="retries of a webhook POST that failed or found nobody listening (default: 3)",
    )
    parser.add_argument(
        "--webhook-retry-backoff-s",
        type=_non_negative_float,
        default=1.0,
        metavar="S",
        help="wait before the first retry, doubling after each (default: 1)",
    )
    parser.add_argument(
        "--webhook-timeout-s", type=_positive_float, default=10.0, metavar="S", help="timeout of one POST"
    )
    parser.add_argument(
        "--result-ttl-s",
        type=_positive_float,
        default=30 * 24 * 3600.0,
        metavar="S",
        help="how long webhook_result keeps a payload, then 410 request_id_expired (default: 30 days)",
    )


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _statuses(text: str) -> tuple[int, ...]:
    try:
        codes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated HTTP statuses, got {text!r}") from None
    if not codes or not all(500 <= code <= 599 for code in codes):
        raise argparse.ArgumentTypeError(f"expected 5xx statuses, got {text!r}")
    return codes


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The :class:`SandboxConfig` the parsed options describe."""
    from .config import SandboxConfig

    return SandboxConfig(
        api_key=args.api_key,
        seed_path=args.seed,
        omit_missing_matches=args.omit_missing_matches,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limit_per_hour=args.rate_limit_per_hour,
        rate_limit_per_day=args.rate_limit_per_day,
        retry_after_header=not args.no_retry_after,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        fail_rate=args.fail_rate,
        fail_statuses=args.fail_statuses,
        spike_rate=args.spike_rate,
        spike_ms=args.spike_ms,
        credit_balance=args.credit_balance,
        owner_ids=frozenset(part.strip() for part in args.owner_ids.split(",") if part.strip())
        if args.owner_ids
        else None,
        throttle_rate=args.throttle_rate,
        reset_rate=args.reset_rate,
        reset_after_apply_fraction=args.reset_after_apply_fraction,
        random_seed=args.random_seed,
        delivery_delay_s=args.delivery_delay_s,
        duplicate_deliveries=args.duplicate_deliveries,
        webhook_retries=args.webhook_retries,
        webhook_retry_backoff_s=args.webhook_retry_backoff_s,
        webhook_timeout_s=args.webhook_timeout_s,
        result_ttl_s=args.result_ttl_s,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 2 when the seed or the address is unusable."""
    # Imported here so that building the CLI parser (e.g. `crmsync --help`) stays cheap.
    from .app import ApolloSandbox
    from .server import SandboxServer

    try:
        sandbox = ApolloSandbox(config_from_args(args))
    except (OSError, ValueError, KeyError) as exc:
        print(f"crmsync sandbox apollo: cannot load seed: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    server = SandboxServer(sandbox, host=args.host, port=args.port)
    try:
        try:
            server.start()
        except OSError as exc:
            print(f"crmsync sandbox apollo: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 2
        print(f"Apollo sandbox listening on {server.base_url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        sandbox.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``main(["--port", "0"])`` serves on a free port."""
    parser = argparse.ArgumentParser(
        prog="crmsync sandbox apollo",
        description="Run a local stand-in for the Apollo.io API (direct /api/v1 and aisa.one /apis/v1/apollo).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__: list[str] = ["add_arguments", "config_from_args", "main", "run"]

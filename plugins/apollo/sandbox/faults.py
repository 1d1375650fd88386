"""Fault injection: a one-shot scripted queue for tests plus seeded random faults for soak runs."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .config import SandboxConfig


@dataclass(frozen=True)
class Fault:
    """What to do to one API call instead of (or after) serving it normally."""

    token: str
    #: HTTP status to answer with; ``None`` for a reset or a pass-through.
    status: int | None = None
    #: Drop the connection without any response.
    reset: bool = False
    #: For resets: apply the request first, so the caller loses the response of a completed write.
    after_apply: bool = False
    #: For 429s: whether to send ``Retry-After``.
    retry_after: bool = True
    #: For 429s: the ``Retry-After`` value in seconds, and whether to send it as an HTTP date.
    retry_after_s: int = 1
    retry_after_date: bool = False
    #: A 200 whose body is not what the endpoint documents (``"matches": "oops"``...).
    malformed: bool = False
    #: Stall this long before answering (a latency spike), then serve the call normally.
    delay_s: float = 0.0

    @property
    def passthrough(self) -> bool:
        """True for ``"ok"`` and ``"slow:MS"``: serve this call normally (keeps later faults in position)."""
        return self.status is None and not self.reset and not self.malformed


def parse_fault(token: str) -> Fault:
    """Parse a scripted fault.

    ``"ok"`` serves the call normally; ``"reset"``/``"reset:before"`` drops the connection before the call
    is applied, ``"reset:after"`` after; ``"429"`` answers 429 with ``Retry-After: 1``, ``"429:nohdr"``
    without it, ``"429:3600"`` with ``Retry-After: 3600`` and ``"429:date:3600"`` with the HTTP date an hour
    ahead; ``"malformed"`` applies the call and answers a 200 whose body is not the documented shape;
    ``"slow:2000"`` serves the call after a 2 s stall; any other 3-digit status (``"401"``, ``"402"``,
    ``"403"``, ``"422"``, ``"500"``, ``"502"``, ``"503"``, ``"504"``...) answers that status with the body
    Apollo (or, for 502-504, its load balancer) sends.
    """
    text = token.strip().lower()
    if text in ("ok", "pass", "none"):
        return Fault(token=text)
    if text == "malformed":
        return Fault(token=text, malformed=True)
    if text.startswith("slow:") and text[5:].isdigit():
        return Fault(token=text, delay_s=int(text[5:]) / 1000.0)
    seconds = text.removeprefix("429:date:").removeprefix("429:")
    if text.startswith("429:") and seconds.isdigit():
        return Fault(token=text, status=429, retry_after_s=int(seconds), retry_after_date=text.startswith("429:date:"))
    if text in ("reset", "reset:before"):
        return Fault(token=text, reset=True)
    if text == "reset:after":
        return Fault(token=text, reset=True, after_apply=True)
    code, _, option = text.partition(":")
    if len(code) == 3 and code.isdigit() and 400 <= int(code) <= 599 and option in ("", "nohdr"):
        if option and code != "429":
            raise ValueError(f"':nohdr' only applies to 429, got {token!r}")
        return Fault(token=text, status=int(code), retry_after=not option)
    raise ValueError(f"unknown fault {token!r}")


class FaultInjector:
    """Decides each call's fault; not thread-safe by itself (the sandbox holds its lock)."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._scripted: deque[Fault] = deque()
        self.reset()

    def reset(self) -> None:
        """Drop scripted faults and restart the random sequences, so a reset sandbox replays identically."""
        self._rng = random.Random(self._config.random_seed)
        # Latency is drawn outside the request lock, in arrival order; a separate generator keeps that
        # ordering from shifting the fault decisions.
        self._latency_rng = random.Random(self._config.random_seed + 1)
        self._scripted.clear()

    def script(self, tokens: Iterable[str]) -> None:
        """Queue faults for the next API calls, in order (validated before anything is queued)."""
        self._scripted.extend([parse_fault(token) for token in tokens])

    @property
    def pending(self) -> list[str]:
        """Scripted faults not yet used."""
        return [fault.token for fault in self._scripted]

    def next_scripted(self) -> Fault | None:
        """The next scripted fault, if any."""
        return self._scripted.popleft() if self._scripted else None

    def draw(self) -> Fault | None:
        """A random fault per the configured rates, or ``None``."""
        cfg = self._config
        # Always draw twice so the sequence of decisions does not depend on earlier outcomes.
        roll, position = self._rng.random(), self._rng.random()
        if roll < cfg.fail_rate:
            # The second draw picks the status, so adding statuses does not shift later decisions.
            status = cfg.fail_statuses[int(position * len(cfg.fail_statuses)) % len(cfg.fail_statuses)]
            return Fault(token=f"random:{status}", status=status)
        roll -= cfg.fail_rate
        if roll < cfg.throttle_rate:
            return Fault(token="random:429", status=429)
        roll -= cfg.throttle_rate
        if roll < cfg.reset_rate:
            after = position < cfg.reset_after_apply_fraction
            return Fault(token="random:reset", reset=True, after_apply=after)
        return None

    def latency_seconds(self) -> float:
        """How long to stall the next response: latency, jitter and, now and then, a spike."""
        cfg = self._config
        jitter = self._latency_rng.uniform(0, cfg.latency_jitter_ms) if cfg.latency_jitter_ms else 0.0
        spike = cfg.spike_ms if cfg.spike_rate and self._latency_rng.random() < cfg.spike_rate else 0.0
        return max(0.0, cfg.latency_ms + jitter + spike) / 1000.0

"""The run lease: a job's lock that expires unless its holder keeps renewing it.

A run on an ephemeral CI runner can vanish (SIGKILL, a lost machine) without releasing its lock, and the next
runner has another hostname, so "is that pid alive?" cannot be asked. The holder therefore renews its lease every
``ttl/3`` seconds from a background thread; a lease not renewed for ``ttl`` seconds belongs to a dead run and the
next run takes it over, whatever its host. On the same host a lease whose process is gone is taken over at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector_core.state.store import JobLocked

if TYPE_CHECKING:
    from connector_core.state.store import StateStore

log = logging.getLogger("crmsync.state")

#: Default lease length; a dead run blocks the job for at most this long.
DEFAULT_TTL_S = 60.0
#: No lease this process takes is older than this (see holder_alive).
_STARTED = time.time()


def new_owner() -> dict[str, Any]:
    """Who this process is, as stored in the lease: a unique token, the pid and the host."""
    return {"token": uuid.uuid4().hex, "pid": os.getpid(), "host": socket.gethostname()}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host. A killed process its parent has not reaped yet (a
    zombie: a scheduler or test harness that sent SIGKILL and starts the next run before waiting) is gone: it
    holds its pid, but it will never renew or release its lease."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def holder_alive(held: dict[str, Any], host: str) -> bool:
    """Whether the process that took lease ``held`` may still hold it, as seen from ``host`` (this machine): one
    on another host may, whatever its pid. A lease with this process's own pid, taken before this process
    started, was a previous process's (a container that restarts a job under a fixed hostname gives each run
    the same pid): it must not lock its successor out until the TTL. One this process took (another run of the
    job on another thread) is alive."""
    if held["host"] != host:
        return True
    pid = int(held["pid"])
    if pid == os.getpid():
        return float(held["acquired_at"]) >= _STARTED
    return pid_alive(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and awaits its parent (Linux's ``/proc``; elsewhere: not known, so no)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses, the state follows the last ")".
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def describe(held: dict[str, Any]) -> str:
    """``pid 12 on runner-3 since ..., lease until ...``: a held lease for messages."""
    return (
        f"pid {held['pid']} on {held['host']} since {_when(held['acquired_at'])}, "
        f"lease until {_when(held['expires_at'])}"
    )


def takeover_note(job: str, held: dict[str, Any] | None, me: dict[str, Any], now: float) -> str | None:
    """Decide whether ``me`` may take the job's lease from its current holder ``held``.

    :returns: None when the lease is free, a note when a dead run's lease is taken over.
    :raises JobLocked: the holder is alive (or may be: another host, lease not expired).
    """
    if held is None or held["token"] == me["token"]:
        return None
    if held["expires_at"] <= now:
        return f"took over the lease of job {job!r} held by {describe(held)}: it expired (its run is gone)"
    if not holder_alive(held, me["host"]):
        return f"took over the lock of job {job!r} left by pid {held['pid']} (its process is gone)"
    raise JobLocked(
        f"job {job!r} is already running ({describe(held)}); wait for it to finish, or if that run is gone "
        f"for sure, `crmsync state unlock --force SPEC` (a dead run's lease also expires by itself)"
    )


def refuse_if_live(store: StateStore, job: str, force: bool, action: str) -> None:
    """Guard for ``state unlock`` / ``state reset``: acting under a live run loses or doubles records.

    :raises JobLocked: a live lease holds the job and ``force`` is not set.
    """
    held = store.lock(job)
    if held is None or force or held["expires_at"] <= time.time():
        return
    if not holder_alive(held, socket.gethostname()):
        return
    raise JobLocked(
        f"job {job!r} is running ({describe(held)}): refusing to {action} under a live run; "
        f"pass --force if that run is gone for sure"
    )


class Heartbeat:
    """Renews a lease every ``ttl/3`` seconds on its own connection, from a daemon thread.

    If a renewal finds the lease taken (it expired while this process was frozen, or someone forced an unlock),
    :attr:`lost` is set: the run must stop committing, since another run now owns the job.
    """

    def __init__(self, renew: Callable[[], bool], ttl_s: float, on_close: Callable[[], None] | None = None) -> None:
        self._renew = renew
        self.ttl_s = ttl_s
        self.interval = max(ttl_s / 3, 0.05)
        self._on_close = on_close
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._loop, name="crmsync-lease", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (before the lease is released)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        try:
            self._beat()
        finally:
            if self._on_close is not None:
                self._on_close()

    def _beat(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                held = self._renew()
            except Exception as exc:  # a network blip: the next beat may succeed before the lease expires
                log.warning("could not renew the run lease: %s: %s", type(exc).__name__, exc)
                # Past the TTL another run may have taken the job over: stop committing, as for a lost lease.
                held = time.monotonic() - renewed < self.ttl_s
            else:
                renewed = time.monotonic() if held else renewed
            if not held:
                self.lost = "the run lease was lost (it expired or was force-unlocked): another run may own the job"
                log.error("%s", self.lost)
                return

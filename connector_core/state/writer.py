"""The state store's own thread: during a run every state call (SQLite reads, commits, their fsyncs) runs there.

The event loop never waits on SQLite: the engine awaits its ledger calls with :meth:`StateWriter.run`. The one
thread also serialises the calls components make through ``context.state`` from the loop or from their own
threads (a SQLite connection must not be used by two threads at once), and keeps them in the order they were
made.

When nothing on the loop waits for I/O (see ``Engine``), the writer runs its calls where they are made, on
the loop: each hand-off to the thread and back cost more than the SQLite work it carried (a first run with
state spent ~20% of its CPU trading the GIL between the two threads).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from connector_core.state.store import StateStore

T = TypeVar("T")


class StateWriter:
    """One dedicated thread that runs state-store calls one at a time, in the order they are submitted; with
    ``inline``, no thread: every call runs at once (all of a run's work is then on one thread)."""

    def __init__(self, inline: bool = False) -> None:
        self._thread: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        if not inline:
            self._executor = ThreadPoolExecutor(1, "crmsync-state", initializer=self._remember_thread)

    def _remember_thread(self) -> None:
        self._thread = threading.get_ident()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the writer thread without blocking the event loop."""
        if self._executor is None:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(function, *args))

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` on the writer thread and wait for it (at once when already on that thread)."""
        if self._executor is None or threading.get_ident() == self._thread:
            return function(*args, **kwargs)
        return self._executor.submit(function, *args, **kwargs).result()

    def bind(self, store: StateStore) -> StateStore:
        """``store`` as seen through this thread: each of its methods, called from anywhere, runs here."""
        return cast(StateStore, _OnWriterThread(store, self))

    def close(self) -> None:
        """Finish the calls already submitted and stop the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)


class _OnWriterThread:
    """A stand-in for a store whose methods run on the writer thread (attributes are read as they are)."""

    def __init__(self, store: StateStore, writer: StateWriter) -> None:
        self._store = store
        self._writer = writer

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value
        return functools.partial(self._writer.call, value)

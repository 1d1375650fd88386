"""Component threads: where the plain-function methods of sources and sinks run, off the event loop.

Reading a file, writing one, fsyncing it or talking to a database blocks; on the event loop it would stall
every HTTP call of the run. Each such component gets one thread of its own (started on first use), so its
methods still run one at a time and in order — a plugin author writes ordinary sequential code — and a
SQLite connection opened in ``open()`` is used by the thread that created it.

When nothing on the loop waits for I/O (see ``Engine``), the lanes run their calls on the loop instead: a
stall there delays nobody, and a hand-off to a thread and back costs more than a short call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Lanes:
    """One single-thread executor per component name; with ``inline``, none: calls run where they are made."""

    def __init__(self, inline: bool = False) -> None:
        self.inline = inline
        self._executors: dict[str, ThreadPoolExecutor] = {}

    async def run(self, component: str, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on ``component``'s thread without blocking the event loop."""
        if self.inline:
            return function(*args)
        executor = self._executors.get(component)
        if executor is None:
            executor = self._executors[component] = ThreadPoolExecutor(1, f"crmsync-{component}")
        return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(function, *args))

    def close(self) -> None:
        """Wait for the calls still running (a cancelled run's last write) and stop the threads."""
        for executor in self._executors.values():
            executor.shutdown(wait=True)
        self._executors.clear()

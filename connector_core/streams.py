"""The streams between components: queues of record batches bounded by the number of records they hold."""

from __future__ import annotations

import asyncio
from collections import deque

from connector_core.records import Record

#: Queued after a producer's last batch.
END = None


class RecordQueue:
    """A FIFO of record batches holding at most ``capacity`` records.

    Bounding by records rather than by batches keeps memory flat whatever the producer's batch size. A batch
    larger than the whole capacity is still accepted once the queue is empty, so an oversized batch slows the
    stream down instead of blocking it for good. ``END`` markers hold no records and never wait: a producer
    puts its ``END`` only after its last batch went in, so order is kept.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.records = 0
        self._items: deque[list[Record] | None] = deque()
        self._changed = asyncio.Condition()

    async def put(self, batch: list[Record] | None) -> None:
        """Append ``batch`` (or ``END``), waiting while it would take the queue over its capacity."""
        size = 0 if batch is END else len(batch)
        async with self._changed:
            await self._changed.wait_for(lambda: not size or not self._items or self.records + size <= self.capacity)
            self._items.append(batch)
            self.records += size
            self._changed.notify_all()

    async def get(self) -> list[Record] | None:
        """The oldest batch (or ``END``), waiting for one."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            batch = self._items.popleft()
            if batch is not END:
                self.records -= len(batch)
            self._changed.notify_all()
            return batch

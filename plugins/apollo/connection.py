"""The ``apollo`` connection: one shared client per named connection, its numbers in the run report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connector_core.components import Connection
from connector_core.heap import keep_read_buffers_on_the_heap
from crmsync_plugins.apollo.settings import ApolloSettings
from crmsync_plugins.apollo.stats import ApiStats

if TYPE_CHECKING:
    from crmsync_plugins.apollo.client import ApolloClient


class ApolloConnection(Connection[ApolloSettings]):
    """An Apollo account: base URL, key, rate budget and retry policy shared by every Apollo component of a job.

    Components find it with ``context.connection(options.connection).client``.
    """

    Options = ApolloSettings

    def __init__(self, name: str, options: ApolloSettings, context: Any) -> None:
        super().__init__(name, options, context)
        self.stats = ApiStats()
        self.client: ApolloClient | None = None

    async def open(self) -> None:
        from crmsync_plugins.apollo.client import ApolloClient  # httpx loads with the first Apollo connection

        # Every answer is read into a 256 KiB buffer: from the heap, not a fresh mapping per read (see heap.py).
        keep_read_buffers_on_the_heap()
        # Whatever the spec says, the key is a secret: mask it even if it was written inline.
        self.context.redactor.add(self.options.api_key)
        self.client = ApolloClient(self.options, self.stats, mask=self.context.redactor.text)
        if self.options.read_usage_stats:
            adopted, outcome = await self.client.adopt_usage_limits()
            (self.context.log.info if adopted else self.context.log.warning)("%s: %s", self.name, outcome)
        self.context.add_report_section("api", self.stats.as_dict)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

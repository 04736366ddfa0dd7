"""A few seconds' memory of rarely changing rows (senders, API keys) read on every message.

Every send and every provider webhook needs its sender, and a profile counted eight
sender SELECTs per message. Senders change seldom and by hand, so a read is reused for
`ttl` seconds. A change made through this process clears the memory at once; one made
by another process (the CLI, another server) is seen within `ttl` seconds.

Entries are keyed by the database too: tests (and tools) open several databases in
one process, and the sandbox sender has the same id in all of them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Recent"]

T = TypeVar("T")
# More distinct keys than any deployment has senders: past it, start afresh.
MAX_ENTRIES = 10_000


class Recent:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[tuple[str, ...], tuple[float, Any]] = {}

    async def get(
        self, session: AsyncSession, key: tuple[str, ...], load: Callable[[], Awaitable[T]]
    ) -> T:
        """The value read less than `ttl` seconds ago, else `load()`'s (None is not kept)."""
        full = (str(session.get_bind().engine.url), *key)
        now = time.monotonic()
        hit = self._items.get(full)
        if hit is not None and now - hit[0] < self.ttl:
            value: T = hit[1]
            return value
        loaded = await load()
        if loaded is not None:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[full] = (now, loaded)
        return loaded

    def forget(self, session: AsyncSession, key: tuple[str, ...]) -> None:
        """Drop one entry: the next `get` reads it again."""
        self._items.pop((str(session.get_bind().engine.url), *key), None)

    def clear(self) -> None:
        self._items.clear()

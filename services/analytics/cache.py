"""The figures' cache: a figure computed once per filter scope and served again while the projection has not
changed and it is younger than ``ANALYTICS_FIGURES_CACHE_S``; at most ``ANALYTICS_FIGURES_CACHE_SCOPES`` scopes
(least recently used first out).

A figure is a pure function of every summary in its scope (and of the time, for what is overdue), so computing it
costs O(ideas): at 20,000 ideas seconds, not milliseconds. Cached, a request costs one ``GET`` of the projection's
version and a dictionary look-up, however many ideas there are. What a cache cannot hide: the first request after
a change (or after the cache time) still pays the full cost; concurrent requests for the same scope then share one
computation instead of each making their own. The answers are never staler than the projection plus
``ANALYTICS_FIGURES_CACHE_S``: an entry is dropped as soon as the version changes (any summary written, a wipe).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Entry:
    version: str
    computed_at: float
    value: Any


class FigureCache:
    def __init__(self, *, max_age_s: float, max_scopes: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.max_scopes = max_scopes
        self.monotonic = monotonic
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._running: dict[tuple[Hashable, str], asyncio.Future[Any]] = {}
        self._generation = 0
        self.computed = 0
        """Figures computed (cache misses), for the tests and the bench."""

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0 and self.max_scopes > 0

    def clear(self) -> None:
        """Forget every figure (a new catalogue); one being computed now is not kept either."""
        self._entries.clear()
        self._running.clear()
        self._generation += 1

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, version: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of ``key`` if it was computed at this ``version`` and is young enough; otherwise
        ``compute()`` (one at a time per key and version: concurrent callers wait for the same one)."""
        if not self.enabled:
            self.computed += 1
            return await compute()
        entry = self._entries.get(key)
        if entry is not None:
            if entry.version == version and self.monotonic() - entry.computed_at < self.max_age_s:
                self._entries.move_to_end(key)
                return entry.value
            del self._entries[key]
        running = self._running.get((key, version))
        if running is None:
            running = asyncio.ensure_future(self._compute(key, version, compute))
            self._running[key, version] = running
            running.add_done_callback(lambda _: self._running.pop((key, version), None))
        return await asyncio.shield(running)

    async def _compute(self, key: Hashable, version: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        started, generation = self.monotonic(), self._generation
        self.computed += 1
        value = await compute()
        if generation != self._generation:
            return value
        self._entries[key] = _Entry(version, started, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_scopes:
            self._entries.popitem(last=False)
        return value

"""Idempotency keyed by event id: a redelivered event changes nothing a second time.

Usage in a handler: ``if await done.seen(event.id): return`` first, effects next, ``await done.mark(event.id)``
last (or add ``done.key(event.id)`` to the same Redis transaction as the effects).
"""

from __future__ import annotations

from redis.asyncio import Redis


class Idempotency:
    def __init__(self, redis: Redis, *, prefix: str, scope: str) -> None:
        self.redis = redis
        self._prefix = f"{prefix}:done:{scope}:"

    def key(self, event_id: str) -> str:
        return self._prefix + event_id

    async def seen(self, event_id: str) -> bool:
        return bool(await self.redis.exists(self.key(event_id)))

    async def mark(self, event_id: str) -> None:
        await self.redis.set(self.key(event_id), 1)

    async def claim(self, event_id: str) -> bool:
        """Mark and tell whether this call was the first (for effects that are themselves idempotent)."""
        return bool(await self.redis.set(self.key(event_id), 1, nx=True))

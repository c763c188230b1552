"""Idempotency keyed by event id: a redelivered event changes nothing a second time.

Usage in a handler: ``if await done.seen(event.id): return`` first, effects next, ``await done.mark(event.id)``
last (or add ``done.key(event.id)`` to the same Redis transaction as the effects).

The marks are effect keys: they expire after ``ttl_s`` (``EFFECT_KEY_TTL_S``, 30 days: shared/settings.py says why),
far beyond any redelivery of the event they mark, so that Redis does not keep one key per event for ever.
"""

from __future__ import annotations

from redis.asyncio import Redis

EFFECT_KEY_TTL_S = 30 * 86400
"""The default of the setting ``EFFECT_KEY_TTL_S`` (shared/settings.py): 30 days."""


_MARK_ALL = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'EX', ARGV[1])
end
return #KEYS
"""


class Idempotency:
    def __init__(self, redis: Redis, *, prefix: str, scope: str, ttl_s: int = EFFECT_KEY_TTL_S) -> None:
        self.redis = redis
        self._prefix = f"{prefix}:done:{scope}:"
        self.ttl_s = ttl_s  # marks expire after this (settings.effect_key_ttl_s: longer than any redelivery window)
        self._mark_all = redis.register_script(_MARK_ALL)

    def key(self, event_id: str) -> str:
        return self._prefix + event_id

    async def seen(self, event_id: str) -> bool:
        return bool(await self.redis.exists(self.key(event_id)))

    async def mark(self, event_id: str) -> None:
        await self.redis.set(self.key(event_id), 1, ex=self.ttl_s)

    async def mark_all(self, event_ids: list[str]) -> None:
        """Mark every event of a batch in one command (a script: one round trip, one command to encode)."""
        if event_ids:
            await self._mark_all(keys=[self.key(event_id) for event_id in event_ids], args=[self.ttl_s])

    async def claim(self, event_id: str) -> bool:
        """Mark and tell whether this call was the first (for effects that are themselves idempotent)."""
        return bool(await self.redis.set(self.key(event_id), 1, nx=True, ex=self.ttl_s))

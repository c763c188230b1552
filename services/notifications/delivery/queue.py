"""The retry queue in Redis: deliveries by id, due times in a sorted set, claimed with a lease."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from services.notifications.delivery.model import Delivery, without_address
from shared.idempotency import EFFECT_KEY_TTL_S


class Deliveries(Protocol):
    """What the handlers need of the queue: put a delivery in it, once; forget those to a person erased."""

    async def enqueue(self, delivery: Delivery, *, at: float | None = None) -> bool: ...

    async def drop_to(self, person: str) -> int: ...

    async def redact_by(self, person: str) -> int: ...

    async def drop_settled(self) -> int: ...


_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
  return 1
end
return 0
"""

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local jobs = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  local job = redis.call('HGET', KEYS[2], id)
  if job then table.insert(jobs, job) else redis.call('ZREM', KEYS[1], id) end
end
return jobs
"""


class DeliveryQueue:
    def __init__(self, redis: Redis, prefix: str, *, effect_ttl_s: int = EFFECT_KEY_TTL_S) -> None:
        self.redis = redis
        self.effect_ttl_s = effect_ttl_s  # delivered and given-up marks expire (EFFECT_KEY_TTL_S)
        self.prefix = f"{prefix}:notifications"
        self.jobs = f"{self.prefix}:deliveries"
        self.due = f"{self.prefix}:deliveries:due"
        self.wakeup = asyncio.Event()
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)

    def delivered_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivered:{delivery_id}"

    def settled_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:failed:{delivery_id}"

    async def enqueue(self, delivery: Delivery, *, at: float | None = None) -> bool:
        """Queue the delivery unless it was delivered, given up, or queued before. True when queued now."""
        keys = [self.delivered_key(delivery.id), self.settled_key(delivery.id), self.jobs, self.due]
        queued = bool(await self._enqueue(keys=keys, args=[delivery.id, delivery.to_json(), at or time.time()]))
        if queued:
            self.wakeup.set()
        return queued

    async def claim(self, now: float, limit: int, lease_s: float) -> list[Delivery]:
        raw = await self._claim(keys=[self.due, self.jobs], args=[now, limit, now + lease_s])
        return [Delivery.from_json(item) for item in raw]

    async def reschedule(self, delivery: Delivery, at: float) -> None:
        # In this order (one pipeline): a due entry always has its job.
        await asyncio.gather(
            self.redis.hset(self.jobs, delivery.id, delivery.to_json()), self.redis.zadd(self.due, {delivery.id: at})
        )

    async def is_delivered(self, delivery_id: str) -> bool:
        return bool(await self.redis.exists(self.delivered_key(delivery_id)))

    async def mark_delivered(self, delivery_id: str) -> None:
        await self.redis.set(self.delivered_key(delivery_id), 1, ex=self.effect_ttl_s)

    async def mark_given_up(self, delivery_id: str) -> None:
        await self.redis.set(self.settled_key(delivery_id), 1, ex=self.effect_ttl_s)

    async def complete(self, delivery_id: str) -> None:
        await asyncio.gather(self.redis.zrem(self.due, delivery_id), self.redis.hdel(self.jobs, delivery_id))

    async def drop_to(self, person: str) -> int:
        """Forget every delivery still to make to ``person`` (an erasure). One being sent right now is skipped by
        its sender, who finds no address. Returns how many were dropped."""
        dropped = []
        async for delivery_id, raw in self.redis.hscan_iter(self.jobs, count=500):
            try:
                recipient = json.loads(raw).get("recipient")
            except ValueError:
                continue
            if recipient == person:
                dropped.append(delivery_id)
        for start in range(0, len(dropped), 500):
            chunk = dropped[start : start + 500]
            await asyncio.gather(self.redis.zrem(self.due, *chunk), self.redis.hdel(self.jobs, *chunk))
        return len(dropped)

    async def drop_settled(self) -> int:
        """Forget queued deliveries whose outcome is on record (delivered or given up): the rebuild does it once
        it has settled the outcomes of notifications.sent, so nothing already told goes out again."""
        dropped = []
        async for delivery_id, _ in self.redis.hscan_iter(self.jobs, count=500):
            if await self.redis.exists(self.delivered_key(delivery_id), self.settled_key(delivery_id)):
                dropped.append(delivery_id)
        for start in range(0, len(dropped), 500):
            chunk = dropped[start : start + 500]
            await asyncio.gather(self.redis.zrem(self.due, *chunk), self.redis.hdel(self.jobs, *chunk))
        return len(dropped)

    async def redact_by(self, person: str) -> int:
        """Every delivery still to make that quotes ``person``'s words (an erased commenter) goes without them.
        Returns how many were rewritten."""
        rewritten = 0
        async for delivery_id, raw in self.redis.hscan_iter(self.jobs, count=500):
            try:
                delivery = Delivery.from_json(raw)
            except (ValueError, TypeError):
                continue
            if delivery.by == person:
                await self.redis.hset(self.jobs, delivery_id, delivery.redacted().to_json())
                rewritten += 1
        return rewritten

    async def remove_addresses(self, pseudonym: Callable[[str], str], unsubscribe_secret: str) -> int:
        """Rewrite the deliveries queued before people were pseudonyms without their addresses
        (:func:`without_address`); the rebuild does it. Returns how many were rewritten."""
        rewritten = 0
        async for delivery_id, raw in self.redis.hscan_iter(self.jobs, count=500):
            try:
                delivery = Delivery.from_json(raw)
            except (ValueError, TypeError):
                continue
            upgraded = without_address(delivery, pseudonym, unsubscribe_secret)
            if upgraded is not None:
                await self.redis.hset(self.jobs, delivery_id, upgraded.to_json())
                rewritten += 1
        return rewritten

    async def size(self) -> int:
        return int(await self.redis.zcard(self.due))

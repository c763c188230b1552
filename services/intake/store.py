"""Intake's state in Redis: what it must know to judge a write (each idea's state and organisations),
Idempotency-Keys, supports and rate limits. The idea records are rebuilt from the topics it consumes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from shared.events import IdeaState
from shared.redis_keys import delete_matching

# Compare-and-set of an idea's state: only one of two concurrent officers wins.
_MOVE = """
if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'state_time', ARGV[3])
  return 1
end
return 0
"""
# Apply a recorded state change unless a later one is already applied (events may be replayed).
_APPLY = """
local current = redis.call('HGET', KEYS[1], 'state_time')
if (not current) or current <= ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'state_time', ARGV[2])
  return 1
end
return 0
"""
# Routing places a submitted idea; a later routing (a re-route) replaces the organisations.
_ROUTE = """
local current = redis.call('HGET', KEYS[1], 'routed_time')
if (not current) or current <= ARGV[2] then
  redis.call('HSET', KEYS[1], 'organisations', ARGV[1], 'routed_time', ARGV[2])
end
redis.call('HSETNX', KEYS[1], 'state', 'routed')
redis.call('HSETNX', KEYS[1], 'state_time', ARGV[2])
if redis.call('HGET', KEYS[1], 'state') == 'submitted' then
  redis.call('HSET', KEYS[1], 'state', 'routed')
end
return 1
"""
# A submission is recorded once (both fields or neither), whoever sees it first: the request or the topic.
_SUBMITTED = """
if redis.call('HSETNX', KEYS[1], 'state', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'state_time', ARGV[2])
end
return 1
"""
# One more write of a client in this minute's window (the window expires after it).
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], 61)
end
return count
"""
# Single commands and scripts rather than MULTI blocks: they share round trips with the other requests'
# commands (shared.redis_pipelining), where a transaction takes a connection of its own.


def iso(moment: datetime) -> str:
    """One time format for every comparison in Redis (lexicographic order = time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class IdeaRecord:
    idea_id: str
    state: IdeaState
    organisations: frozenset[str]


class IntakeStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:intake"
        self._move = redis.register_script(_MOVE)
        self._apply = redis.register_script(_APPLY)
        self._route = redis.register_script(_ROUTE)
        self._submitted = redis.register_script(_SUBMITTED)
        self._hit = redis.register_script(_HIT)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- ideas -----------------------------------------------------------------------------------------------

    async def idea(self, idea_id: str) -> IdeaRecord | None:
        fields = await self.redis.hgetall(self._key("idea", idea_id))
        if not fields or "state" not in fields:
            return None
        return IdeaRecord(idea_id, IdeaState(fields["state"]), frozenset(json.loads(fields.get("organisations", "[]"))))

    async def record_submitted(self, idea_id: str, time_iso: str) -> None:
        await self._submitted(keys=[self._key("idea", idea_id)], args=[IdeaState.SUBMITTED.value, time_iso])

    async def record_routed(self, idea_id: str, organisations: list[str], time_iso: str) -> None:
        await self._route(keys=[self._key("idea", idea_id)], args=[json.dumps(sorted(organisations)), time_iso])

    async def record_state(self, idea_id: str, state: IdeaState, time_iso: str) -> None:
        await self._apply(keys=[self._key("idea", idea_id)], args=[state.value, time_iso])

    async def move(self, idea_id: str, expected: IdeaState, target: IdeaState, time_iso: str) -> bool:
        return bool(await self._move(keys=[self._key("idea", idea_id)], args=[expected.value, target.value, time_iso]))

    async def forget_ideas(self) -> int:
        """Delete every idea record and supporter set (before a rebuild; Idempotency-Keys and rate limits stay).
        Returns how many keys were deleted."""
        idea, supporters = (self._key(kind, "*") for kind in ("idea", "supporters"))
        return await delete_matching(self.redis, idea) + await delete_matching(self.redis, supporters)

    # --- supports -------------------------------------------------------------------------------------------

    async def add_support(self, idea_id: str, person: str) -> bool:
        return bool(await self.redis.sadd(self._key("supporters", idea_id), person))

    async def remove_support(self, idea_id: str, person: str) -> None:
        await self.redis.srem(self._key("supporters", idea_id), person)

    # --- Idempotency-Key ------------------------------------------------------------------------------------

    async def reserve(self, idempotency_key: str, fingerprint: str, ttl_s: int) -> tuple[bool, dict | None]:
        """Reserve the key for this request. Returns (True, None) for the first request; otherwise waits for
        the first one to finish and returns (False, its answer) — or (True, None) if the first one failed."""
        key = self._key("idempotency", hashlib.sha256(idempotency_key.encode()).hexdigest())
        pending = json.dumps({"status": "pending", "fingerprint": fingerprint})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if await self.redis.set(key, pending, nx=True, ex=ttl_s):
                return True, None
            raw = await self.redis.get(key)
            if raw is not None:
                stored = json.loads(raw)
                if stored["fingerprint"] != fingerprint:
                    raise IdempotencyMismatch()
                if stored["status"] == "done":
                    return False, stored["answer"]
            await asyncio.sleep(0.02)
        raise TimeoutError("the first request with this Idempotency-Key did not finish")

    async def complete(self, idempotency_key: str, fingerprint: str, answer: dict, ttl_s: int) -> None:
        key = self._key("idempotency", hashlib.sha256(idempotency_key.encode()).hexdigest())
        await self.redis.set(
            key, json.dumps({"status": "done", "fingerprint": fingerprint, "answer": answer}), ex=ttl_s
        )

    async def release(self, idempotency_key: str) -> None:
        await self.redis.delete(self._key("idempotency", hashlib.sha256(idempotency_key.encode()).hexdigest()))

    # --- rate limit -----------------------------------------------------------------------------------------

    async def hit(self, client: str, limit: int) -> int | None:
        """Count one write of ``client`` in the current minute; seconds to wait when over ``limit``."""
        now = time.time()
        window = int(now // 60)
        key = self._key("rate", client, str(window))
        count = int(await self._hit(keys=[key], args=[]))
        if count > limit:
            return max(1, int((window + 1) * 60 - now) + 1)
        return None


class IdempotencyMismatch(Exception):
    """The same Idempotency-Key was sent with a different request."""

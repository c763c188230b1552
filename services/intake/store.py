"""Intake's state in Redis: what it must know to judge a write (each idea's state and organisations),
Idempotency-Keys, supports and the mail door's counters. The idea records are rebuilt from the topics it consumes.

A person is their pseudonym here (``shared/sealing.py``), never an address or a user name: an idea's supporters are
pseudonyms, each with an index of the ideas they support (``supported-by:<pseudonym>``) and of the Idempotency-Key
records of their named ideas (``idempotency-by:<pseudonym>``), so that an erasure forgets them
(:meth:`IntakeStore.forget_person`). Idempotency-Key records are stored under a hash of (the sender's pseudonym,
the key); a mail sender's counter under a hash of their pseudonym.

Expiry: the idea records are state (rebuilt from the topics) and do not expire. Every effect key does, and outlives
any redelivery of what it guards: an Idempotency-Key's record and its idea's pointer ``INTAKE_IDEMPOTENCY_TTL_S``
(7 days, longer than a mail server retries), a pending attempt's lease ``2 x KAFKA_PUBLISH_TIMEOUT_S`` inside it,
an idea's supporters (and a person's index of them) :data:`SUPPORT_TTL_S` after the last support (the rebuild brings
them back from the topic), the mail counters one window + 1 s."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.intake.errors import IdempotencyPending
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
# An Idempotency-Key's record (a hash): the first request stores its fingerprint, the answer it will give (with a
# fresh idea id) and a short lease; a later one gets the answer once done, a refusal while the lease runs, or takes
# over the lease, and the same idea id, once it has run out (its holder crashed, or failed and released it).
# KEYS: the record, the idea's pointer to it, and (a named idea's) the person's index of their records.
# ARGV: fingerprint, answer (JSON), lease (ms), ttl (s), record key.
_RESERVE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease_until = string.format('%d', now_ms + tonumber(ARGV[3]))
local stored = redis.call('HMGET', KEYS[1], 'fingerprint', 'status', 'answer', 'lease_until')
if not stored[1] then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'status', 'pending', 'answer', ARGV[2],
             'lease_until', lease_until)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
  if KEYS[3] then
    redis.call('SADD', KEYS[3], ARGV[5])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
  return {'first', ARGV[2], 0}
end
if stored[1] ~= ARGV[1] then
  return {'mismatch', '', 0}
end
if stored[2] == 'done' then
  return {'done', stored[3], 0}
end
local left = tonumber(stored[4] or '0') - now_ms
if left > 0 then
  return {'pending', stored[3], left}
end
redis.call('HSET', KEYS[1], 'lease_until', lease_until)
return {'first', stored[3], 0}
"""
# Mark a record done (its idea is in Kafka), or end a failed attempt's lease; a record that expired stays away.
_SETTLE = """
if redis.call('HGET', KEYS[1], 'status') == 'pending' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""
# One person's support (their pseudonym), and the idea in the person's index; both expire SUPPORT_TTL_S after the
# last support. KEYS: the idea's supporters, the person's index. ARGV: pseudonym, ttl (s), idea id.
_SUPPORT = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return added
"""
# One more event of a counter in its window (the key expires one second after the window ends).
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
# An idea's supporters expire 400 days after its last support: longer than any redelivery (a repeated support
# carries the same event id anyway, and the rebuild restores them from the topic).
SUPPORT_TTL_S = 400 * 24 * 3600
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
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._support = redis.register_script(_SUPPORT)
        self._count = redis.register_script(_COUNT)

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
        """Delete every idea record, supporter set and person's index of supports (before a rebuild;
        Idempotency-Keys and rate limits stay). Returns how many keys were deleted."""
        deleted = 0
        for kind in ("idea", "supporters", "supported-by"):
            deleted += await delete_matching(self.redis, self._key(kind, "*"))
        return deleted

    # --- supports -------------------------------------------------------------------------------------------

    async def add_support(self, idea_id: str, pseudonym: str) -> bool:
        """Mark the person's (pseudonym's) support of the idea; False when it was marked already."""
        keys = [self._key("supporters", idea_id), self._key("supported-by", pseudonym)]
        return bool(await self._support(keys=keys, args=[pseudonym, SUPPORT_TTL_S, idea_id]))

    async def remove_support(self, idea_id: str, pseudonym: str) -> None:
        await self.redis.srem(self._key("supporters", idea_id), pseudonym)
        await self.redis.srem(self._key("supported-by", pseudonym), idea_id)

    # --- a person's erasure ---------------------------------------------------------------------------------

    async def forget_person(self, pseudonym: str) -> int:
        """Forget what intake holds about a person: their support markers (the counts downstream stay, as the
        events do) and the Idempotency-Key records of their named ideas. A repeat forgets nothing more. Returns
        how many entries were forgotten."""
        forgotten = 0
        index = self._key("supported-by", pseudonym)
        for idea_id in await self.redis.smembers(index):
            forgotten += await self.redis.srem(self._key("supporters", _text(idea_id)), pseudonym)
        records = self._key("idempotency-by", pseudonym)
        for record in await self.redis.smembers(records):
            record = _text(record)
            answer = await self.redis.hget(record, "answer")
            idea_id = json.loads(_text(answer)).get("idea_id") if answer else None
            if idea_id:
                await self.redis.delete(self._key("idempotency-of", idea_id))
            forgotten += await self.redis.delete(record)
        await self.redis.delete(index, records)
        return forgotten

    # --- Idempotency-Key ------------------------------------------------------------------------------------

    def _record(self, idempotency_key: str) -> str:
        return self._key("idempotency", hashlib.sha256(idempotency_key.encode()).hexdigest())

    async def reserve(
        self,
        idempotency_key: str,
        fingerprint: str,
        ttl_s: int,
        *,
        answer: dict | None = None,
        lease_s: float = 10.0,
        person: str | None = None,
    ) -> Reservation:
        """Reserve the key for this request, which offers ``answer`` (with a fresh idea id); ``person`` (the
        pseudonym of a named idea's submitter) indexes the record under the person, so their erasure forgets it
        (an anonymous idea's record is never linked to anyone). Returns
        ``Reservation(first=True, answer)`` when this request must publish: the offered answer, or the one an
        earlier attempt stored and did not finish (the same idea id, so its event id is the same too);
        ``first=False`` with the answer once an attempt finished. Raises :class:`IdempotencyMismatch` for another
        request under the key, :class:`IdempotencyPending` while another attempt holds the lease (``lease_s``).
        Never waits."""
        answer = answer or {}
        record = self._record(idempotency_key)
        pointer = self._key("idempotency-of", str(answer.get("idea_id", "")))
        keys = [record, pointer] + ([self._key("idempotency-by", person)] if person else [])
        status, stored, left_ms = await self._reserve(
            keys=keys,
            args=[fingerprint, json.dumps(answer), max(1, int(lease_s * 1000)), ttl_s, record],
        )
        status = status.decode() if isinstance(status, bytes) else status
        if status == "mismatch":
            raise IdempotencyMismatch()
        if status == "pending":
            raise IdempotencyPending(max(1, math.ceil(int(left_ms) / 1000)))
        return Reservation(first=status == "first", answer=json.loads(stored))

    async def complete(self, idempotency_key: str) -> None:
        """The attempt's idea is in Kafka: from now on the key answers with it (the record keeps its TTL)."""
        await self._settle(keys=[self._record(idempotency_key)], args=["status", "done"])

    async def release(self, idempotency_key: str) -> None:
        """The attempt failed: end its lease at once, so that a retry goes ahead with the same idea id."""
        await self._settle(keys=[self._record(idempotency_key)], args=["lease_until", "0"])

    async def settle(self, idea_id: str) -> bool:
        """The idea is in Kafka (its follower saw it): complete the Idempotency-Key record that offered it, if
        one is still pending (its attempt crashed, or Redis failed, after Kafka had acknowledged it)."""
        record = await self.redis.get(self._key("idempotency-of", idea_id))
        if record is None:
            return False
        record = record.decode() if isinstance(record, bytes) else record
        return bool(await self._settle(keys=[record], args=["status", "done"]))

    # --- the mail door's counters ---------------------------------------------------------------------------

    async def count(self, name: str, limit: int, window_s: int) -> int | None:
        """Count one event of ``name`` (hashed; a person is named by their pseudonym, never an address) in the
        current ``window_s``; seconds until the next window when that makes more than ``limit``."""
        now = time.time()
        window = int(now // window_s)
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        key = self._key("count", str(window_s), digest, str(window))
        if int(await self._count(keys=[key], args=[window_s + 1])) > limit:
            return max(1, math.ceil((window + 1) * window_s - now))
        return None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Reservation:
    """What :meth:`IntakeStore.reserve` decided: ``first`` - this request publishes ``answer``'s idea; otherwise
    ``answer`` is the finished attempt's."""

    first: bool
    answer: dict


class IdempotencyMismatch(Exception):
    """The same Idempotency-Key was sent with a different request."""

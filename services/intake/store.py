"""Intake's state in Redis: what it must know to judge a write (each idea's state, organisations, text, submitter's
pseudonym, challenge and assignees; the challenges), Idempotency-Keys, supports and the mail door's counters. The
idea records and challenges are rebuilt from the topics it consumes.

A person is their pseudonym here (``shared/sealing.py``), never an address or a user name: an idea's supporters are
pseudonyms, each with an index of the ideas they support (``supported-by:<pseudonym>``), of the Idempotency-Key
records of their named ideas (``idempotency-by:<pseudonym>``) and of the ideas they submitted
(``submitted-by:<pseudonym>``), so that an erasure forgets them (:meth:`IntakeStore.forget_person`).
Idempotency-Key records are stored under a hash of (the sender's pseudonym, the key); a mail sender's counter under
a hash of their pseudonym.

Expiry: the idea records are state (rebuilt from the topics) and do not expire. Every effect key does, and outlives
any redelivery of what it guards: an Idempotency-Key's record and its idea's pointer ``INTAKE_IDEMPOTENCY_TTL_S``
(7 days, longer than a mail server retries), a pending attempt's lease ``2 x KAFKA_PUBLISH_TIMEOUT_S`` inside it,
an idea's supporters (and a person's index of them) :data:`SUPPORT_TTL_S` after the last support (the rebuild brings
them back from the topic), the mail counters one window + 1 s."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.intake.errors import IdempotencyPending
from shared.events import ChallengeOpened, IdeaState
from shared.redis_keys import delete_matching

# Every change of an idea's text or state is numbered (KEYS[2], a counter a rebuild keeps) in a sorted set of the
# ideas by their last change (KEYS[3]), so that each replica's similar-ideas index catches up with what any
# replica or the follower recorded (:meth:`IntakeStore.changed_texts`).
_CHANGED = """
local function changed(idea_id)
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[2]), idea_id)
end
"""
# Compare-and-set of an idea's state: only one of two concurrent officers wins. ARGV: expected, target, time, id.
_MOVE = (
    _CHANGED
    + """
if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'state_time', ARGV[3])
  changed(ARGV[4])
  return 1
end
return 0
"""
)
# Apply a recorded state change unless a later one is already applied (events may be replayed).
_APPLY = (
    _CHANGED
    + """
local current = redis.call('HGET', KEYS[1], 'state_time')
if (not current) or current <= ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'state_time', ARGV[2])
  changed(ARGV[3])
  return 1
end
return 0
"""
)
# An idea's text: the submission's, replaced by each later edit (a replayed older one changes nothing).
# ARGV: title, description, time, id.
_TEXT = (
    _CHANGED
    + """
local current = redis.call('HGET', KEYS[1], 'text_time')
if (not current) or current <= ARGV[3] then
  redis.call('HSET', KEYS[1], 'title', ARGV[1], 'description', ARGV[2], 'text_time', ARGV[3])
  changed(ARGV[4])
  return 1
end
return 0
"""
)
# Who has the idea for one organisation ('' = nobody), unless a later assignment is already recorded.
# ARGV: organisation, assignee, time.
_ASSIGN = """
local current = redis.call('HGET', KEYS[1], 'assigned_time:' .. ARGV[1])
if (not current) or current <= ARGV[3] then
  redis.call('HSET', KEYS[1], 'assignee:' .. ARGV[1], ARGV[2], 'assigned_time:' .. ARGV[1], ARGV[3])
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
# A submission with its text in one round trip (the request's and the follower's): the state as _SUBMITTED, the
# text as _TEXT, the submitter's pseudonym (and the challenge) and, for a person, the idea in their index.
# KEYS: the idea, text-seq, text-changes[, submitted-by:<pseudonym>]. ARGV: state, time, title, description, id,
# submitter, challenge ('' for none).
_SUBMITTED_TEXT = (
    _CHANGED
    + """
if redis.call('HSETNX', KEYS[1], 'state', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'state_time', ARGV[2])
end
local current = redis.call('HGET', KEYS[1], 'text_time')
if (not current) or current <= ARGV[2] then
  redis.call('HSET', KEYS[1], 'title', ARGV[3], 'description', ARGV[4], 'text_time', ARGV[2])
  changed(ARGV[5])
end
redis.call('HSET', KEYS[1], 'submitter', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'challenge', ARGV[7])
end
if KEYS[4] then
  redis.call('SADD', KEYS[4], ARGV[5])
end
return 1
"""
)
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
TEXTS_AT_ONCE = 500
"""Ideas whose texts are read in one turn (their commands share round trips: shared.redis_pipelining)."""
# Single commands and scripts rather than MULTI blocks: they share round trips with the other requests'
# commands (shared.redis_pipelining), where a transaction takes a connection of its own.


def iso(moment: datetime) -> str:
    """One time format for every comparison in Redis (lexicographic order = time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


ANONYMOUS = "-"
"""The ``submitter`` of an idea that is nobody's: anonymous, or its submitter was erased."""


@dataclass(frozen=True)
class IdeaRecord:
    """What intake knows of an idea to judge a write about it. ``submitter`` is the submitter's pseudonym,
    :data:`ANONYMOUS` for an anonymous idea (or one whose submitter was erased), None while the submission itself
    has not been seen (the record was started by a later topic). ``assignees``: organisation -> officer id, or None
    for an organisation whose idea was unassigned."""

    idea_id: str
    state: IdeaState
    organisations: frozenset[str]
    title: str = ""
    description: str = ""
    submitter: str | None = None
    challenge_id: str | None = None
    merged_into: str | None = None
    assignees: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, idea_id: str, fields: Mapping[str, str]) -> IdeaRecord | None:
        """The record of an idea's hash as Redis holds it; None without a state (nothing known to act on)."""
        if not fields or "state" not in fields:
            return None
        return cls(
            idea_id,
            IdeaState(fields["state"]),
            frozenset(json.loads(fields.get("organisations", "[]"))),
            title=fields.get("title", ""),
            description=fields.get("description", ""),
            submitter=fields.get("submitter"),
            challenge_id=fields.get("challenge") or None,
            merged_into=fields.get("merged_into") or None,
            assignees={
                name.removeprefix("assignee:"): value or None
                for name, value in fields.items()
                if name.startswith("assignee:")
            },
        )


@dataclass(frozen=True)
class IdeaText:
    """An idea's current text and state, as the similar-ideas index reads it."""

    idea_id: str
    state: IdeaState | None
    title: str
    description: str


class IntakeStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:intake"
        self._move = redis.register_script(_MOVE)
        self._apply = redis.register_script(_APPLY)
        self._route = redis.register_script(_ROUTE)
        self._submitted = redis.register_script(_SUBMITTED)
        self._submitted_text = redis.register_script(_SUBMITTED_TEXT)
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._support = redis.register_script(_SUPPORT)
        self._count = redis.register_script(_COUNT)
        self._text = redis.register_script(_TEXT)
        self._assign = redis.register_script(_ASSIGN)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- ideas -----------------------------------------------------------------------------------------------

    def _changes(self) -> list[str]:
        return [self._key("text-seq"), self._key("text-changes")]

    async def idea(self, idea_id: str) -> IdeaRecord | None:
        return IdeaRecord.of(idea_id, _texts(await self.redis.hgetall(self._key("idea", idea_id))))

    async def record_submitted(
        self,
        idea_id: str,
        time_iso: str,
        *,
        title: str | None = None,
        description: str = "",
        submitter: str | None = None,
        challenge_id: str | None = None,
    ) -> None:
        """A submitted idea: its state (once), and with ``title`` its text (unless an edit is recorded), its
        submitter's pseudonym (:data:`ANONYMOUS` for nobody's), indexed under the person so that their erasure
        unlinks it, and the challenge it answers."""
        key = self._key("idea", idea_id)
        if title is None:
            await self._submitted(keys=[key], args=[IdeaState.SUBMITTED.value, time_iso])
            return
        submitter = submitter or ANONYMOUS
        keys = [key, *self._changes()]
        if submitter != ANONYMOUS:
            keys.append(self._key("submitted-by", submitter))
        args = [IdeaState.SUBMITTED.value, time_iso, title, description, idea_id, submitter, challenge_id or ""]
        await self._submitted_text(keys=keys, args=args)  # one round trip (it was four)

    async def record_text(self, idea_id: str, title: str, description: str, time_iso: str) -> bool:
        """The idea's text as of ``time_iso``; False when a later text is already recorded."""
        keys = [self._key("idea", idea_id), *self._changes()]
        return bool(await self._text(keys=keys, args=[title, description, time_iso, idea_id]))

    async def record_routed(self, idea_id: str, organisations: list[str], time_iso: str) -> None:
        await self._route(keys=[self._key("idea", idea_id)], args=[json.dumps(sorted(organisations)), time_iso])

    async def record_state(self, idea_id: str, state: IdeaState, time_iso: str) -> None:
        keys = [self._key("idea", idea_id), *self._changes()]
        await self._apply(keys=keys, args=[state.value, time_iso, idea_id])

    async def move(self, idea_id: str, expected: IdeaState, target: IdeaState, time_iso: str) -> bool:
        keys = [self._key("idea", idea_id), *self._changes()]
        return bool(await self._move(keys=keys, args=[expected.value, target.value, time_iso, idea_id]))

    async def record_assignment(self, idea_id: str, organisation: str, assignee: str | None, time_iso: str) -> bool:
        """Who has the idea for ``organisation`` (None: nobody) as of ``time_iso``; False when a later assignment
        is already recorded."""
        key = self._key("idea", idea_id)
        return bool(await self._assign(keys=[key], args=[organisation, assignee or "", time_iso]))

    async def record_merge(self, idea_id: str, merged_into: str) -> int:
        """The idea was merged into ``merged_into``: its supporters' markers carry over to the target (a person who
        supported both is still one), and a support of the merged idea recorded later marks the target too
        (:meth:`supports_of_merged`). Returns how many markers were carried over."""
        await self.redis.hset(self._key("idea", idea_id), "merged_into", merged_into)
        carried = 0
        for pseudonym in await self.redis.smembers(self._key("supporters", idea_id)):
            carried += await self.add_support(merged_into, _text(pseudonym))
        return carried

    async def changed_texts(self, after: int) -> tuple[int, list[str]]:
        """The ideas whose text or state changed after change number ``after``, and the last change number."""
        changes = await self.redis.zrangebyscore(self._key("text-changes"), f"({after}", "+inf", withscores=True)
        if not changes:
            return after, []
        return max(after, *(int(score) for _, score in changes)), [_text(idea_id) for idea_id, _ in changes]

    async def texts(self, idea_ids: Iterable[str]) -> list[IdeaText]:
        """Each idea's current text and state (``state`` None for one no longer known), read many at a time (the
        whole index is read so when a replica starts)."""
        ids = list(idea_ids)
        found: list[IdeaText] = []
        for start in range(0, len(ids), TEXTS_AT_ONCE):
            chunk = ids[start : start + TEXTS_AT_ONCE]
            rows = await asyncio.gather(
                *(self.redis.hmget(self._key("idea", i), ["state", "title", "description"]) for i in chunk)
            )
            for idea_id, (state, title, description) in zip(chunk, rows, strict=True):
                found.append(
                    IdeaText(
                        idea_id,
                        IdeaState(_text(state)) if state else None,
                        _text(title) if title else "",
                        _text(description) if description else "",
                    )
                )
        return found

    async def forget_ideas(self) -> int:
        """Delete every idea record, supporter set, person's index of supports and of ideas, and the challenges
        (before a rebuild; Idempotency-Keys, rate limits and the change counter stay). Returns how many keys
        were deleted."""
        deleted = 0
        for kind in ("idea", "supporters", "supported-by", "submitted-by", "challenge"):
            deleted += await delete_matching(self.redis, self._key(kind, "*"))
        deleted += await self.redis.delete(self._key("challenges"), self._key("text-changes"))
        return deleted

    # --- challenges -----------------------------------------------------------------------------------------

    async def record_challenge(self, challenge: ChallengeOpened) -> None:
        """A challenge as it was opened (it never changes: it closes by the clock)."""
        await self.redis.set(self._key("challenge", challenge.challenge_id), challenge.model_dump_json())
        await self.redis.sadd(self._key("challenges"), challenge.challenge_id)

    async def challenge(self, challenge_id: str) -> ChallengeOpened | None:
        stored = await self.redis.get(self._key("challenge", challenge_id))
        return ChallengeOpened.model_validate_json(stored) if stored else None

    async def challenges(self) -> list[ChallengeOpened]:
        """Every challenge intake knows, open or closed."""
        found = []
        for challenge_id in await self.redis.smembers(self._key("challenges")):
            challenge = await self.challenge(_text(challenge_id))
            if challenge is not None:
                found.append(challenge)
        return found

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
        events do), the Idempotency-Key records of their named ideas, and the link from their ideas to them (no
        one may edit or withdraw those any more). A repeat forgets nothing more. Returns how many entries were
        forgotten."""
        forgotten = 0
        submitted = self._key("submitted-by", pseudonym)
        for idea_id in await self.redis.smembers(submitted):  # their ideas are nobody's now: none may be edited
            forgotten += await self._unlink(_text(idea_id), pseudonym)
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
        await self.redis.delete(index, records, submitted)
        return forgotten

    async def _unlink(self, idea_id: str, pseudonym: str) -> int:
        key = self._key("idea", idea_id)
        if await self.redis.hget(key, "submitter") in (pseudonym, pseudonym.encode()):
            await self.redis.hset(key, "submitter", ANONYMOUS)
            return 1
        return 0

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

    async def reserved(self, idempotency_key: str) -> bool:
        """Whether a request under the key was made (finished, or still in flight)."""
        return bool(await self.redis.exists(self._record(idempotency_key)))

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


def _texts(fields: Mapping[str | bytes, str | bytes]) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in fields.items()}


@dataclass(frozen=True)
class Reservation:
    """What :meth:`IntakeStore.reserve` decided: ``first`` - this request publishes ``answer``'s idea; otherwise
    ``answer`` is the finished attempt's."""

    first: bool
    answer: dict


class IdempotencyMismatch(Exception):
    """The same Idempotency-Key was sent with a different request."""

"""Analytics' projections in Redis. Everything here can be rebuilt by replaying the topics.

Keys, all under ``<prefix>:analytics:``:

- ``idea:<id>:events``  hash event id -> timeline entry (JSON). ``HSETNX``: a redelivered event changes nothing.
- ``idea:<id>:summary`` the idea's summary (JSON), a pure function of the events hash.
- ``idea:<id>:supporters``, ``idea:<id>:followers`` sets of the pseudonyms of the people who support and
  follow the idea (what the summary counts), so that a new supporter is counted without reading the others.
- ``ideas``             sorted set of idea ids by creation time (the inbox, newest first).
- ``idx:<org|unit|area|state>:<value>`` sets of idea ids: ideas per organisation, unit, area and state.
- ``idx:submitter:<pseudonym>`` set of the named ideas of one submitter (``PersonRef.pseudonym``, the HMAC of
  the address with the platform's pepper): "my ideas" without keeping anyone's address here. Only ideas whose
  submitter's data key was live when they were projected, and never after the person's erasure.
- ``person:<pseudonym>:ideas`` set of the ideas whose events hold a sealed value of that person (the submitter's
  name and address, a comment's text): what an erasure of the person goes through (:meth:`ProjectionStore.
  forget_person`), then deletes.
- ``version``           a number that changes with every summary written (and on a wipe): the figures' cache
  (``cache.py``) is valid only while it is unchanged.
- ``changes``           sorted set of idea ids by the ``version`` their summary was last written at: what a
  replica's in-memory indexes (``mirror.py``: search, similar ideas) read to catch up, whichever replica wrote.
- ``epoch``             changes on every wipe: a replica that sees another epoch reloads its indexes whole.
- ``challenge:<id>``    a challenge as opened (``ChallengeOpened``, JSON; the newest event of the challenge wins);
  ``challenges`` sorted set of challenge ids by opening time. A challenge's ideas are ``idx:challenge:<id>``.

No name, e-mail address or comment text is stored in the clear: only the sealed values of the events (readable
only while their person's key exists) and pseudonyms. None of them has a TTL: they are the projection itself
(rebuildable state). Analytics keeps no separate duplicate
marks: the events hash is both the timeline and the guard against a redelivered event.

Recording new events of an idea costs one of two things:

- *absorb* (engagement and notifications, ``domain.COUNTED_KINDS``, once the idea's submission is projected):
  the stored summary plus the new entries (comments and notifications counted, people added to the sets),
  bounded by the batch and the summary, never by the idea's history: support spam on one idea costs O(1) per
  event.
- *refold* (a submission, a routing, a status change, any event before the submission, a projection made before
  the sets existed): the summary is computed from all the idea's events and the indexes moved to match, O(events
  of the idea). These events are few per idea (the lifecycle's steps).

Either way the write is a compare-and-set in a script (the summary, the number of events and the sizes of the
sets as they were read; otherwise it is computed again), and the new entries are added by the same script, so an
entry is in the events hash only once it is in the summary too (a crash cannot leave one behind) and concurrent
records of one idea cannot interleave. The result is the full fold of all the idea's events, whatever the order.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from redis.asyncio import Redis

from services.analytics.domain import (
    COUNTED_KINDS,
    IdeaSummary,
    absorb,
    absorbs,
    parse_time,
    people,
    scrubbed,
    sealed_owners,
    summarise,
)
from shared.redis_keys import delete_matching

# Add entries and their people to an idea and write its summary and indexes, unless an event was added, the
# summary written or a set grown since they were read (then: 0).
# KEYS: events, summary, supporters, followers, version, ideas, changes, then the index sets to leave (ARGV[7] of
# them) and the index sets to be in (none when ARGV[6] is empty: an absorb moves no index).
# ARGV: events count, summary as read ('' if none), supporters count, followers count, new summary, creation
# score ('' for an absorb), idea id, indexes to leave, entries (n, then id and JSON each), supporters (n, keys),
# followers (n, keys).
_WRITE = """
if redis.call('HLEN', KEYS[1]) ~= tonumber(ARGV[1])
  or (redis.call('GET', KEYS[2]) or '') ~= ARGV[2]
  or redis.call('SCARD', KEYS[3]) ~= tonumber(ARGV[3])
  or redis.call('SCARD', KEYS[4]) ~= tonumber(ARGV[4]) then
  return 0
end
local i = 10
for _ = 1, tonumber(ARGV[9]) do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for set = 3, 4 do
  local n = tonumber(ARGV[i])
  for j = i + 1, i + n do
    redis.call('SADD', KEYS[set], ARGV[j])
  end
  i = i + n + 1
end
redis.call('SET', KEYS[2], ARGV[5])
local version = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[7], version, ARGV[7])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[6], ARGV[6], ARGV[7])
  local leave = tonumber(ARGV[8])
  for k = 8, 7 + leave do
    redis.call('SREM', KEYS[k], ARGV[7])
  end
  for k = 8 + leave, #KEYS do
    redis.call('SADD', KEYS[k], ARGV[7])
  end
end
return 1
"""


class Projections(Protocol):
    """What the handlers and the read model use of the projections: :class:`ProjectionStore` in the service,
    ``tests/fakes/analytics.py`` (the same interface over dicts) in the unit tests."""

    async def record(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> int: ...

    async def entries(self, idea_id: str) -> list[dict[str, Any]]: ...

    async def idea_ids(
        self,
        *,
        organisation: str | None = None,
        unit: str | None = None,
        area: str | None = None,
        state: str | None = None,
        challenge: str | None = None,
        assignee: str | None = None,
        unassigned: str | None = None,
    ) -> list[str]: ...

    async def index_sizes(self, dimension: str, values: list[str]) -> dict[str, int]: ...

    async def submitted_by(self, pseudonym: str) -> list[str]: ...

    async def forget_person(self, pseudonym: str, *, keep_key: str | None = None) -> int: ...

    async def version(self) -> str: ...

    async def summaries(self, idea_ids: list[str] | None = None, **narrow: str | None) -> list[IdeaSummary]: ...

    async def summary(self, idea_id: str) -> IdeaSummary | None: ...

    async def summary_texts(self, idea_ids: list[str]) -> list[str]: ...

    async def people_of(self, idea_id: str) -> tuple[set[str], set[str]]: ...

    async def changes_since(self, seen: int) -> Changes: ...

    async def record_challenge(self, challenge: dict[str, Any]) -> bool: ...

    async def challenge(self, challenge_id: str) -> dict[str, Any] | None: ...

    async def challenges(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Changes:
    """The ideas whose summary was written after version ``seen`` (:meth:`ProjectionStore.changes_since`)."""

    epoch: str
    """Changes on every wipe: a reader that knew another epoch must start again from version 0."""
    idea_ids: list[str]
    version: int
    """The highest version among them (``seen`` if none): where the next call starts."""


def _unkept(people: set[str], kept: list[Any]) -> set[str]:
    return {person for person, member in zip(people, kept, strict=True) if not member}


@dataclass(frozen=True)
class _State:
    """An idea's projection as read before a fold: the compare-and-set checks it is unchanged at the write."""

    document: str
    """The summary as stored (JSON text), '' if none."""
    events: int
    supporter_count: int
    follower_count: int
    known: list[bool]
    """Per entry of the batch: already in the events hash."""
    supporters_after: int
    followers_after: int
    """The sizes of the sets once the batch's people are added."""

    @cached_property
    def summary(self) -> IdeaSummary | None:
        return IdeaSummary.from_json(json.loads(self.document)) if self.document else None


class ProjectionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:analytics"
        self._write = redis.register_script(_WRITE)
        self.refolded = 0
        """Entries read and folded by full refolds since the store was made: the work that grows with an idea's
        history (absorbed entries are not counted). For the tests of the bound."""

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _events(self, idea_id: str) -> str:
        return self._key("idea", idea_id, "events")

    def _summary(self, idea_id: str) -> str:
        return self._key("idea", idea_id, "summary")

    def _people(self, idea_id: str, kind: str) -> str:
        return self._key("idea", idea_id, kind)

    def _index(self, dimension: str, value: str) -> str:
        return self._key("idx", dimension, value)

    def _person(self, pseudonym: str) -> str:
        return self._key("person", pseudonym, "ideas")

    # --- writes ---

    async def record(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> int:
        """Add events to the idea's timeline and fold them into its summary (absorbed or refolded, see the
        module's notes). Returns how many were new. Entries already there change nothing, except that a batch
        with a lifecycle event refolds the idea even then (a projection left half-done by older code completes)."""
        unique = list({entry["event_id"]: entry for entry in entries}.values())
        counted_only = all(entry["kind"] in COUNTED_KINDS for entry in unique)
        await self._remember_people([(idea_id, entry) for entry in unique])
        while True:
            state = await self._read(idea_id, unique)
            new = [entry for entry, known in zip(unique, state.known, strict=True) if not known]
            if counted_only and absorbs(state.summary, state.supporter_count, state.follower_count):
                if not new:
                    return 0
                written = await self._absorb(idea_id, state, new)
            else:
                written = await self._refold(idea_id, state, new)
            if written:
                return len(new)

    async def add_entries(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add many entries without folding them (the rebuild refolds each idea once at the end)."""
        entries = list(entries)
        await self._remember_people(entries)
        async with self.redis.pipeline(transaction=False) as pipe:
            count = 0
            for idea_id, entry in entries:
                pipe.hsetnx(self._events(idea_id), entry["event_id"], json.dumps(entry))
                count += 1
            results = await pipe.execute() if count else []
        return sum(1 for r in results if r)

    async def _remember_people(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Which ideas hold sealed values of whom (before the values are added: an erasure finds every one)."""
        held: dict[str, set[str]] = {}
        for idea_id, entry in entries:
            for owner in sealed_owners(entry):
                held.setdefault(owner, set()).add(idea_id)
        if held:
            async with self.redis.pipeline(transaction=False) as pipe:
                for owner, ideas in held.items():
                    pipe.sadd(self._person(owner), *ideas)
                await pipe.execute()

    async def forget_person(self, pseudonym: str, *, keep_key: str | None = None) -> int:
        """An erasure: drop every sealed value of the person from the ideas' events (but those under ``keep_key``,
        the key of a person who came back since), refold those ideas (the submitter erased, so out of "my
        ideas"; every count as it was), and forget which ideas held them. Returns the ideas changed. A repeat
        changes nothing."""
        changed = 0
        kept: list[str] = []
        for idea_id in sorted(await self.redis.smembers(self._person(pseudonym))):
            raw = await self.redis.hgetall(self._events(idea_id))
            rewritten: dict[str, str] = {}
            still_held = False
            for event_id, value in raw.items():
                entry = json.loads(value)
                after = scrubbed(entry, pseudonym, keep_key=keep_key)
                if after is not entry:
                    rewritten[event_id] = json.dumps(after)
                still_held = still_held or pseudonym in sealed_owners(after)
            if rewritten:
                await self.redis.hset(self._events(idea_id), mapping=rewritten)
                await self.refresh(idea_id)
                changed += 1
            if still_held:
                kept.append(idea_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._person(pseudonym))
            if kept:
                pipe.sadd(self._person(pseudonym), *kept)
            else:  # no idea of theirs is theirs any more (the refolds took them out one by one already)
                pipe.delete(self._index("submitter", pseudonym))
            await pipe.execute()
        return changed

    async def refresh(self, idea_id: str) -> IdeaSummary | None:
        """Refold the idea's summary from all its events and move its index memberships to match (the rebuild
        does this once per idea). None if the idea has no events."""
        while True:
            state = await self._read(idea_id, [])
            if not state.events:
                return None
            if summary := await self._refold(idea_id, state, []):
                return summary

    async def write_summaries(self, summaries: Iterable[IdeaSummary]) -> int:
        """Write summaries and their indexes straight, without events (seeding a test prefix or a benchmark with
        many ideas, in pipelines). Returns how many were written."""
        summaries = list(summaries)
        version = int(await self.redis.incrby(self._key("version"), len(summaries) + 1))
        count = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for number, summary in enumerate(summaries, start=version - len(summaries)):
                pipe.set(self._summary(summary.idea_id), json.dumps(summary.to_json(), sort_keys=True))
                pipe.zadd(self._key("ideas"), {summary.idea_id: parse_time(summary.created_at).timestamp()})
                pipe.zadd(self._key("changes"), {summary.idea_id: number})
                for dimension, value in summary.index_keys():
                    pipe.sadd(self._index(dimension, value), summary.idea_id)
                count += 1
                if count % 1000 == 0:
                    await pipe.execute()
            await pipe.execute()
        return count

    async def _read(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> _State:
        """What a fold starts from, in one round trip: the stored summary, the number of events and of people,
        and which of ``entries`` and of their people are already there."""
        supporters, followers = people(entries)
        supporters_key, followers_key = self._people(idea_id, "supporters"), self._people(idea_id, "followers")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._summary(idea_id))
            pipe.hlen(self._events(idea_id))
            pipe.scard(supporters_key)
            pipe.scard(followers_key)
            if entries:
                pipe.hmget(self._events(idea_id), [entry["event_id"] for entry in entries])
            if supporters:
                pipe.smismember(supporters_key, list(supporters))
            if followers:
                pipe.smismember(followers_key, list(followers))
            replies = list(await pipe.execute())
        document, events, supporter_count, follower_count = replies[:4]
        rest = replies[4:]
        known = [value is not None for value in rest.pop(0)] if entries else []
        new_supporters = _unkept(supporters, rest.pop(0)) if supporters else set()
        new_followers = _unkept(followers, rest.pop(0)) if followers else set()
        return _State(
            document or "",
            events,
            supporter_count,
            follower_count,
            known,
            supporter_count + len(new_supporters),
            follower_count + len(new_followers),
        )

    async def _absorb(self, idea_id: str, state: _State, new: list[dict[str, Any]]) -> IdeaSummary | None:
        summary = absorb(state.summary, new, supporters=state.supporters_after, followers=state.followers_after)
        return await self._cas(idea_id, state, summary, new, people(new), created="", leave=[], enter=[])

    async def _refold(self, idea_id: str, state: _State, new: list[dict[str, Any]]) -> IdeaSummary | None:
        raw = await self.redis.hvals(self._events(idea_id)) if state.events else []
        if len(raw) != state.events:
            return None  # an event was added since the read: read again
        everything = [json.loads(value) for value in raw] + new
        if not everything:
            return None
        self.refolded += len(everything)
        summary = summarise(idea_id, everything)
        supporters, followers = people(everything)
        if len(supporters) == state.supporter_count and len(followers) == state.follower_count:
            supporters, followers = people(new)  # the sets hold the others already (they only hold these)
        old = state.summary.index_keys() if state.summary else set()
        new_keys = summary.index_keys()
        return await self._cas(
            idea_id,
            state,
            summary,
            new,
            (supporters, followers),
            created=str(parse_time(summary.created_at).timestamp()),
            leave=[self._index(d, v) for d, v in old - new_keys],
            enter=[self._index(d, v) for d, v in new_keys],
        )

    async def _cas(
        self,
        idea_id: str,
        state: _State,
        summary: IdeaSummary,
        new: list[dict[str, Any]],
        people_to_add: tuple[set[str], set[str]],
        *,
        created: str,
        leave: list[str],
        enter: list[str],
    ) -> IdeaSummary | None:
        supporters, followers = people_to_add
        keys = [
            self._events(idea_id),
            self._summary(idea_id),
            self._people(idea_id, "supporters"),
            self._people(idea_id, "followers"),
            self._key("version"),
            self._key("ideas"),
            self._key("changes"),
            *leave,
            *enter,
        ]
        document = json.dumps(summary.to_json(), sort_keys=True)
        args: list[Any] = [state.events, state.document, state.supporter_count, state.follower_count, document]
        args += [created, idea_id, len(leave), len(new)]
        for entry in new:
            args += [entry["event_id"], json.dumps(entry)]
        args += [len(supporters), *sorted(supporters), len(followers), *sorted(followers)]
        return summary if await self._write(keys=keys, args=args) else None

    async def wipe(self) -> int:
        """Delete every analytics key under the prefix (before a rebuild). Returns how many were deleted. The
        version starts again from the clock, never from a value a cached figure may carry."""
        deleted = await delete_matching(self.redis, f"{self.prefix}:*")
        await self.redis.set(self._key("version"), time.time_ns())
        await self.redis.set(self._key("epoch"), uuid.uuid4().hex)
        return deleted

    # --- challenges ---

    async def record_challenge(self, challenge: dict[str, Any]) -> bool:
        """Keep a challenge as opened (``domain``-free JSON: the event's data with its ``event_id`` and ``time``).
        The newest event of a challenge wins (by time, then id); an older or repeated one changes nothing. Returns
        whether it was written."""
        key = self._key("challenge", challenge["challenge_id"])
        stored = await self.redis.get(key)
        if stored is not None:
            known = json.loads(stored)
            if (parse_time(known["time"]), known["event_id"]) >= (parse_time(challenge["time"]), challenge["event_id"]):
                return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(challenge, sort_keys=True))
            opened = parse_time(challenge["opens_at"]).timestamp()
            pipe.zadd(self._key("challenges"), {challenge["challenge_id"]: opened})
            pipe.incr(self._key("version"))
            await pipe.execute()
        return True

    async def challenge(self, challenge_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._key("challenge", challenge_id))
        return json.loads(raw) if raw else None

    async def challenges(self) -> list[dict[str, Any]]:
        """Every challenge, newest (by opening time) first."""
        ids = await self.redis.zrevrange(self._key("challenges"), 0, -1)
        if not ids:
            return []
        raw = await self.redis.mget([self._key("challenge", i) for i in ids])
        return [json.loads(value) for value in raw if value]

    # --- reads ---

    async def entries(self, idea_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hvals(self._events(idea_id))
        return [json.loads(value) for value in raw]

    async def idea_ids(
        self,
        *,
        organisation: str | None = None,
        unit: str | None = None,
        area: str | None = None,
        state: str | None = None,
        challenge: str | None = None,
        assignee: str | None = None,
        unassigned: str | None = None,
    ) -> list[str]:
        """Idea ids, newest first, narrowed by the indexes: routed to ``organisation`` (and ``unit``), in
        ``area``, in ``state``, answering ``challenge``, assigned to the officer ``assignee``, and without an
        assignee for the organisation ``unassigned`` (``domain.ANY``: for any organisation)."""
        wanted = [
            (dimension, value)
            for dimension, value in (
                ("org", organisation),
                ("unit", unit),
                ("area", area),
                ("state", state),
                ("challenge", challenge),
                ("assignee", assignee),
            )
            if value
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(self._key("ideas"), 0, -1)
            if wanted:
                pipe.sinter([self._index(d, v) for d, v in wanted])
            if unassigned:
                pipe.smembers(self._index("assigned", unassigned))
            replies = list(await pipe.execute())
        ordered = replies.pop(0)
        members = replies.pop(0) if wanted else None
        excluded = replies.pop(0) if unassigned else set()
        return [i for i in ordered if (members is None or i in members) and i not in excluded]

    async def index_sizes(self, dimension: str, values: list[str]) -> dict[str, int]:
        """How many ideas are in each of these indexes (e.g. the ideas of each challenge)."""
        if not values:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for value in values:
                pipe.scard(self._index(dimension, value))
            sizes = await pipe.execute()
        return dict(zip(values, sizes, strict=True))

    async def submitted_by(self, pseudonym: str) -> list[str]:
        """The ids of the named ideas whose submitter has this pseudonym, newest first."""
        members = await self.redis.smembers(self._index("submitter", pseudonym))
        if not members:
            return []
        scores = await self.redis.zmscore(self._key("ideas"), list(members))
        ranked = [(score, idea_id) for idea_id, score in zip(members, scores, strict=True) if score is not None]
        return [idea_id for _, idea_id in sorted(ranked, reverse=True)]

    async def version(self) -> str:
        """Changes whenever a summary is written or the projection wiped (the figures' cache checks it)."""
        return await self.redis.get(self._key("version")) or ""

    async def summaries(self, idea_ids: list[str] | None = None, **narrow: str | None) -> list[IdeaSummary]:
        if idea_ids is None:
            idea_ids = await self.idea_ids(**narrow)
        found: list[IdeaSummary] = []
        for start in range(0, len(idea_ids), 500):
            chunk = idea_ids[start : start + 500]
            for raw in await self.redis.mget([self._summary(i) for i in chunk]):
                if raw:
                    found.append(IdeaSummary.from_json(json.loads(raw)))
        return found

    async def summary_texts(self, idea_ids: list[str]) -> list[str]:
        """The stored summaries of these ideas as JSON text (unparsed: the mirror parses them in a worker thread)."""
        if not idea_ids:
            return []
        return [raw for raw in await self.redis.mget([self._summary(i) for i in idea_ids]) if raw]

    async def summary(self, idea_id: str) -> IdeaSummary | None:
        raw = await self.redis.get(self._summary(idea_id))
        return IdeaSummary.from_json(json.loads(raw)) if raw else None

    async def people_of(self, idea_id: str) -> tuple[set[str], set[str]]:
        """The pseudonyms of the idea's supporters and followers (what a merge carries over)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(self._people(idea_id, "supporters"))
            pipe.smembers(self._people(idea_id, "followers"))
            supporters, followers = await pipe.execute()
        return set(supporters), set(followers)

    async def changes_since(self, seen: int) -> Changes:
        """The ideas whose summaries were written after version ``seen``, oldest change first, in one round trip
        (from nothing, ``seen == 0``: first every idea of a projection made before ``changes`` existed is put in
        it, :meth:`_note_unchanged`)."""
        if seen == 0:
            await self._note_unchanged()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key("epoch"))
            pipe.zrangebyscore(self._key("changes"), f"({seen}", "+inf", withscores=True)
            epoch, changed = await pipe.execute()
        version = max((int(score) for _, score in changed), default=seen)
        return Changes(epoch or "", [idea_id for idea_id, _ in changed], version)

    async def _note_unchanged(self) -> None:
        """A projection made by older code has ideas that no ``changes`` entry names (their summaries were written
        before it existed): give them all one new version, so that the replicas' indexes load them too. Nothing
        to do once every idea is there (two ``ZCARD``); concurrent replicas doing it at once change nothing more
        (``NX``)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._key("ideas"))
            pipe.zcard(self._key("changes"))
            ideas, noted = await pipe.execute()
        if noted >= ideas:
            return
        version = int(await self.redis.incr(self._key("version")))
        ids = await self.redis.zrange(self._key("ideas"), 0, -1)
        for start in range(0, len(ids), 1000):
            await self.redis.zadd(self._key("changes"), {i: version for i in ids[start : start + 1000]}, nx=True)

    async def counts(self) -> dict[str, int]:
        """How much the projection holds (printed by the rebuild)."""
        ideas = await self.redis.zcard(self._key("ideas"))
        events = 0
        async for key in self.redis.scan_iter(match=self._key("idea", "*", "events"), count=1000):
            events += await self.redis.hlen(key)
        return {"ideas": ideas, "events": events}

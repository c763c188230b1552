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

A consumed batch is recorded whole (:meth:`ProjectionStore.record_ideas`): one script reads the state of every
idea of the batch (and the events of those that refold), one script call writes every idea's compare-and-set;
an idea whose write finds its state changed is read and written again.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

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

# The scripts take an idea's keys from the store's prefix (ARGV[1], ``<prefix>:analytics``) and its id, and their
# arguments for each idea as one JSON array: one argument per idea instead of one per key, id and person (packing
# each argument is what a batch cost most in redis-py). Redis is used standalone (no cluster): a script may name
# keys it builds.

# For each idea: add entries and their people to it and write its summary and indexes, unless an event was added,
# the summary written or a set grown since they were read (then: 0 for that idea, 1 if written).
# KEYS: version, ideas, changes. ARGV[2..]: per idea [idea id, events count, summary as read ('' if none),
# supporters count, followers count, new summary, creation score ('' for an absorb: no index moves), index keys to
# leave, index keys to be in, entries ([event id, JSON] each), supporters to add, followers to add].
_WRITE = """
local out = {}
for n = 2, #ARGV do
  local w = cjson.decode(ARGV[n])
  local id = w[1]
  local base = ARGV[1] .. ':idea:' .. id .. ':'
  local events, summary = base .. 'events', base .. 'summary'
  local supporters, followers = base .. 'supporters', base .. 'followers'
  if redis.call('HLEN', events) ~= w[2]
    or (redis.call('GET', summary) or '') ~= w[3]
    or redis.call('SCARD', supporters) ~= w[4]
    or redis.call('SCARD', followers) ~= w[5] then
    out[n - 1] = 0
  else
    for _, entry in ipairs(w[10]) do
      redis.call('HSETNX', events, entry[1], entry[2])
    end
    for _, person in ipairs(w[11]) do
      redis.call('SADD', supporters, person)
    end
    for _, person in ipairs(w[12]) do
      redis.call('SADD', followers, person)
    end
    redis.call('SET', summary, w[6])
    local version = redis.call('INCR', KEYS[1])
    redis.call('ZADD', KEYS[3], version, id)
    if w[7] ~= '' then
      redis.call('ZADD', KEYS[2], w[7], id)
      for _, key in ipairs(w[8]) do
        redis.call('SREM', key, id)
      end
      for _, key in ipairs(w[9]) do
        redis.call('SADD', key, id)
      end
    end
    out[n - 1] = 1
  end
end
return out
"""

# Read what the folds of several ideas start from, in one command (:meth:`ProjectionStore._read_many`).
# ARGV[2..]: per idea [idea id, whether to read all its events, entry ids, supporters, followers asked about].
# Returns per idea: the summary (or nil), the number of events, of supporters and of followers, whether each entry
# id is there (its JSON or nil), whether each supporter and each follower is there (1 or 0), and all the events'
# JSON (if asked; else an empty array).
_READ = """
local function asked(command, key, items)  -- in parts: unpack has a limit
  local result = {}
  for i = 1, #items, 1000 do
    for _, value in ipairs(redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))) do
      result[#result + 1] = value
    end
  end
  return result
end
local out = {}
for n = 2, #ARGV do
  local r = cjson.decode(ARGV[n])
  local base = ARGV[1] .. ':idea:' .. r[1] .. ':'
  local events, supporters, followers = base .. 'events', base .. 'supporters', base .. 'followers'
  local everything = {}
  if r[2] then everything = redis.call('HVALS', events) end
  out[n - 1] = {
    redis.call('GET', base .. 'summary'), redis.call('HLEN', events), redis.call('SCARD', supporters),
    redis.call('SCARD', followers), asked('HMGET', events, r[3]), asked('SMISMEMBER', supporters, r[4]),
    asked('SMISMEMBER', followers, r[5]), everything
  }
end
return out
"""


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""The scripts' arguments: UTF-8 as it is (Lua's ``cjson`` passes it through unchanged), only JSON's own escapes."""


class Projections(Protocol):
    """What the handlers and the read model use of the projections: :class:`ProjectionStore` in the service,
    ``tests/fakes/analytics.py`` (the same interface over dicts) in the unit tests."""

    async def record(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> int: ...

    async def record_ideas(self, ideas: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, int]: ...

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


def _unique(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries without repeats (by event id; the last of a repeated event wins)."""
    return list({entry["event_id"]: entry for entry in entries}.values())


def _counted_only(entries: Iterable[dict[str, Any]]) -> bool:
    """Whether the entries may be absorbed (:data:`domain.COUNTED_KINDS`, no lifecycle event)."""
    return all(entry["kind"] in COUNTED_KINDS for entry in entries)


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
    raw: list[str] | None = None
    """All the idea's events (JSON), when read for a refold."""

    @cached_property
    def summary(self) -> IdeaSummary | None:
        return IdeaSummary.from_json(json.loads(self.document)) if self.document else None


class ProjectionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:analytics"
        self._scripts: dict[str, str] = {}
        """The scripts' texts by their SHA-1 (what :meth:`_scripted` loads if Redis lost them)."""
        self._write_sha = self._script(_WRITE)
        self._read_sha = self._script(_READ)
        self.refolded = 0
        """Entries read and folded by full refolds since the store was made: the work that grows with an idea's
        history (absorbed entries are not counted). For the tests of the bound."""

    def _script(self, text: str) -> str:
        sha = hashlib.sha1(text.encode()).hexdigest()
        self._scripts[sha] = text
        return sha

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
        return (await self.record_ideas({idea_id: entries})).get(idea_id, 0)

    async def record_ideas(self, ideas: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, int]:
        """:meth:`record` for many ideas at once (a consumed batch), in two round trips whatever their number: one
        script call reads every idea's state (and the events of those that refold), one writes every idea's
        compare-and-set. An idea whose write finds its state changed meanwhile (or whose counted entries turn out
        to need a refold) is read and written again, with the others in that case. Returns, per idea, how many of
        its entries were new."""
        pending = {idea_id: _unique(entries) for idea_id, entries in ideas.items() if entries}
        added = {idea_id: 0 for idea_id in ideas}
        refolds = {idea_id for idea_id, entries in pending.items() if not _counted_only(entries)}
        remember = [(idea_id, entry) for idea_id, entries in pending.items() for entry in entries]
        while pending:
            states = await self._read_many(pending, with_events=refolds, remember=remember)
            remember = []  # once, before any value is added: an erasure finds every idea
            writes: list[tuple[str, int, str | None]] = []  # idea, its new entries, the write (None: nothing)
            for idea_id, entries in pending.items():
                state = states[idea_id]
                new = [entry for entry, known in zip(entries, state.known, strict=True) if not known]
                if idea_id not in refolds:
                    if absorbs(state.summary, state.supporter_count, state.follower_count):
                        writes.append((idea_id, len(new), self._absorbed(idea_id, state, new) if new else None))
                        continue
                    refolds.add(idea_id)  # counted entries that need the idea's events: read them next round
                    continue
                if (refolded := self._refolded(idea_id, state, new)) is not None:
                    writes.append((idea_id, len(new), refolded[1]))
            results = iter(await self._write_many([write for _, _, write in writes if write is not None]))
            for idea_id, count, write in writes:
                if write is None or next(results):
                    added[idea_id] = count
                    del pending[idea_id]
        return added

    async def add_entries(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add many entries without folding them (the rebuild refolds each idea once at the end)."""
        entries = list(entries)
        async with self.redis.pipeline(transaction=False) as pipe:
            self._remember_people(pipe, entries)
            await pipe.execute()
            count = 0
            for idea_id, entry in entries:
                pipe.hsetnx(self._events(idea_id), entry["event_id"], json.dumps(entry))
                count += 1
            results = await pipe.execute() if count else []
        return sum(1 for r in results if r)

    def _remember_people(self, pipe: Pipeline, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Which ideas hold sealed values of whom (before the values are added: an erasure finds every one), as
        commands of ``pipe``. Returns how many."""
        held: dict[str, set[str]] = {}
        for idea_id, entry in entries:
            for owner in sealed_owners(entry):
                held.setdefault(owner, set()).add(idea_id)
        for owner, ideas in held.items():
            pipe.sadd(self._person(owner), *ideas)
        return len(held)

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
            state = (await self._read_many({idea_id: []}, with_events={idea_id}))[idea_id]
            if not state.events:
                return None
            refolded = self._refolded(idea_id, state, [])
            if refolded is not None and (await self._write_many([refolded[1]]))[0]:
                return refolded[0]

    async def write_summaries(self, summaries: Iterable[IdeaSummary]) -> int:
        """Write summaries and their indexes straight, without events (seeding a test prefix or a benchmark with
        many ideas, in pipelines). Returns how many were written."""
        summaries = list(summaries)
        version = int(await self.redis.incrby(self._key("version"), len(summaries) + 1))
        count = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for number, summary in enumerate(summaries, start=version - len(summaries)):
                pipe.set(self._summary(summary.idea_id), summary.to_document())
                pipe.zadd(self._key("ideas"), {summary.idea_id: parse_time(summary.created_at).timestamp()})
                pipe.zadd(self._key("changes"), {summary.idea_id: number})
                for dimension, value in summary.index_keys():
                    pipe.sadd(self._index(dimension, value), summary.idea_id)
                count += 1
                if count % 1000 == 0:
                    await pipe.execute()
            await pipe.execute()
        return count

    async def _read_many(
        self,
        ideas: Mapping[str, Sequence[dict[str, Any]]],
        *,
        with_events: Container[str] = (),
        remember: Iterable[tuple[str, dict[str, Any]]] = (),
    ) -> dict[str, _State]:
        """What the folds of these ideas start from, in one round trip and one command (``_READ``, a consistent
        view): each stored summary, the number of events and of people, which of the ideas' ``entries`` and of
        their people are already there, and all the events of the ideas in ``with_events``. First, in the same
        round trip, who holds sealed values in ``remember``'s entries (:meth:`_remember_people`)."""
        reads = []
        args: list[str] = [self.prefix]
        for idea_id, entries in ideas.items():
            supporters, followers = (list(group) for group in people(entries))
            whole = idea_id in with_events
            args.append(_JSON([idea_id, whole, [entry["event_id"] for entry in entries], supporters, followers]))
            reads.append((idea_id, whole))

        def commands(pipe: Pipeline) -> None:
            self._remember_people(pipe, remember)
            pipe.evalsha(self._read_sha, 0, *args)

        replies = (await self._scripted(commands))[-1]
        states = {}
        for (idea_id, whole), reply in zip(reads, replies, strict=True):
            document, events, supporter_count, follower_count, known, kept_supporters, kept_followers, raw = reply
            new_supporters = sum(1 for kept in kept_supporters if not kept)
            new_followers = sum(1 for kept in kept_followers if not kept)
            states[idea_id] = _State(
                document or "",
                events,
                supporter_count,
                follower_count,
                [value is not None for value in known],
                supporter_count + new_supporters,
                follower_count + new_followers,
                raw if whole else None,
            )
        return states

    def _absorbed(self, idea_id: str, state: _State, new: list[dict[str, Any]]) -> str:
        """The compare-and-set that absorbs counted entries (:func:`domain.absorb`)."""
        assert state.summary is not None
        summary = absorb(state.summary, new, supporters=state.supporters_after, followers=state.followers_after)
        return self._cas(idea_id, state, summary, new, people(new), created="", leave=[], enter=[])

    def _refolded(self, idea_id: str, state: _State, new: list[dict[str, Any]]) -> tuple[IdeaSummary, str] | None:
        """The compare-and-set that refolds the idea from all its events (read with the state) and the new ones;
        None if an event was added between the two reads, or there is nothing to fold (read again)."""
        raw = state.raw or []
        if len(raw) != state.events:
            return None
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
        write = self._cas(
            idea_id,
            state,
            summary,
            new,
            (supporters, followers),
            created=str(parse_time(summary.created_at).timestamp()),
            leave=[self._index(d, v) for d, v in old - new_keys],
            enter=[self._index(d, v) for d, v in new_keys],
        )
        return summary, write

    def _cas(
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
    ) -> str:
        """The write script's argument (``_WRITE``) for one idea."""
        supporters, followers = people_to_add
        return _JSON(
            [
                idea_id,
                state.events,
                state.document,
                state.supporter_count,
                state.follower_count,
                summary.to_document(),
                created,
                leave,
                enter,
                [[entry["event_id"], json.dumps(entry)] for entry in new],
                sorted(supporters),
                sorted(followers),
            ]
        )

    async def _write_many(self, writes: Sequence[str]) -> list[bool]:
        """Run the write script (``_WRITE``) for the ideas of ``writes`` (:meth:`_cas`), in one command. Whether
        each was written."""
        if not writes:
            return []

        def commands(pipe: Pipeline) -> None:
            keys = (self._key("version"), self._key("ideas"), self._key("changes"))
            pipe.evalsha(self._write_sha, len(keys), *keys, self.prefix, *writes)

        return [bool(result) for result in (await self._scripted(commands))[-1]]

    async def _scripted(self, commands: Callable[[Pipeline], None]) -> list[Any]:
        """The replies of the commands ``commands`` puts in a pipeline, which call the store's scripts by their
        hash: if Redis does not know them (restarted, its scripts flushed), they are loaded and the pipeline sent
        again (a script Redis does not know did not run; the pipeline's other commands are idempotent). The first
        error is raised."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                commands(pipe)
                replies = await pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(reply, NoScriptError) for reply in replies):
                for text in self._scripts.values():
                    await self.redis.script_load(text)
                continue
            break
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

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

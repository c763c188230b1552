"""Analytics' projections in Redis. Everything here can be rebuilt by replaying the topics.

Keys, all under ``<prefix>:analytics:``:

- ``idea:<id>:events``  hash event id -> timeline entry (JSON). ``HSETNX``: a redelivered event changes nothing.
- ``idea:<id>:summary`` the idea's summary (JSON), a pure function of the events hash.
- ``ideas``             sorted set of idea ids by creation time (the inbox, newest first).
- ``idx:<org|unit|area|state>:<value>`` sets of idea ids: ideas per organisation, unit, area and state.
- ``idx:submitter:<key>`` set of the named ideas of one submitter, by the pseudonymous key of the lower-cased
  e-mail address (``domain.submitter_key``): "my ideas" without keeping anyone's address here.

After new events the idea is *refreshed*: its summary is recomputed from all its events and the indexes
moved to match, written only if no event was added meanwhile (a compare-and-set in a script), so concurrent
events of one idea cannot interleave.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis

from services.analytics.domain import IdeaSummary, parse_time, summarise
from shared.redis_keys import delete_matching

# Write an idea's summary and indexes, unless an event was added since they were computed (then: 0).
# KEYS: events, summary, ideas, the index sets to leave (ARGV[5] of them), the index sets to be in.
_WRITE_SUMMARY = """
if redis.call('HLEN', KEYS[1]) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
local leave = tonumber(ARGV[5])
for i = 4, 3 + leave do
  redis.call('SREM', KEYS[i], ARGV[4])
end
for i = 4 + leave, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[4])
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
    ) -> list[str]: ...

    async def submitted_by(self, key: str) -> list[str]: ...

    async def summaries(self, idea_ids: list[str] | None = None, **narrow: str | None) -> list[IdeaSummary]: ...


class ProjectionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:analytics"
        self._write = redis.register_script(_WRITE_SUMMARY)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _events(self, idea_id: str) -> str:
        return self._key("idea", idea_id, "events")

    def _summary(self, idea_id: str) -> str:
        return self._key("idea", idea_id, "summary")

    def _index(self, dimension: str, value: str) -> str:
        return self._key("idx", dimension, value)

    # --- writes ---

    async def record(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> int:
        """Add events to the idea's timeline and refresh the idea once. Returns how many were new. The refresh
        runs even when none was: after a crash between the two, the redelivery completes it."""
        events_key = self._events(idea_id)
        added = await asyncio.gather(
            *(self.redis.hsetnx(events_key, entry["event_id"], json.dumps(entry)) for entry in entries)
        )
        await self.refresh(idea_id)
        return sum(1 for new in added if new)

    async def add_entries(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add many entries without refreshing (the rebuild refreshes each idea once at the end)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            count = 0
            for idea_id, entry in entries:
                pipe.hsetnx(self._events(idea_id), entry["event_id"], json.dumps(entry))
                count += 1
            results = await pipe.execute() if count else []
        return sum(1 for r in results if r)

    async def refresh(self, idea_id: str) -> IdeaSummary | None:
        """Recompute the idea's summary from its events and move its index memberships to match. The write
        happens only if no event was added since the read (compare-and-set on the number of events, in a
        script); otherwise it is computed again. Plain commands and a script rather than WATCH/MULTI, so that
        the refreshes of a batch's ideas share round trips (``shared.redis_pipelining``)."""
        events_key, summary_key = self._events(idea_id), self._summary(idea_id)
        while True:
            raw, old_raw = await asyncio.gather(self.redis.hvals(events_key), self.redis.get(summary_key))
            if not raw:
                return None
            summary = summarise(idea_id, [json.loads(value) for value in raw])
            old = IdeaSummary.from_json(json.loads(old_raw)).index_keys() if old_raw else set()
            new = summary.index_keys()
            gone = [self._index(dimension, value) for dimension, value in old - new]
            keys = [events_key, summary_key, self._key("ideas"), *gone, *(self._index(d, v) for d, v in new)]
            created = parse_time(summary.created_at).timestamp()
            document = json.dumps(summary.to_json(), sort_keys=True)
            if await self._write(keys=keys, args=[len(raw), document, created, idea_id, len(gone)]):
                return summary

    async def wipe(self) -> int:
        """Delete every analytics key under the prefix (before a rebuild). Returns how many were deleted."""
        return await delete_matching(self.redis, f"{self.prefix}:*")

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
    ) -> list[str]:
        """Idea ids, newest first, narrowed by the indexes."""
        ordered = await self.redis.zrevrange(self._key("ideas"), 0, -1)
        sets = []
        if organisation:
            sets.append(self._index("org", organisation))
        if unit:
            sets.append(self._index("unit", unit))
        if area:
            sets.append(self._index("area", area))
        if state:
            sets.append(self._index("state", state))
        if not sets:
            return list(ordered)
        members = await self.redis.sinter(sets)
        return [idea_id for idea_id in ordered if idea_id in members]

    async def submitted_by(self, key: str) -> list[str]:
        """The ids of the named ideas whose submitter has this pseudonymous key, newest first."""
        members = await self.redis.smembers(self._index("submitter", key))
        if not members:
            return []
        scores = await self.redis.zmscore(self._key("ideas"), list(members))
        ranked = [(score, idea_id) for idea_id, score in zip(members, scores, strict=True) if score is not None]
        return [idea_id for _, idea_id in sorted(ranked, reverse=True)]

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

    async def counts(self) -> dict[str, int]:
        """How much the projection holds (printed by the rebuild)."""
        ideas = await self.redis.zcard(self._key("ideas"))
        events = 0
        async for key in self.redis.scan_iter(match=self._key("idea", "*", "events"), count=1000):
            events += await self.redis.hlen(key)
        return {"ideas": ideas, "events": events}

"""Analytics' projections in Redis. Everything here can be rebuilt by replaying the topics.

Keys, all under ``<prefix>:analytics:``:

- ``idea:<id>:events``  hash event id -> timeline entry (JSON). ``HSETNX``: a redelivered event changes nothing.
- ``idea:<id>:summary`` the idea's summary (JSON), a pure function of the events hash.
- ``ideas``             sorted set of idea ids by creation time (the inbox, newest first).
- ``idx:<org|unit|area|state>:<value>`` sets of idea ids: ideas per organisation, unit, area and state.

After new events the idea is *refreshed*: its summary is recomputed from all its events and the indexes
moved to match, in one optimistic transaction (``WATCH``), so concurrent events of one idea cannot interleave.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from services.analytics.domain import IdeaSummary, parse_time, summarise


class ProjectionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:analytics"

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
        """Add events to the idea's timeline (one round trip) and refresh the idea once. Returns how many were
        new. The refresh runs even when none was: after a crash between the two, the redelivery completes it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.hsetnx(self._events(idea_id), entry["event_id"], json.dumps(entry))
            added = await pipe.execute()
        await self.refresh(idea_id)
        return sum(1 for new in added if new)

    async def add_entries(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add many entries without refreshing (the replay refreshes each idea once at the end)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            count = 0
            for idea_id, entry in entries:
                pipe.hsetnx(self._events(idea_id), entry["event_id"], json.dumps(entry))
                count += 1
            results = await pipe.execute() if count else []
        return sum(1 for r in results if r)

    async def refresh(self, idea_id: str) -> IdeaSummary | None:
        """Recompute the idea's summary from its events and move its index memberships to match."""
        events_key, summary_key = self._events(idea_id), self._summary(idea_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(events_key, summary_key)
                    raw = await pipe.hvals(events_key)
                    if not raw:
                        await pipe.reset()
                        return None
                    old_raw = await pipe.get(summary_key)
                    summary = summarise(idea_id, [json.loads(value) for value in raw])
                    old = IdeaSummary.from_json(json.loads(old_raw)).index_keys() if old_raw else set()
                    new = summary.index_keys()
                    pipe.multi()
                    pipe.set(summary_key, json.dumps(summary.to_json(), sort_keys=True))
                    pipe.zadd(self._key("ideas"), {idea_id: parse_time(summary.created_at).timestamp()})
                    for dimension, value in old - new:
                        pipe.srem(self._index(dimension, value), idea_id)
                    for dimension, value in new:
                        pipe.sadd(self._index(dimension, value), idea_id)
                    await pipe.execute()
                    return summary
                except WatchError:
                    continue

    async def wipe(self) -> int:
        """Delete every analytics key under the prefix (before a replay). Returns how many were deleted."""
        deleted = 0
        batch: list[str] = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await self.redis.delete(*batch)
                batch = []
        if batch:
            deleted += await self.redis.delete(*batch)
        return deleted

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
        """How much the projection holds (printed by the replay)."""
        ideas = await self.redis.zcard(self._key("ideas"))
        events = 0
        async for key in self.redis.scan_iter(match=self._key("idea", "*", "events"), count=1000):
            events += await self.redis.hlen(key)
        return {"ideas": ideas, "events": events}

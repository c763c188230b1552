"""Analytics' projections in Redis. Everything here can be rebuilt by replaying the topics."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis


class ProjectionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:analytics"

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def record(self, idea_id: str, entry: dict[str, Any]) -> bool:
        """Add one event to the idea's timeline. Keyed by event id: a second delivery changes nothing."""
        added = await self.redis.hsetnx(self._key("idea", idea_id, "events"), entry["event_id"], json.dumps(entry))
        return bool(added)

    async def entries(self, idea_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hvals(self._key("idea", idea_id, "events"))
        return [json.loads(value) for value in raw]

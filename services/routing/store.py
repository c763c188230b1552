"""Routing's state in Redis: the text of ideas (to learn from re-routes), which ideas were re-routed, the
learned feedback, and which events were handled (keyed by event id). All but the last can be rebuilt from the
topics (``python -m services.routing.rebuild``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from shared.idempotency import Idempotency
from shared.redis_keys import delete_matching


class RoutingStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:routing"
        self.done = Idempotency(redis, prefix=prefix, scope="routing")

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def remember_text(self, idea_id: str, title: str, description: str) -> None:
        await self.redis.hset(self._key("idea", idea_id), mapping={"title": title, "description": description})

    async def arrive(
        self, idea_id: str, title: str, description: str, *, event_id: str
    ) -> tuple[bool, dict[str, Any] | None, bool]:
        """A submission arrives, in one round trip (shared with other events'): remember its text, and tell
        whether its event ``event_id`` was already handled, the re-route held for it, and whether the
        innovation office re-routed it."""
        done, _, held, rerouted = await asyncio.gather(
            self.redis.exists(self.done.key(event_id)),
            self.redis.hset(self._key("idea", idea_id), mapping={"title": title, "description": description}),
            self.redis.hget(self._key("pending-feedback"), idea_id),
            self.redis.hexists(self._key("idea", idea_id), "rerouted"),
        )
        return bool(done), json.loads(held) if held else None, bool(rerouted)

    async def handled(self, event_id: str) -> bool:
        """Whether the event was handled already (a redelivery)."""
        return await self.done.seen(event_id)

    async def mark_handled(self, event_id: str) -> None:
        await self.done.mark(event_id)

    async def text(self, idea_id: str) -> tuple[str, str] | None:
        fields = await self.redis.hgetall(self._key("idea", idea_id))
        return (fields["title"], fields.get("description", "")) if "title" in fields else None

    async def mark_rerouted(self, idea_id: str) -> None:
        await self.redis.hset(self._key("idea", idea_id), "rerouted", "1")

    async def hold_feedback(self, idea_id: str, entry: dict[str, Any]) -> None:
        """A re-route whose idea text is not known yet: learnt when the submission arrives."""
        await self.redis.hset(self._key("pending-feedback"), idea_id, json.dumps(entry))

    async def save_feedback(self, idea_id: str, entry: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key("feedback"), idea_id, json.dumps(entry))
            pipe.hdel(self._key("pending-feedback"), idea_id)
            await pipe.execute()

    async def feedback_entries(self) -> list[dict[str, Any]]:
        """Every learned re-route, oldest first."""
        entries = [json.loads(raw) for raw in await self.redis.hvals(self._key("feedback"))]
        return sorted(entries, key=lambda e: (e["time"], e["idea_id"]))

    async def feedback_count(self) -> int:
        return await self.redis.hlen(self._key("feedback"))

    async def clear(self) -> None:
        await delete_matching(self.redis, f"{self.prefix}:*")

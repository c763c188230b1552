"""Routing's state in Redis: the text of ideas (to learn from re-routes), which ideas were re-routed, the
learned feedback, and which events were handled (keyed by event id). All but the last can be rebuilt from the
topics (``python -m services.routing.rebuild``).

What expires and what does not:

- ``done:routing:<event id>`` (events handled) are effect keys: they expire after ``EFFECT_KEY_TTL_S`` (30 days),
  far beyond any redelivery.
- ``routing:idea:<idea id>`` (an idea's text, at most what intake accepts, and its re-routed mark) is kept only to
  react to a later re-route of the idea: it expires :data:`IDEA_TEXT_TTL_S` after its last write. A re-route that
  comes later still is published and applied as ever, without the title, and learnt if the idea is submitted again
  (a rebuild learns it from the topics).
- ``routing:feedback`` (what was learnt from re-routes) is state, the router's memory: kept.
  ``routing:pending-feedback`` (re-routes whose submission has not arrived yet) is kept too: one small field per
  such idea, removed when the submission arrives (a hash's fields cannot expire on Redis before 7.4).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from shared.idempotency import EFFECT_KEY_TTL_S, Idempotency
from shared.language import bounded
from shared.redis_keys import delete_matching

IDEA_TEXT_TTL_S = 400 * 86400
"""How long an idea's text is kept after its last write (about 13 months): ideas are re-routed within days or
weeks of their submission; a year covers a slow assessment, a pilot season and the summer in between."""


class RoutingStore:
    def __init__(self, redis: Redis, prefix: str, *, effect_ttl_s: int = EFFECT_KEY_TTL_S) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:routing"
        self.done = Idempotency(redis, prefix=prefix, scope="routing", ttl_s=effect_ttl_s)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _write_idea(self, idea_id: str, mapping: dict[str, str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key("idea", idea_id), mapping=mapping)
            pipe.expire(self._key("idea", idea_id), IDEA_TEXT_TTL_S)
            await pipe.execute()

    async def remember_text(
        self, idea_id: str, title: str, description: str, hints: dict[str, list[str]] | None = None
    ) -> None:
        """The rebuild's record of a submission: its text and hints (an edit read later replaces the text)."""
        title, description = bounded(title, description)
        mapping = {"title": title, "description": description, "submitted": "1", "hints": json.dumps(hints or {})}
        await self._write_idea(idea_id, mapping)

    async def arrive(
        self, idea_id: str, title: str, description: str, *, event_id: str, hints: dict[str, list[str]] | None = None
    ) -> tuple[bool, dict[str, Any] | None, bool, tuple[str, str] | None]:
        """A submission arrives, in one round trip (shared with other events'): remember its text and the
        submitter's hints, and tell whether its event ``event_id`` was already handled, the re-route held for it,
        whether the innovation office re-routed it, and the text of an edit that overtook it (the text to route:
        ideas.edited.v1 is another topic, read by another consumer). (On the services' auto-pipelined client the
        commands travel in this order, so the text's TTL is set after it is written.)"""
        title, description = bounded(title, description)
        key = self._key("idea", idea_id)
        mapping = {"submitted": "1", "hints": json.dumps(hints or {})}
        done, _, _, _, _, held, rerouted, edited = await asyncio.gather(
            self.redis.exists(self.done.key(event_id)),
            self.redis.hsetnx(key, "title", title),  # an edit that came first keeps its text
            self.redis.hsetnx(key, "description", description),
            self.redis.hset(key, mapping=mapping),
            self.redis.expire(key, IDEA_TEXT_TTL_S),
            self.redis.hget(self._key("pending-feedback"), idea_id),
            self.redis.hexists(key, "rerouted"),
            self.redis.hmget(key, "edited", "title", "description"),
        )
        overtaken = (edited[1] or "", edited[2] or "") if edited[0] else None
        return bool(done), json.loads(held) if held else None, bool(rerouted), overtaken

    async def edit(self, idea_id: str, title: str, description: str) -> tuple[bool, dict[str, list[str]], bool]:
        """The submitter corrected the idea's text: remember it (marked edited), and tell whether the submission
        was seen already, its hints, and whether the innovation office re-routed it."""
        title, description = bounded(title, description)
        key = self._key("idea", idea_id)
        _, _, fields = await asyncio.gather(
            self.redis.hset(key, mapping={"title": title, "description": description, "edited": "1"}),
            self.redis.expire(key, IDEA_TEXT_TTL_S),
            self.redis.hmget(key, "submitted", "hints", "rerouted"),
        )
        return bool(fields[0]), json.loads(fields[1]) if fields[1] else {}, bool(fields[2])

    async def handled(self, event_id: str) -> bool:
        """Whether the event was handled already (a redelivery)."""
        return await self.done.seen(event_id)

    async def mark_handled(self, event_id: str) -> None:
        await self.done.mark(event_id)

    async def text(self, idea_id: str) -> tuple[str, str] | None:
        fields = await self.redis.hgetall(self._key("idea", idea_id))
        return (fields["title"], fields.get("description", "")) if "title" in fields else None

    async def mark_rerouted(self, idea_id: str) -> None:
        await self._write_idea(idea_id, {"rerouted": "1"})

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

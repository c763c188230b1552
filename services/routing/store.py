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

_ARRIVE = """
-- One submission arrives (KEYS: its event's done key, the idea's hash, the pending re-routes). Remember its text
-- (an edit that came first keeps its own), the hints, the TTL; return whether the event was handled, the re-route
-- held for it, whether it was re-routed, and the text of an edit that overtook it.
local done = redis.call('EXISTS', KEYS[1])
redis.call('HSETNX', KEYS[2], 'title', ARGV[1])
redis.call('HSETNX', KEYS[2], 'description', ARGV[2])
redis.call('HSET', KEYS[2], 'submitted', '1', 'hints', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local held = redis.call('HGET', KEYS[3], ARGV[5])
local rerouted = redis.call('HEXISTS', KEYS[2], 'rerouted')
local edited = redis.call('HMGET', KEYS[2], 'edited', 'title', 'description')
return {done, held or '', rerouted, edited[1] or '', edited[2] or '', edited[3] or ''}
"""

Arrival = tuple[bool, dict[str, Any] | None, bool, tuple[str, str] | None]
"""What :meth:`RoutingStore.arrive` tells: already handled, the re-route held for the idea, re-routed by the
innovation office, the text of an edit that overtook the submission."""

IDEA_TEXT_TTL_S = 400 * 86400
"""How long an idea's text is kept after its last write (about 13 months): ideas are re-routed within days or
weeks of their submission; a year covers a slow assessment, a pilot season and the summer in between."""


class RoutingStore:
    def __init__(self, redis: Redis, prefix: str, *, effect_ttl_s: int = EFFECT_KEY_TTL_S) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:routing"
        self.done = Idempotency(redis, prefix=prefix, scope="routing", ttl_s=effect_ttl_s)
        self._arrive = redis.register_script(_ARRIVE)

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
    ) -> Arrival:
        """A submission arrives: remember its text (an edit that came first keeps its own) and the submitter's
        hints, and tell whether its event ``event_id`` was already handled, the re-route held for it, whether the
        innovation office re-routed it, and the text of an edit that overtook it (the text to route:
        ideas.edited.v1 is another topic, read by another consumer). One script, so one round trip."""
        return (await self.arrive_all([(idea_id, title, description, event_id, hints or {})]))[0]

    async def arrive_all(self, submissions: list[tuple[str, str, str, str, dict[str, list[str]]]]) -> list[Arrival]:
        """:meth:`arrive` for every submission of a consumed batch — ``(idea id, title, description, event id,
        hints)`` — in one round trip, in their order (a later one of the same idea sees what an earlier one wrote)."""
        if not submissions:
            return []
        pending = self._key("pending-feedback")
        async with self.redis.pipeline(transaction=False) as pipe:
            for idea_id, title, description, event_id, hints in submissions:
                title, description = bounded(title, description)
                keys = [self.done.key(event_id), self._key("idea", idea_id), pending]
                args = [title, description, json.dumps(hints or {}), IDEA_TEXT_TTL_S, idea_id]
                await self._arrive(keys, args, client=pipe)
            replies = await pipe.execute()
        arrivals: list[Arrival] = []
        for done, held, rerouted, edited, title, description in replies:
            overtaken = (title, description) if edited else None
            arrivals.append((bool(done), json.loads(held) if held else None, bool(rerouted), overtaken))
        return arrivals

    async def mark_all_handled(self, event_ids: list[str]) -> None:
        await self.done.mark_all(event_ids)

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

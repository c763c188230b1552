"""Events wait for their submission: the waiting room.

Notifications reads its topics independently, so an event about an idea (routed, status changed, engagement) may
arrive before the idea's submission: it cannot be told yet (whom to tell, in which words). Such an event is
*admitted* to wait; so is every later event of the idea until the waiting ones are released, so that none
overtakes another of its topic. Once the submission has been seen, one caller at a time (the submission, or a
later event of the idea should a releaser have died) holds the idea's *lease* and releases the waiting events,
oldest first, until none is left. An event that can never be handled goes to its topic's dead-letter topic, as
it would have had it not waited. Operators watch how many ideas have events waiting, and for how long.

``WaitingRoom`` is the port (Redis: ``RedisWaitingRoom``; tests: an in-memory room); ``Waiting`` is the rule the
handlers, the rebuild and the app use; ``watching`` measures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel
from redis.asyncio import Redis

from services.notifications.tasks import in_background
from shared.deadletter import PermanentError
from shared.events import (
    PAYLOAD_BY_TYPE,
    Envelope,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaStatusChanged,
)
from shared.topics import Topics

RELEASER_LEASE_S = 60


class Admission(IntEnum):
    """What the waiting room decided for an event."""

    WAIT = 0  # its submission, or an earlier event of the idea, is still awaited: it waits with them
    HANDLE = 1  # handle it now
    RELEASE = 2  # it waits, and its caller releases every waiting event of the idea (itself among them)


class WaitingRoom(Protocol):
    """Where events wait. The idea's submission counts as seen once notifications knows the idea's submitter
    (``NotificationStore.remember_submission``)."""

    async def admit(self, idea_id: str, event_id: str, raw_event: Callable[[], str]) -> Admission:
        """Handle now, wait, or wait and release. ``raw_event()`` (the event's JSON) is asked for only if it is
        to wait: most events are handled at once."""
        ...

    async def start_release(self, idea_id: str, *, owner: str) -> bool:
        """Whether ``owner`` (the submission's id) is to release the events waiting for it: some wait and
        nobody else is releasing them."""
        ...

    async def held(self, idea_id: str) -> dict[str, str]:
        """The events waiting for the idea (event id -> event JSON)."""
        ...

    async def let_go(self, idea_id: str, event_id: str) -> None:
        """The event waits no more (it has been handled, or dead-lettered)."""
        ...

    async def end_release(self, idea_id: str, *, owner: str) -> bool:
        """Whether ``owner`` is done releasing: nothing waits any more, or another took its lease over."""
        ...

    async def waiting_ideas(self) -> tuple[int, float | None]:
        """How many ideas have events waiting, and since when (epoch seconds) the longest has waited."""
        ...


class RejectedEvents(Protocol):
    """Where an event that waited and can never be handled goes (``shared.deadletter.DeadLetters``)."""

    async def dead_letter_value(self, topic: str, value: bytes, key: bytes | None, exc: BaseException) -> None: ...


Handle = Callable[[Envelope[Any]], Awaitable[None]]
"""Handles one event that was let in (it does not ask the waiting room again)."""


class Waiting:
    """The rule: admit, hold, and release oldest first under the lease. ``topics`` names the topic of each kind of
    event that may wait (its dead-letter topic takes one that can never be handled)."""

    def __init__(self, room: WaitingRoom, rejected: RejectedEvents, topics: Mapping[type[BaseModel], str]) -> None:
        self.room = room
        self.rejected = rejected
        self.topics = dict(topics)

    @classmethod
    def of_idea_events(cls, room: WaitingRoom, rejected: RejectedEvents, topics: Topics) -> Waiting:
        """The events that may overtake their submission: routings, status changes, engagement, edits and
        assignments."""
        return cls(
            room,
            rejected,
            {
                IdeaRouted: topics.routed,
                IdeaStatusChanged: topics.status_changed,
                IdeaEngagement: topics.engagement,
                IdeaEdited: topics.edited,
                IdeaAssigned: topics.assignments,
            },
        )

    async def admitted(self, event: Envelope[Any], handle: Handle) -> bool:
        """Whether the event is handled now. It waits instead while its idea's submission has not been seen or
        an earlier event of the idea still waits (so it cannot overtake it); and if the submission has been
        seen but nobody is releasing the waiting events, this caller releases them, itself among them."""
        admission = await self.room.admit(event.subject, event.id, event.model_dump_json)
        if admission == Admission.RELEASE:
            await self.release(event.subject, owner=event.id, handle=handle)
        return admission == Admission.HANDLE

    async def submission_seen(self, idea_id: str, *, owner: str, handle: Handle) -> None:
        """Release the events that overtook their submission (they travel on different topics)."""
        if await self.room.start_release(idea_id, owner=owner):
            await self.release(idea_id, owner=owner, handle=handle)

    async def release(self, idea_id: str, *, owner: str, handle: Handle) -> None:
        """Handle the idea's waiting events, oldest first, until none is left (more may come meanwhile)."""
        while True:
            waiting = [json.loads(raw) for raw in (await self.room.held(idea_id)).values()]
            for raw_event in sorted(waiting, key=lambda e: datetime.fromisoformat(e["time"])):
                await self._release(raw_event, handle)
            if await self.room.end_release(idea_id, owner=owner):
                return

    async def _release(self, raw: dict[str, Any], handle: Handle) -> None:
        """Handle an event that waited. One that can never be handled goes to its topic's dead-letter topic,
        as it would have had it not waited. Either way it waits no more (should the process die before that,
        its releaser comes again and the event is skipped as already handled)."""
        payload = PAYLOAD_BY_TYPE.get(raw.get("type", ""))
        if payload in self.topics:
            event = Envelope[payload].parse(raw)  # type: ignore[valid-type]
            try:
                await handle(event)
            except PermanentError as exc:
                value = json.dumps(raw, ensure_ascii=False).encode()
                await self.rejected.dead_letter_value(self.topics[payload], value, event.subject.encode(), exc)
        await self.room.let_go(raw["subject"], raw["id"])


# --- in Redis ---------------------------------------------------------------------------------------

# An event about an idea is handled at once only when the idea's submission has been seen and none of its events
# waits: otherwise it waits too, so that it cannot overtake one that waits before it (one topic's events of an idea
# are handled in their order). Whoever finds events waiting and nobody releasing them releases them all, oldest
# first: the submission, or a later event of the idea (should a releaser have died). KEYS: the idea's submitter
# key, its waiting events, its releaser; ARGV: the event's (or submission's) id, its JSON (empty: only ask whether
# it is handled at once), the releaser's lease. Ideas with waiting events are in a sorted set by the time the first
# began to wait (KEYS[4]; ARGV: now, the idea's id), which operators watch (an idea whose submission never comes).
_BECOME_RELEASER = """
local releaser = redis.call('GET', KEYS[3])
if releaser and releaser ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[3], ARGV[1], 'EX', tonumber(ARGV[3]))
return 2
"""
_ADMIT = (
    """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HLEN', KEYS[2]) == 0 then return 1 end
if ARGV[2] == '' then return 3 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
"""
    + _BECOME_RELEASER
)
_START_RELEASE = (
    """
if redis.call('HLEN', KEYS[2]) == 0 then return 1 end
"""
    + _BECOME_RELEASER
)
# The releaser stops once nothing waits (atomically with _ADMIT, so nothing is left behind), or if its lease
# was taken over; otherwise it keeps its lease and goes on.
_END_RELEASE = """
local releaser = redis.call('GET', KEYS[2])
if redis.call('HLEN', KEYS[1]) > 0 then
  if releaser and releaser ~= ARGV[1] then return 1 end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[2]))
  return 0
end
if releaser == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
"""
_NEEDS_EVENT = 3  # _ADMIT without the event's JSON: it is to wait, ask again with it


class RedisWaitingRoom:
    """The waiting room in Redis, under notifications' key prefix, beside the store's keys of each idea."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:notifications"
        self._admit = redis.register_script(_ADMIT)
        self._start_release = redis.register_script(_START_RELEASE)
        self._end_release = redis.register_script(_END_RELEASE)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _keys(self, idea_id: str) -> list[str]:
        return [*(self.key("idea", idea_id, part) for part in ("submitter", "held", "releaser")), self.key("waiting")]

    async def admit(self, idea_id: str, event_id: str, raw_event: Callable[[], str]) -> Admission:
        keys = self._keys(idea_id)
        admission = await self._admit(keys=keys, args=[event_id, "", RELEASER_LEASE_S])
        if admission == _NEEDS_EVENT:
            args = [event_id, raw_event(), RELEASER_LEASE_S, time.time(), idea_id]
            admission = await self._admit(keys=keys, args=args)
        return Admission(admission)

    async def start_release(self, idea_id: str, *, owner: str) -> bool:
        keys = self._keys(idea_id)
        return Admission(await self._start_release(keys=keys, args=[owner, "", RELEASER_LEASE_S])) == Admission.RELEASE

    async def held(self, idea_id: str) -> dict[str, str]:
        return await self.redis.hgetall(self.key("idea", idea_id, "held"))

    async def let_go(self, idea_id: str, event_id: str) -> None:
        await self.redis.hdel(self.key("idea", idea_id, "held"), event_id)

    async def end_release(self, idea_id: str, *, owner: str) -> bool:
        keys = self._keys(idea_id)[1:]
        return bool(await self._end_release(keys=keys, args=[owner, RELEASER_LEASE_S, idea_id]))

    async def waiting_ideas(self) -> tuple[int, float | None]:
        count, oldest = await asyncio.gather(
            self.redis.zcard(self.key("waiting")), self.redis.zrange(self.key("waiting"), 0, 0, withscores=True)
        )
        return int(count), (oldest[0][1] if oldest else None)


# --- what operators see -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingMetrics:
    waiting_ideas: Gauge
    oldest_wait: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WaitingMetrics:
        return cls(
            waiting_ideas=Gauge(
                "kiruna_notification_waiting_ideas",
                "Ideas whose events wait for the idea's submission to reach notifications",
                registry=registry,
            ),
            oldest_wait=Gauge(
                "kiruna_notification_oldest_wait_seconds",
                "How long the longest-waiting idea's events have waited for its submission (0: none waits)",
                registry=registry,
            ),
        )


async def measure(room: WaitingRoom, metrics: WaitingMetrics, now: float) -> None:
    count, since = await room.waiting_ideas()
    metrics.waiting_ideas.set(count)
    metrics.oldest_wait.set(max(0.0, now - since) if since is not None else 0.0)


async def watch(room: WaitingRoom, metrics: WaitingMetrics, interval_s: float, logger: logging.Logger) -> None:
    """Measure the events that wait for their idea's submission: normally for a moment; for long only if the
    submission never reached notifications (dead-lettered, or lost upstream), which an operator must see."""
    while True:
        try:
            await measure(room, metrics, time.time())
        except Exception as exc:  # Redis away for a moment: measured again next round
            logger.warning("could not measure the waiting events", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)


def watching(
    room: WaitingRoom, metrics: WaitingMetrics, interval_s: float, logger: logging.Logger
) -> contextlib.AbstractAsyncContextManager[None]:
    """``watch`` as a background task of the app (``service_app(background=...)``)."""
    return in_background("notifications-waiting", lambda: watch(room, metrics, interval_s, logger))

"""Notifications' state in Redis: what it knows of each idea's people, and each person's in-app feed."""

from __future__ import annotations

import json
from dataclasses import asdict

from redis.asyncio import Redis

from services.notifications.domain import Contact, FeedItem

# Deliver once: the delivery key is set and the item pushed in one step, or neither.
_DELIVER_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX') then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  return 1
end
return 0
"""


class NotificationStore:
    def __init__(self, redis: Redis, prefix: str, feed_length: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:notifications"
        self.feed_length = feed_length
        self._deliver = redis.register_script(_DELIVER_ONCE)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def remember_submission(self, idea_id: str, contact: Contact | None) -> None:
        """Record that the idea's submission has been seen (and how to reach its submitter, if at all)."""
        value = json.dumps(asdict(contact)) if contact else ""
        await self.redis.set(self._key("idea", idea_id, "submitter"), value)

    async def submission(self, idea_id: str) -> tuple[bool, Contact | None]:
        value = await self.redis.get(self._key("idea", idea_id, "submitter"))
        if value is None:
            return False, None
        return True, Contact(**json.loads(value)) if value else None

    async def hold(self, idea_id: str, event_id: str, raw_event: str) -> None:
        """Keep an event that arrived before the submission it follows."""
        await self.redis.hset(self._key("idea", idea_id, "held"), event_id, raw_event)

    async def held(self, idea_id: str) -> dict[str, str]:
        return await self.redis.hgetall(self._key("idea", idea_id, "held"))

    async def release(self, idea_id: str, event_id: str) -> None:
        await self.redis.hdel(self._key("idea", idea_id, "held"), event_id)

    async def deliver_in_app(self, item: FeedItem) -> bool:
        """Push the item to the recipient's feed once; False when it had been delivered before."""
        delivered = self._key("delivered", item.notification_id)
        feed = self._key("feed", item.recipient)
        return bool(await self._deliver(keys=[delivered, feed], args=[json.dumps(asdict(item)), self.feed_length]))

    async def feed(self, person: str, limit: int) -> list[dict]:
        return [json.loads(raw) for raw in await self.redis.lrange(self._key("feed", person), 0, limit - 1)]

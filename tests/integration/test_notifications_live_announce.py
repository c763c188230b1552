"""A delivered in-app item is announced on its person's live channel only while a process has a stream of theirs
open (``live-on:<pseudonym>``, services/notifications/store.py): the real Redis, its pub/sub included."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from services.notifications.domain import FeedItem
from services.notifications.store import LISTENING_S, NotificationStore
from shared.redis_pipelining import AutoPipelineRedis
from shared.sealing import pseudonym
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.kafka  # the real Redis

ANNA = pseudonym(b"test-pseudonym-pepper", "anna@kiruna.se")


def item(n: int) -> FeedItem:
    return FeedItem(f"n-{n}", f"e-{n}", "idea-1", ANNA, "routed", f"text {n}", "/ideas/idea-1")


async def announced(pubsub, wait_s: float = 0.5) -> list[str]:
    found = []
    deadline = asyncio.get_running_loop().time() + wait_s
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            found.append(json.loads(message["data"])["notification_id"])
    return found


async def test_items_are_announced_only_while_someone_listens(redis_prefix: str):
    redis = AutoPipelineRedis.from_url(REDIS_URL, decode_responses=True)
    listener = Redis.from_url(REDIS_URL, decode_responses=True)
    store = NotificationStore(redis, redis_prefix, feed_length=10)
    pubsub = listener.pubsub()
    try:
        await pubsub.subscribe(store.live_channel(ANNA))
        assert await store.deliver_in_app(item(1))
        assert await announced(pubsub) == []  # nobody listens: in the feed, not announced

        await store.listening([ANNA])
        assert 0 < await redis.ttl(store.key("live-on", ANNA)) <= LISTENING_S
        assert await store.deliver_in_app(item(2))
        assert not await store.deliver_in_app(item(2))  # once
        assert await announced(pubsub) == ["n-2"]
        assert [i["notification_id"] for i in await store.feed(ANNA, 10)] == ["n-2", "n-1"]

        await store.forget_person(ANNA, 1.0)  # an erasure forgets the mark too (and still ends the streams)
        assert not await redis.exists(store.key("live-on", ANNA))
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert message is not None and json.loads(message["data"]) == {"end": "erased"}
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await redis.aclose()

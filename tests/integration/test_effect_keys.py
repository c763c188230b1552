"""Effect keys expire, state does not: the marks that stop an effect happening twice (shared/idempotency.py, routing's
handled events) and the texts routing keeps only to react to a later re-route get a TTL far beyond any redelivery
window (``EFFECT_KEY_TTL_S``, 30 days); what routing learnt from re-routes is state and is kept."""

from __future__ import annotations

import pytest

from services.routing.store import IDEA_TEXT_TTL_S, RoutingStore
from shared.idempotency import EFFECT_KEY_TTL_S, Idempotency
from shared.redis_pipelining import AutoPipelineRedis
from shared.settings import ServiceSettings
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.kafka  # the real Redis

DAY = 86400


@pytest.fixture
async def redis():
    client = AutoPipelineRedis.from_url(REDIS_URL, decode_responses=True)  # as the services' (auto-pipelined)
    yield client
    await client.aclose()


def test_the_default_is_thirty_days_and_the_setting_says_so():
    assert EFFECT_KEY_TTL_S == 30 * DAY
    assert ServiceSettings().effect_key_ttl_s == EFFECT_KEY_TTL_S


async def test_idempotency_marks_expire(redis, redis_prefix):
    done = Idempotency(redis, prefix=redis_prefix, scope="test")
    await done.mark("event-1")
    assert await done.claim("event-2")
    for event_id in ("event-1", "event-2"):
        assert 29 * DAY < await redis.ttl(done.key(event_id)) <= 30 * DAY
    short = Idempotency(redis, prefix=redis_prefix, scope="short", ttl_s=3600)
    await short.mark("event-3")
    assert 0 < await redis.ttl(short.key("event-3")) <= 3600
    assert await short.seen("event-3") and not await short.claim("event-3")


async def test_routings_handled_marks_and_texts_expire_and_what_it_learnt_stays(redis, redis_prefix):
    store = RoutingStore(redis, redis_prefix, effect_ttl_s=7 * DAY)
    seen, held, rerouted, overtaken = await store.arrive("idea-1", "Fjärrvärme", "Till badhuset", event_id="event-1")
    assert (seen, held, rerouted, overtaken) == (False, None, False, None)
    await store.mark_handled("event-1")
    assert await store.handled("event-1")
    assert 6 * DAY < await redis.ttl(store.done.key("event-1")) <= 7 * DAY
    text_key = store._key("idea", "idea-1")
    assert IDEA_TEXT_TTL_S - DAY < await redis.ttl(text_key) <= IDEA_TEXT_TTL_S

    # A re-route that arrives before its submission: the mark alone is a key of its own, with a TTL too
    await store.mark_rerouted("idea-2")
    assert IDEA_TEXT_TTL_S - DAY < await redis.ttl(store._key("idea", "idea-2")) <= IDEA_TEXT_TTL_S
    await store.remember_text("idea-3", "Snöröjning", "Gatorna plogas sent")
    assert IDEA_TEXT_TTL_S - DAY < await redis.ttl(store._key("idea", "idea-3")) <= IDEA_TEXT_TTL_S
    assert await store.text("idea-3") == ("Snöröjning", "Gatorna plogas sent")

    # What was learnt is state (rebuilt by `python -m services.routing.rebuild`), not an effect key
    await store.hold_feedback("idea-4", {"idea_id": "idea-4", "time": "2025-01-01T00:00:00+00:00"})
    await store.save_feedback("idea-1", {"idea_id": "idea-1", "time": "2025-01-01T00:00:00+00:00"})
    assert await redis.ttl(store._key("feedback")) == -1
    assert await redis.ttl(store._key("pending-feedback")) == -1


async def test_routing_keeps_no_more_text_than_intake_accepts(redis, redis_prefix):
    store = RoutingStore(redis, redis_prefix)
    await store.arrive("idea-1", "T" * 1_000, "D" * 50_000, event_id="event-1")
    assert await store.text("idea-1") == ("T" * 200, "D" * 10_000)
    await store.remember_text("idea-2", "t" * 1_000, "d" * 50_000)
    assert await store.text("idea-2") == ("t" * 200, "d" * 10_000)
    await store.mark_handled("event-1")  # the service's setting when none is given: 30 days
    assert 29 * DAY < await redis.ttl(store.done.key("event-1")) <= 30 * DAY


async def test_a_days_digest_items_expire_with_its_done_mark(redis, redis_prefix):
    from datetime import date

    from services.notifications.domain import FeedItem
    from services.notifications.store import NotificationStore

    store = NotificationStore(redis, redis_prefix, feed_length=10, effect_ttl_s=3 * DAY)
    day = date(2026, 11, 30)
    item = FeedItem("n-1", "e-1", "idea-1", "per.niemi@kirunabostader.se", "routed", "text", "/ideas/idea-1")
    await store.add_to_digest(day, item, "sv")
    assert await store.digest_people(day) == ["per.niemi@kirunabostader.se"]
    await store.mark_digest_done(day)
    for key in (
        store.key("digest", day.isoformat()),
        store.key("digest", day.isoformat(), item.recipient),
        store.key("digest", day.isoformat(), "done"),
    ):
        assert 2 * DAY < await redis.ttl(key) <= 3 * DAY, key

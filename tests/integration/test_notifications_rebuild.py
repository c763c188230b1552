"""``python -m services.notifications.rebuild`` on the real Kafka, Redis and an SMTP server: after Redis is lost,
people's feeds, preferences and each idea's followers come back from the topics, nothing is sent twice, and the
restarted service notifies the right people of what happens next."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, date, datetime

import pytest
from redis.asyncio import Redis

from services.notifications.app import create_app
from services.notifications.rebuild import rebuild
from shared.events import EngagementKind, IdeaState
from shared.redis_keys import delete_matching
from tests.support.apps import running
from tests.support.identity import ADMIN, EMAIL, PER, bearer
from tests.support.identity import ANNA as ANNA_USER
from tests.support.kafka import eventually, raw_producer
from tests.support.notifications import (
    ANNA,
    JOHN,
    SARA,
    engaged,
    publish,
    routed,
    smtp_server,
    status,
    submitted,
)

pytestmark = pytest.mark.kafka

BO = "bo@kiruna.se"
SUBSCRIBER = EMAIL[PER]  # a user of the realm: he changes his own preferences


async def feeds(app, people: list[str]) -> dict[str, list[dict]]:
    """Everyone's feed, read from the store (people who only receive mail have no sign-in to read it with)."""
    return {person: await app.state.handlers.store.feed(person, 500) for person in people}


async def test_a_lost_redis_comes_back_from_the_topics_and_nothing_is_sent_twice(
    settings_for, topics, kafka_settings, redis_prefix
):
    idea = str(uuid.uuid4())
    people = [ANNA, SARA, JOHN, BO, SUBSCRIBER]
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with running(app) as api, raw_producer(kafka_settings) as producer:
            # Per hears of new ideas about housing, in the app only
            answer = await api.put(
                "/api/v1/people/me/preferences",
                json={"channels": ["in-app"], "areas": ["boende"]},
                headers=bearer(PER),
            )
            assert answer.status_code == 200
            await publish(producer, topics.submitted, submitted(idea, "Tvättstugan bokas digitalt"))
            await publish(
                producer,
                topics.routed,
                routed(idea, "Tvättstugan bokas digitalt", [("kirunabostader", None)], ["boende"]),
            )
            await publish(producer, topics.engagement, engaged(idea, EngagementKind.FOLLOW, BO))
            await eventually(lambda: len(mail.received) >= 3)  # Anna, and Kirunabostäder's officers Sara and John
            await publish(producer, topics.status_changed, status(idea, IdeaState.ACKNOWLEDGED, None, "sara.pekkari"))
            await eventually(lambda: len(mail.to(ANNA)) == 2 and mail.to(BO))
            await asyncio.sleep(1.0)  # every outcome published and every offset committed
            before = await feeds(app, people)
            mails_before = len(mail.received)
        assert before[SUBSCRIBER] and before[BO] and before[ANNA]

        # Redis is lost
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            assert await delete_matching(redis, f"{redis_prefix}:*") > 0
        finally:
            await redis.aclose()

        progress = io.StringIO()
        result = await rebuild(settings, stream=progress)
        assert "notifying again, silently" in progress.getvalue()
        assert result.preferences == 1 and result.outcomes >= 8 and result.queued_again == 0
        assert result.events == {topics.submitted: 1, topics.routed: 1, topics.engagement: 1, topics.status_changed: 1}

        app = create_app(settings)
        async with running(app) as api, raw_producer(kafka_settings) as producer:
            assert await feeds(app, people) == before
            prefs = (await api.get("/api/v1/people/me/preferences", headers=bearer(PER))).json()
            assert prefs["channels"] == ["in-app"] and prefs["areas"] == ["boende"]
            await asyncio.sleep(1.0)
            assert len(mail.received) == mails_before  # nothing was sent again

            # what happens next reaches the submitter and the follower the rebuild brought back
            await publish(producer, topics.status_changed, status(idea, IdeaState.IN_ASSESSMENT, None, "sara.pekkari"))
            await eventually(lambda: len(mail.to(BO)) == 2 and len(mail.to(ANNA)) == 3)
            await asyncio.sleep(0.5)
            assert len(mail.received) == mails_before + 2


async def test_a_digest_sent_before_redis_was_lost_is_not_sent_again(
    settings_for, topics, kafka_settings, redis_prefix
):
    day, at = date(2026, 3, 2), datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    idea = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        async with running(create_app(settings)) as api, raw_producer(kafka_settings) as producer:
            daily = await api.put(
                "/api/v1/people/me/preferences", json={"frequency": "daily"}, headers=bearer(ANNA_USER)
            )
            assert daily.status_code == 200
            await publish(producer, topics.submitted, submitted(idea, "Belysning i gångtunneln", time=at))
            await publish(producer, topics.routed, routed(idea, "Belysning", [("kirunabostader", None)], [], time=at))
            await eventually(lambda: len(mail.to(SARA)) == 1)
            assert (await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))).json()["queued"] == 1
            await eventually(lambda: mail.to(ANNA))
            await asyncio.sleep(1.0)  # the digest's outcome published

        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            await delete_matching(redis, f"{redis_prefix}:*")
        finally:
            await redis.aclose()
        await rebuild(settings, progress=False)

        app = create_app(settings)
        async with running(app) as api:
            assert await app.state.handlers.store.digest_done(day)  # the daily timer leaves that day alone
            retry = await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))
            assert retry.json()["queued"] == 0  # and so does a retry
            await asyncio.sleep(1.0)
    assert len(mail.to(ANNA)) == 1

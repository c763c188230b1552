"""``python -m services.notifications.rebuild`` on the real Kafka, Redis and an SMTP server: after Redis is lost,
people's feeds, preferences and each idea's followers come back from the topics, nothing is sent twice, the
restarted service notifies the right people of what happens next, and a person erased stays erased (one who came
back has only what they did since)."""

from __future__ import annotations

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
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import (
    ANNA,
    JOHN,
    SARA,
    name_of,
    publish,
    redis_mentions,
    routed,
    sealing,
    smtp_server,
    status,
)

pytestmark = pytest.mark.kafka

BO = "bo@kiruna.se"
SUBSCRIBER = EMAIL[PER]  # a user of the realm: he changes his own preferences


async def feeds(app, people: list[str]) -> dict[str, list[dict]]:
    """Everyone's feed (by address), read from the store (people who only receive mail have no sign-in to read it
    with)."""
    keyring = app.state.runtime.keyring
    return {person: await app.state.handlers.store.feed(keyring.pseudonym(person), 500) for person in people}


async def test_a_lost_redis_comes_back_from_the_topics_and_nothing_is_sent_twice(
    settings_for, topics, kafka_settings, redis_prefix
):
    idea = str(uuid.uuid4())
    everyone = [ANNA, SARA, JOHN, BO, SUBSCRIBER]
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            # Per hears of new ideas about housing, in the app only
            answer = await api.put(
                "/api/v1/people/me/preferences",
                json={"channels": ["in-app"], "areas": ["boende"]},
                headers=bearer(PER),
            )
            assert answer.status_code == 200
            await publish(producer, topics.submitted, await people.submitted(idea, "Tvättstugan bokas digitalt"))
            await publish(
                producer,
                topics.routed,
                routed(idea, "Tvättstugan bokas digitalt", [("kirunabostader", None)], ["boende"]),
            )
            await publish(producer, topics.engagement, await people.engaged(idea, EngagementKind.FOLLOW, BO))
            await eventually(lambda: len(mail.received) >= 3)  # Anna, and Kirunabostäder's officers Sara and John
            store, bo = app.state.handlers.store, app.state.runtime.keyring.pseudonym(BO)

            async def bo_follows() -> bool:  # engagement and status changes: two consumers (CI: he missed it)
                return bo in (await store.facts(idea)).followers

            await eventually(bo_follows)
            await publish(producer, topics.status_changed, status(idea, IdeaState.ACKNOWLEDGED, None, "sara.pekkari"))
            await eventually(lambda: len(mail.to(ANNA)) == 2 and mail.to(BO))
            # every outcome published: routed to Anna, Sara, John, Per (in-app and e-mail, Per's e-mail skipped);
            # acknowledged to Anna, Bo and Per
            await sent.wait_count(2 * 4 + 2 * 3, timeout=30)
            before = await feeds(app, everyone)
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
        assert result.preferences == 1 and result.outcomes == 14 and result.queued_again == 0
        assert result.events == {topics.submitted: 1, topics.routed: 1, topics.engagement: 1, topics.status_changed: 1}

        app = create_app(settings)
        async with (
            running(app) as api,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            assert await feeds(app, everyone) == before
            prefs = (await api.get("/api/v1/people/me/preferences", headers=bearer(PER))).json()
            assert prefs["channels"] == ["in-app"] and prefs["areas"] == ["boende"]

            # what happens next reaches the submitter and the follower the rebuild brought back (and nothing that
            # was sent before is sent again: the outcomes after the rebuild are the new event's only)
            await publish(producer, topics.status_changed, status(idea, IdeaState.IN_ASSESSMENT, None, "sara.pekkari"))
            await eventually(lambda: len(mail.to(BO)) == 2 and len(mail.to(ANNA)) == 3)
            await sent.wait_count(14 + 2 * 3, timeout=30)
            assert len(mail.received) == mails_before + 2


async def test_a_digest_sent_before_redis_was_lost_is_not_sent_again(
    settings_for, topics, kafka_settings, redis_prefix
):
    day, at = date(2026, 3, 2), datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    idea = str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        async with (
            running(create_app(settings)) as api,
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            daily = await api.put(
                "/api/v1/people/me/preferences", json={"frequency": "daily"}, headers=bearer(ANNA_USER)
            )
            assert daily.status_code == 200
            await publish(producer, topics.submitted, await people.submitted(idea, "Belysning i gångtunneln", time=at))
            await publish(producer, topics.routed, routed(idea, "Belysning", [("kirunabostader", None)], [], time=at))
            await eventually(lambda: len(mail.to(SARA)) == 1)
            assert (await api.post(f"/api/v1/digests/{day.isoformat()}", headers=bearer(ADMIN))).json()["queued"] == 1
            await eventually(lambda: mail.to(ANNA))
            await sent.wait_for(lambda rs: any(b"digest-2026-03-02" in r.value for r in rs))  # its outcome

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
            assert retry.json()["queued"] == 0  # and so does a retry: nothing was queued to send
    assert len(mail.to(ANNA)) == 1


async def test_a_rebuild_after_an_erasure_keeps_the_person_erased(settings_for, topics, kafka_settings, redis_prefix):
    """Bo subscribes to housing, follows and comments on Anna's idea, and is erased. Redis is lost; the rebuild
    (keys restored from people.keys.v1, where Bo's key is tombstoned; people.erasures.v1 replayed) brings back
    Anna and the officers but nothing of Bo, and he hears nothing more. Kim, erased too, comes back (a fresh
    key): what he did before is gone, what he did since comes back."""
    idea = str(uuid.uuid4())
    kim = "kim@kiruna.se"
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app),
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
        ):
            bo, kim_p = people.pseudonym(BO), people.pseudonym(kim)
            await publish(producer, topics.preferences, await people.preferences(BO, areas=("boende",)))
            store = app.state.handlers.store

            async def subscribed() -> bool:  # before the idea is routed: he hears of it as a subscriber
                return (await store.preferences(bo)).areas == ("boende",)

            await eventually(subscribed)
            await publish(producer, topics.submitted, await people.submitted(idea, "Gemensam verktygsbod"))
            await publish(
                producer, topics.routed, routed(idea, "Gemensam verktygsbod", [("kirunabostader", None)], ["boende"])
            )
            await publish(
                producer,
                topics.engagement,
                await people.engaged(idea, EngagementKind.FOLLOW, BO),
                await people.engaged(idea, EngagementKind.COMMENT, BO, "Jag har en skottkärra"),
                await people.engaged(idea, EngagementKind.FOLLOW, kim),
            )
            await eventually(lambda: mail.to(BO) and len(mail.to(ANNA)) == 2)  # routed; Bo's comment
            for email in (BO, kim):
                await publish(producer, topics.people_erasures, await people.erase(email))

            async def erased() -> bool:
                return len(await store.erased_at([bo, kim_p])) == 2 and not await store.feed(bo, 10)

            await eventually(erased)
            await publish(producer, topics.engagement, await people.engaged(idea, EngagementKind.SUPPORT, kim))

            async def back() -> bool:  # Kim came back: a fresh key, made after his erasure
                return kim_p in (await store.facts(idea)).followers

            await eventually(back)

        # Redis is lost: the keyring's keys too
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            assert await delete_matching(redis, f"{redis_prefix}:*") > 0
            result = await rebuild(settings, progress=False)
            assert result.erasures == 2 and result.erased_people == 1  # Kim came back
            assert await redis_mentions(redis, redis_prefix, BO, name_of(BO), "skottkärra") == []
            kept = {key for key, _ in await redis_mentions(redis, redis_prefix, bo)}
            assert kept == {f"{redis_prefix}:notifications:erased:{bo}"}  # only that he was erased, and when
        finally:
            await redis.aclose()

        app = create_app(settings)
        async with running(app), raw_producer(kafka_settings) as producer:
            store = app.state.handlers.store
            facts = await store.facts(idea)
            assert facts.followers == {kim_p} and facts.submitter is not None  # Kim since he came back
            assert await store.feed(bo, 10) == [] and (await store.preferences(bo)).areas == ()
            assert bo not in await store.subscribers(("boende",), ())
            await publish(producer, topics.status_changed, status(idea, IdeaState.ACCEPTED, "Bra", "sara.pekkari"))
            await eventually(lambda: len(mail.to(ANNA)) == 3 and mail.to(kim))
            assert len(mail.to(BO)) == 1  # the routing, before he was erased

"""Challenges on the real Kafka, Redis and an SMTP server: a challenge opened on ``challenges.v1`` reaches its
audience (the officers of its organisation and the people notifications has seen there) once, in their
language, linking to the challenge's page; a week before it closes they are reminded once; after Redis is lost
the rebuild brings the challenge and the people's feeds back and nothing is sent twice, while a reminder not yet
sent still goes out once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.notifications.app import create_app
from services.notifications.challenges import Place
from services.notifications.rebuild import rebuild
from shared.redis_keys import delete_matching
from tests.support.apps import running
from tests.support.identity import ANNA as ANNA_USER
from tests.support.identity import EMAIL, bearer, signed_in
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import (
    ANNA,
    JOHN,
    SARA,
    challenge,
    free_port,
    publish,
    redis_mentions,
    sealing,
    smtp_server,
)

pytestmark = pytest.mark.kafka

BO, KIM = "bo@kiruna.se", "kim@kiruna.se"
KIRUNABOSTADER = (Place("kirunabostader"),)


def text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_a_challenge_reaches_its_audience_once_and_is_recalled_a_week_before_it_closes(
    settings_for, topics, kafka_settings
):
    now = datetime.now(UTC).replace(microsecond=0)
    asked = challenge(
        "Hur kan vi minska energianvändningen i våra fastigheter?",
        organisation="kirunabostader",
        audience=(("kirunabostader", None),),
        opens_at=now,
        closes_in=timedelta(days=30),
        opened_by="sara.pekkari",
        description="Vi vill höra från alla som arbetar i husen.",
    )
    cid = asked.data.challenge_id
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with (
            running(app),
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            # Bo works at Kirunabostäder (his submission says so), Anna at the municipality
            for email, org, unit in ((BO, "kirunabostader", "uthyrning"), (ANNA, "kiruna-kommun", None)):
                before = now - timedelta(hours=1)
                idea = str(uuid.uuid4())
                submission = await people.submitted(idea, "Något", email, organisation=org, unit=unit, time=before)
                await publish(producer, topics.submitted, submission)
            store = app.state.handlers.store
            await eventually(lambda: store.known_people(KIRUNABOSTADER, until=now))
            await publish(producer, topics.challenges, asked, asked)  # and once again: told once

            # the officers of Kirunabostäder (Sara opened it: not her) and Bo; not Anna
            await eventually(lambda: set(mail.of_kind("challenge-opened")) == {JOHN, BO}, timeout=30)
            to_bo, to_john = mail.of_kind("challenge-opened")[BO], mail.of_kind("challenge-opened")[JOHN]
            assert to_bo["Subject"] == "Ny utmaning från Kirunabostäder: " + asked.data.question
            assert f"https://innovation.kiruna.se/challenges/{cid}" in text(to_bo)
            assert "Sara Pekkari" in text(to_bo) and "Vi vill höra från alla" in text(to_bo)
            assert to_bo["X-Kiruna-Idea"] == f"challenge-{cid}"
            assert to_john["Subject"].startswith("New challenge from Kirunabostäder")  # his catalogue language
            await sent.wait_for(lambda rs: sum(f"challenge-{cid}".encode() in r.value for r in rs) == 4)

            handlers = app.state.handlers
            assert await handlers.remind_closing_challenges(now + timedelta(days=22)) == 0
            assert await handlers.remind_closing_challenges(now + timedelta(days=23, hours=1)) == 1
            assert await handlers.remind_closing_challenges(now + timedelta(days=24)) == 0
            await eventually(lambda: set(mail.of_kind("challenge-closing")) == {JOHN, BO})
            assert mail.of_kind("challenge-closing")[BO]["Subject"].startswith("Utmaningen stänger snart")
            await sent.wait_for(lambda rs: sum(f"challenge-{cid}".encode() in r.value for r in rs) == 8)
        assert len(mail.received) == 4 and not mail.to(ANNA) and not mail.to(SARA)


async def test_after_a_rebuild_nothing_is_told_twice_and_a_reminder_still_due_goes_out_once(
    settings_for, topics, kafka_settings, redis_prefix
):
    now = datetime.now(UTC).replace(microsecond=0)
    housing = (("kirunabostader", None),)
    first = challenge("Fråga ett", audience=housing, opens_at=now, opened_by="sara.pekkari")
    second = challenge(  # a minute later: the feed's order is the events' (the rebuild replays in time order)
        "Fråga två",
        audience=housing,
        opens_at=now + timedelta(minutes=1),
        opened_by="sara.pekkari",
        closes_in=timedelta(days=40),
    )
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with sealing(settings) as people, raw_producer(kafka_settings) as producer:
            async with running(app), probe(kafka_settings, topics.notifications_sent) as sent:
                submission = await people.submitted(
                    str(uuid.uuid4()), "Något", BO, organisation="kirunabostader", time=now - timedelta(hours=1)
                )
                await publish(producer, topics.submitted, submission)
                store = app.state.handlers.store
                await eventually(lambda: store.known_people(KIRUNABOSTADER, until=now))
                bo = people.pseudonym(BO)
                for number, opened in enumerate((first, second), start=1):  # told in this order, as they opened
                    await publish(producer, topics.challenges, opened)

                    async def in_feed(count: int = number) -> bool:
                        return len(await store.feed(bo, 50)) == count

                    await eventually(in_feed)
                await eventually(lambda: len(mail.to(BO, "challenge-opened")) == 2)
                assert await app.state.handlers.remind_closing_challenges(now + timedelta(days=24)) == 1  # the first's
                await eventually(lambda: mail.to(BO, "challenge-closing"))
                await sent.wait_count(2 * 2 * 3)  # Bo and John, in-app and e-mail, three notices
                before = await store.feed(bo, 50)
                assert [item["kind"] for item in before] == [
                    "challenge-closing",
                    "challenge-opened",
                    "challenge-opened",
                ]
                mails_before = len(mail.received)

            # Redis is lost: the rebuild brings back the feeds, where Bo works and the open challenges
            redis = Redis.from_url(settings.redis_url, decode_responses=True)
            try:
                assert await delete_matching(redis, f"{redis_prefix}:*") > 0
            finally:
                await redis.aclose()
            result = await rebuild(settings, progress=False)
            assert result.events[topics.challenges] == 2 and result.queued_again == 0

            app = create_app(settings)
            async with running(app), probe(kafka_settings, topics.notifications_sent) as sent:
                told_before = len(await sent.wait_count(2 * 2 * 3))
                handlers = app.state.handlers
                # the items the events made come back; a reminder (a periodic notice, like a deadline's) is only
                # marked as sent
                assert await handlers.store.feed(bo, 50) == [i for i in before if i["kind"] == "challenge-opened"]
                open_ = {c.challenge_id for c, _ in await handlers.store.open_challenges()}
                assert open_ == {first.data.challenge_id, second.data.challenge_id}
                assert await handlers.remind_closing_challenges(now + timedelta(days=25)) == 0  # told before the loss
                assert await handlers.remind_closing_challenges(now + timedelta(days=34)) == 1  # the second's, once
                assert await handlers.remind_closing_challenges(now + timedelta(days=35)) == 0
                await eventually(lambda: len(mail.to(BO, "challenge-closing")) == 2)

                # someone seen since is asked by a new challenge, with Bo whom the rebuild brought back
                later = now + timedelta(hours=2)
                kim = await people.submitted(
                    str(uuid.uuid4()), "Något", KIM, organisation="kirunabostader", time=now + timedelta(hours=1)
                )
                await publish(producer, topics.submitted, kim)

                async def kim_known() -> bool:
                    return people.pseudonym(KIM) in await handlers.store.known_people(KIRUNABOSTADER, until=later)

                await eventually(kim_known)
                third = challenge("Fråga tre", audience=housing, opens_at=later, opened_by="erik.lindberg")
                await publish(producer, topics.challenges, third)
                # every outcome since: the second's reminder (Bo, John), the third (Bo, Kim, Sara, John), two channels
                await sent.wait_count(told_before + 2 * 2 + 4 * 2, timeout=30)
        assert len(mail.received) == mails_before + 2 + 4  # nothing else, nothing twice
        assert mail.to(KIM, "challenge-opened") and len(mail.to(BO, "challenge-opened")) == 3
        assert len({message["Message-ID"] for _, message in mail.received}) == len(mail.received)


async def test_my_feed_links_a_challenge_to_its_page_in_both_languages(settings_for, topics, kafka_settings):
    now = datetime.now(UTC).replace(microsecond=0)
    anna = EMAIL[ANNA_USER]
    app = create_app(settings_for(free_port()))
    asked = challenge("Fler idéer om <b>skolgårdar</b>?", organisation="kiruna-kommun", audience=(), opens_at=now)
    cid = asked.data.challenge_id
    async with running(app) as api, sealing(app.state.runtime.settings) as people, raw_producer(kafka_settings) as p:
        submission = await people.submitted(
            str(uuid.uuid4()), "Något", anna, organisation="kiruna-kommun", time=now - timedelta(hours=1)
        )
        await publish(p, topics.submitted, submission)
        await eventually(lambda: app.state.handlers.store.known_people((Place("kiruna-kommun"),), until=now))
        await publish(p, topics.challenges, asked)

        async def in_feed() -> list[dict]:
            items = (await api.get("/api/v1/people/me/feed", headers=bearer(ANNA_USER))).json()["items"]
            return [item for item in items if item["kind"] == "challenge-opened"]

        [item] = await eventually(in_feed, timeout=30)
        assert item["path"] == f"/challenges/{cid}" and item["idea_id"] == f"challenge-{cid}"
        async with signed_in(app, ANNA_USER) as browser:
            swedish = (await browser.get("/my/feed")).text
            assert f'<a href="/challenges/{cid}">Visa utmaningen</a>' in swedish and "Ny utmaning" in swedish
            assert "&lt;b&gt;skolgårdar&lt;/b&gt;" in swedish and "<b>skolgårdar" not in swedish
            english = (await browser.get("/en/my/feed")).text
            assert f'<a href="/en/challenges/{cid}">View the challenge</a>' in english and "New challenge" in english
            script = (await browser.get("/my/feed/live.js")).text
            assert '"/challenges/"' in script and "openChallenge" in script


async def test_someone_erased_is_forgotten_where_they_work_and_not_asked(
    settings_for, topics, kafka_settings, redis_prefix
):
    now = datetime.now(UTC).replace(microsecond=0)
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with running(app), sealing(settings) as people, raw_producer(kafka_settings) as producer:
            store, bo = app.state.handlers.store, people.pseudonym(BO)
            for email in (BO, KIM):
                submission = await people.submitted(
                    str(uuid.uuid4()), "Något", email, organisation="kirunabostader", time=now - timedelta(hours=2)
                )
                await publish(producer, topics.submitted, submission)

            async def both_known() -> bool:
                return len(await store.known_people(KIRUNABOSTADER, until=now)) == 2

            await eventually(both_known)
            await publish(producer, topics.people_erasures, await people.erase(BO))

            async def forgotten() -> bool:
                kept = {key for key, _ in await redis_mentions(store.redis, redis_prefix, bo)}
                return kept == {f"{redis_prefix}:notifications:erased:{bo}"}

            await eventually(forgotten)
            asked = challenge("Fråga", audience=(("kirunabostader", None),), opens_at=now)
            await publish(producer, topics.challenges, asked)
            await eventually(lambda: mail.to(KIM, "challenge-opened"))
        assert not mail.to(BO)

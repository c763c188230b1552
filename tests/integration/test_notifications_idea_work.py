"""The work on an idea (issue 18) on the real Kafka, Redis and an SMTP server: an assignment tells the officer given
the idea, in their language; an organisation's answer and an anonymous comment are told as such; the deadline
warning of an assigned idea goes to its assignee only; a withdrawal tells the officers and the assignee with the
reason, and its idea is warned of no more; a merge carries the followers over and tells them, with a link. After
Redis is lost, the rebuild brings the assignees and the carried-over followers back and sends nothing twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.notifications.app import create_app
from services.notifications.rebuild import rebuild
from shared.events import EngagementKind, IdeaState
from shared.redis_keys import delete_matching
from shared.workdays import is_working_day
from tests.support.apps import running
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import (
    ANNA,
    JOHN,
    SARA,
    assigned,
    publish,
    routed,
    sealing,
    smtp_server,
    status,
)

pytestmark = pytest.mark.kafka

BO, LISA, PER, KIM = "bo@kiruna.se", "lisa@kiruna.se", "per@kiruna.se", "kim@kiruna.se"
HOUSING = [("kirunabostader", "forvaltning")]  # officers: Sara (Swedish) and John (English)


def text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def told(message) -> str:
    """The plain text above the footer (whose unsubscribe link is random letters)."""
    return text(message).split("\n-- ")[0]


def next_plain_monday() -> datetime:
    """A Monday to come whose week (and the Monday after) has no holiday: the service's own timer, which checks
    at start, finds every target of ideas submitted then in time."""
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    monday = today + timedelta(days=7 - today.weekday())
    while not all(is_working_day((monday + timedelta(days=n)).date()) for n in range(0, 12) if n % 7 < 5):
        monday += timedelta(days=7)
    return monday


def at(monday: datetime, minutes: int) -> dict:
    return {"time": monday + timedelta(minutes=minutes)}


async def test_assignment_answers_withdrawal_merge_and_warnings_reach_the_right_people(
    settings_for, topics, kafka_settings
):
    monday = next_plain_monday()
    idea, kims, pers = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with running(app), sealing(settings) as people, raw_producer(kafka_settings) as producer:
            kim = people.pseudonym(KIM)
            for idea_id, title, email in ((idea, "Laddplatser vid husen", ANNA), (kims, "Cykelrum", KIM)):
                await publish(producer, topics.submitted, await people.submitted(idea_id, title, email, time=monday))
                await publish(producer, topics.routed, routed(idea_id, title, HOUSING, ["boende"], time=monday))
            await publish(
                producer,
                topics.engagement,
                await people.engaged(idea, EngagementKind.FOLLOW, BO, **at(monday, 1)),
                await people.engaged(idea, EngagementKind.SUPPORT, LISA, **at(monday, 2)),
            )
            await eventually(lambda: len(mail.to(ANNA, "routed")) == 1 and len(mail.to(JOHN, "routed")) == 2)

            # Sara gives both ideas to John: he hears it, in English, from her
            await publish(
                producer,
                topics.assignments,
                assigned(idea, "kirunabostader", "john.doe", "sara.pekkari", **at(monday, 3)),
                assigned(kims, "kirunabostader", "john.doe", "sara.pekkari", **at(monday, 3)),
            )
            await eventually(lambda: len(mail.to(JOHN, "assigned")) == 2)
            given = next(m for m in mail.to(JOHN, "assigned") if "Laddplatser" in m["Subject"])
            assert given["Subject"] == 'You have been given the idea "Laddplatser vid husen"'
            assert "Sara Pekkari has given you" in text(given) and f"/ideas/{idea}" in text(given)

            # Kirunabostäder's answer, and Per's anonymous comment
            await publish(
                producer,
                topics.engagement,
                await people.engaged(
                    idea, EngagementKind.COMMENT, SARA, "Bygger i vår", official="kirunabostader", **at(monday, 4)
                ),
                await people.engaged(idea, EngagementKind.COMMENT, PER, "Äntligen!", anonymous=True, **at(monday, 5)),
            )
            await eventually(lambda: all(len(mail.to(p, "comment")) == 2 for p in (ANNA, BO, LISA)))
            answer, anonymous = sorted(mail.to(ANNA, "comment"), key=lambda m: "Svar" not in m["Subject"])
            assert answer["Subject"] == "Svar från Kirunabostäder på ”Laddplatser vid husen”"
            assert "Kirunabostäder har svarat (Sara Pekkari) på din idé" in text(answer)
            assert "anonym" in told(anonymous) and "Per" not in told(anonymous) + anonymous["Subject"]
            await eventually(lambda: mail.to(SARA, "comment"))  # she follows since her answer
            assert "Per" not in told(mail.to(SARA, "comment")[0])

            # Kim withdraws his idea: Sara and John (its assignee) are told why; Kim is not
            await publish(
                producer, topics.status_changed, status(kims, IdeaState.WITHDRAWN, "Fel forum", kim, **at(monday, 6))
            )
            await eventually(lambda: set(mail.of_kind("withdrawn")) == {SARA, JOHN})
            assert "Skälet: Fel forum" in text(mail.of_kind("withdrawn")[SARA])
            assert 'The idea "Cykelrum" has been withdrawn' == mail.of_kind("withdrawn")[JOHN]["Subject"]
            store = app.state.handlers.store

            async def withdrawn_seen() -> bool:
                return (await store.facts(kims)).state == "withdrawn"

            await eventually(withdrawn_seen)

            # Friday: the acknowledgement is about to be missed: only John hears it, of the idea still open
            assert await app.state.handlers.check_deadlines(monday + timedelta(days=4)) == 1
            await eventually(lambda: mail.of_kind("deadline-warning"))
            assert set(mail.of_kind("deadline-warning")) == {JOHN}
            assert "Laddplatser" in mail.of_kind("deadline-warning")[JOHN]["Subject"]

            # Anna's idea is merged into Per's: its followers follow Per's idea, told so with a link
            await publish(producer, topics.submitted, await people.submitted(pers, "Laddstolpar", PER, time=monday))
            await publish(producer, topics.routed, routed(pers, "Laddstolpar", HOUSING, ["boende"], time=monday))
            await eventually(lambda: mail.to(PER, "routed"))
            merge = status(idea, IdeaState.MERGED, "Samma idé", "sara.pekkari", merged_into=pers, **at(monday, 7))
            await publish(producer, topics.status_changed, merge)
            await eventually(lambda: all(mail.to(p, "status-changed") for p in (ANNA, BO, LISA, PER)))
            for person in (ANNA, BO, LISA):
                merged = text(mail.to(person, "status-changed")[0])
                assert f"https://innovation.kiruna.se/ideas/{pers}" in merged and "Du följer nu den idén" in merged
            accepted = status(pers, IdeaState.ACCEPTED, "Vi gör det", "sara.pekkari", **at(monday, 8))
            await publish(producer, topics.status_changed, accepted)
            await eventually(lambda: all(len(mail.to(p, "status-changed")) == 2 for p in (ANNA, BO, LISA, PER)))
            assert not mail.to(KIM, "withdrawn") and not mail.to(ANNA, "assigned")


async def test_a_rebuild_brings_back_assignees_and_carried_over_followers_and_sends_nothing_twice(
    settings_for, topics, kafka_settings, redis_prefix
):
    monday = next_plain_monday()
    merged, target = str(uuid.uuid4()), str(uuid.uuid4())
    with smtp_server() as mail:
        settings = settings_for(mail.port)
        app = create_app(settings)
        async with sealing(settings) as people, raw_producer(kafka_settings) as producer:
            async with running(app), probe(kafka_settings, topics.notifications_sent) as sent:
                for idea_id, title, email in ((merged, "Laddplatser", ANNA), (target, "Laddstolpar", PER)):
                    submission = await people.submitted(idea_id, title, email, time=monday)
                    await publish(producer, topics.submitted, submission)
                    await publish(producer, topics.routed, routed(idea_id, title, HOUSING, ["boende"], time=monday))
                follow = await people.engaged(merged, EngagementKind.FOLLOW, BO, **at(monday, 1))
                await publish(producer, topics.engagement, follow)
                store, bo = app.state.handlers.store, people.pseudonym(BO)

                async def bo_follows() -> bool:
                    return bo in (await store.facts(merged)).followers

                await eventually(bo_follows)
                given = assigned(target, "kirunabostader", "john.doe", "sara.pekkari", **at(monday, 2))
                await publish(producer, topics.assignments, given)
                merge = status(
                    merged, IdeaState.MERGED, "Samma idé", "sara.pekkari", merged_into=target, **at(monday, 3)
                )
                await publish(producer, topics.status_changed, merge)
                await eventually(lambda: mail.to(BO, "status-changed") and mail.to(JOHN, "assigned"))
                # routed: Anna, Sara, John; Per, Sara, John; assigned: John; merged: Anna, Bo (not Sara: she did it)
                await sent.wait_count(2 * (6 + 1 + 2), timeout=30)
                mails_before = len(mail.received)

            redis = Redis.from_url(settings.redis_url, decode_responses=True)
            try:
                assert await delete_matching(redis, f"{redis_prefix}:*") > 0
            finally:
                await redis.aclose()
            result = await rebuild(settings, progress=False)
            assert result.queued_again == 0 and result.events[topics.assignments] == 1

            app = create_app(settings)
            async with running(app), probe(kafka_settings, topics.notifications_sent) as sent:
                told_before = len(await sent.wait_count(2 * 9))
                facts = await app.state.handlers.store.facts(target)
                assert facts.assignees == {"kirunabostader": "john.doe"}
                assert {people.pseudonym(ANNA), bo} <= facts.followers
                # the assignee, brought back, is warned (not Sara); the carried-over followers hear of Per's idea
                assert await app.state.handlers.check_deadlines(monday + timedelta(days=4)) == 1
                accepted = status(target, IdeaState.ACCEPTED, "Vi gör det", "sara.pekkari", **at(monday, 4))
                await publish(producer, topics.status_changed, accepted)
                # warning: John (two channels); accepted: Per, Anna, Bo (two channels)
                await sent.wait_count(told_before + 2 + 6, timeout=30)
        assert set(mail.of_kind("deadline-warning")) == {JOHN}
        assert [len(mail.to(p, "status-changed")) for p in (ANNA, BO, PER)] == [2, 2, 1]
        assert len(mail.received) == mails_before + 1 + 3  # nothing twice

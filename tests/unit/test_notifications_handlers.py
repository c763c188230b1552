"""Notifications' handlers on in-memory fakes (tests/fakes/notifications.py): who hears of what, events that wait
for their submission and the order they are released in, daily digests, deadline notices and people's
preferences. No Kafka, no Redis, no SMTP: the decisions only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications import domain
from shared.deadletter import PermanentError
from shared.events import (
    DeliveryOutcome,
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaState,
    PreferencesChanged,
)
from tests.fakes.notifications import Notifications, notifications
from tests.support.notifications import ANNA, ERIK, OFFICE, SARA, engaged, routed, status, submitted

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BO, LISA, PER = "bo@kiruna.se", "lisa@kiruna.se", "per.mattsson@kiruna.se"


@pytest.fixture
def n() -> Notifications:
    return notifications(now=MONDAY)


def idea_id() -> str:
    return str(uuid.uuid4())


def heard(n: Notifications, person: str) -> list[str]:
    """The kinds of news in a person's in-app feed, oldest first."""
    return [item["kind"] for item in reversed(n.feed(person))]


def outcomes(n: Notifications, channel: str) -> dict[str, tuple[DeliveryOutcome, str | None]]:
    """Recipient -> (outcome, detail) of the notifications reported on ``channel``."""
    return {e.data.recipient: (e.data.outcome, e.data.detail) for e in n.sent() if e.data.channel == channel}


async def prefer(n: Notifications, person: str, **choices) -> None:
    changed = PreferencesChanged(person=person, **choices)
    await n.handlers.preferences_changed(Envelope.wrap(changed, source="/tests", time=n.clock()))


async def a_routed_idea(n: Notifications, title: str = "Värmepump i ishallen", **kw) -> str:
    idea = idea_id()
    await n.handlers.submitted(submitted(idea, title, **kw))
    await n.handlers.routed(routed(idea, title, [("tekniska-verken", "energi")], ["klimat-och-energi"], time=n.clock()))
    return idea


# --- audiences ----------------------------------------------------------------------------------------


async def test_a_submission_alone_tells_nobody_its_routing_tells_submitter_officers_and_subscribers(n):
    await prefer(n, BO, areas=("klimat-och-energi",))
    idea = idea_id()
    await n.handlers.submitted(submitted(idea, "Värmepump i ishallen"))
    assert n.sent() == [] and n.queue.deliveries == []

    await n.handlers.routed(
        routed(idea, "Värmepump i ishallen", [("tekniska-verken", "energi")], ["klimat-och-energi"])
    )

    assert heard(n, ANNA) == heard(n, ERIK) == heard(n, BO) == ["routed"]
    assert {d.recipient for d in n.queue.emails("routed")} == {ANNA, ERIK, BO}
    assert heard(n, SARA) == []  # kirunabostader's officer: not hers
    texts = {person: n.feed(person)[0]["text"] for person in (ANNA, ERIK, BO)}
    assert len(set(texts.values())) == 3  # each in the words of their role
    assert set(outcomes(n, "in-app")) == {ANNA, ERIK, BO}


async def test_someone_in_two_groups_hears_once_in_the_words_of_the_first(n):
    await prefer(n, ANNA, areas=("klimat-och-energi",))  # the submitter also follows the area
    await a_routed_idea(n)
    assert heard(n, ANNA) == ["routed"]
    assert [d.recipient for d in n.queue.emails()].count(ANNA) == 1
    assert n.feed(ANNA)[0]["text"].startswith("Din idé")  # the submitter's words


async def test_a_status_change_tells_the_submitter_followers_and_subscribers_but_not_who_made_it(n):
    idea = await a_routed_idea(n)
    await n.handlers.engagement(engaged(idea, EngagementKind.FOLLOW, BO))
    await n.handlers.engagement(engaged(idea, EngagementKind.FOLLOW, ERIK))  # the officer follows it too
    await prefer(n, LISA, organisations=("tekniska-verken",))

    await n.handlers.status_changed(status(idea, IdeaState.ACKNOWLEDGED, None, changed_by="erik.lindberg"))

    for person in (ANNA, BO, LISA):
        assert heard(n, person)[-1] == "status-changed"
    assert heard(n, ERIK) == ["routed"]  # he made the change


async def test_a_comment_tells_the_submitter_and_followers_not_the_commenter_who_then_follows(n):
    idea = await a_routed_idea(n)
    await n.handlers.engagement(engaged(idea, EngagementKind.FOLLOW, BO))
    assert heard(n, BO) == []  # following is news to nobody

    await n.handlers.engagement(engaged(idea, EngagementKind.COMMENT, LISA, "Bra idé!"))
    assert heard(n, ANNA) == ["routed", "comment"] and heard(n, BO) == ["comment"] and heard(n, LISA) == []

    await n.handlers.status_changed(status(idea, IdeaState.IN_ASSESSMENT, None))
    assert heard(n, LISA) == ["status-changed"]  # commenters follow the idea from then on


async def test_an_engagement_by_an_unknown_person_is_refused_at_once(n):
    idea = await a_routed_idea(n)
    with pytest.raises(PermanentError, match="unknown person 'nobody'"):
        await n.handlers.engagement(engaged(idea, EngagementKind.FOLLOW, "nobody"))


async def test_an_organisation_with_a_webhook_hears_of_its_ideas():
    n = notifications(now=MONDAY, webhooks={"tekniska-verken": {"url": "https://tv.example/hook", "secret": "s"}})
    idea = idea_id()
    await n.handlers.submitted(submitted(idea, "Värmepump"))
    await n.handlers.routed(routed(idea, "Värmepump", [("tekniska-verken", "energi"), ("kirunabostader", None)], []))
    [hook] = n.queue.webhooks()
    assert hook.recipient == "tekniska-verken" and hook.message["idea_id"] == idea and hook.message["kind"] == "routed"
    assert hook.message["text"].startswith("En ny idé") and hook.message["text_en"].startswith("A new idea")


async def test_a_redelivered_event_changes_nothing_a_second_time(n):
    idea = idea_id()
    await n.handlers.submitted(submitted(idea, "Värmepump"))
    event = routed(idea, "Värmepump", [("tekniska-verken", "energi")], [])
    await n.handlers.routed(event)
    sent, queued = len(n.sent()), len(n.queue.deliveries)
    await n.handlers.routed(event)
    assert (len(n.sent()), len(n.queue.deliveries)) == (sent, queued) and heard(n, ANNA) == ["routed"]
    skips = {"service": "notifications", "topic": "routed"}
    assert n.metrics.registry.get_sample_value("kiruna_idempotent_skips_total", skips) == 1


# --- waiting for the submission -------------------------------------------------------------------------


async def test_an_event_whose_submission_has_not_been_seen_waits_until_it_has(n):
    idea = idea_id()
    await n.handlers.routed(routed(idea, "Snöröjning", [("kiruna-kommun", "samhallsbyggnad")], []))
    assert n.sent() == [] and len(await n.room.held(idea)) == 1
    assert await n.room.waiting_ideas() == (1, MONDAY.timestamp())

    await n.handlers.submitted(submitted(idea, "Snöröjning"))

    assert heard(n, ANNA) == ["routed"] and await n.room.held(idea) == {}
    assert await n.room.waiting_ideas() == (0, None) and n.room.releaser(idea) is None


async def test_waiting_events_are_released_oldest_first_whatever_order_they_arrived_in(n):
    idea = idea_id()
    first = routed(idea, "Snöröjning", [("kiruna-kommun", "samhallsbyggnad")], [], time=MONDAY)
    second = status(idea, IdeaState.ACKNOWLEDGED, None, changed_by="maria.nilsson")
    second = second.model_copy(update={"time": MONDAY + timedelta(minutes=5)})
    third = engaged(idea, EngagementKind.COMMENT, LISA, "Äntligen")
    third = third.model_copy(update={"time": MONDAY + timedelta(minutes=10)})
    for event, handle in ((third, n.handlers.engagement), (second, n.handlers.status_changed)):
        await handle(event)
    await n.handlers.routed(first)
    assert len(await n.room.held(idea)) == 3 and n.sent() == []

    await n.handlers.submitted(submitted(idea, "Snöröjning"))

    assert heard(n, ANNA) == ["routed", "status-changed", "comment"]
    causes = list(dict.fromkeys(e.data.cause_event_id for e in n.sent()))
    assert causes == [first.id, second.id, third.id]
    assert (await n.store.facts(idea)).state == "acknowledged" and idea not in n.store.open


async def test_nothing_overtakes_a_waiting_event_of_the_same_idea(n):
    """bo follows before the submission is seen; the submission lands but its releaser dies before releasing;
    lisa's comment then waits behind bo's follow (so bo hears of it) until the lease runs out and the next event
    of the idea releases them all, in order."""
    idea = idea_id()
    submission = submitted(idea, "Belysning i gångtunneln")
    await n.handlers.engagement(engaged(idea, EngagementKind.FOLLOW, BO))
    await n.store.remember_submission(idea, domain.Contact(ANNA), title="Belysning i gångtunneln")
    assert await n.room.start_release(idea, owner=submission.id)  # ... and the process dies here

    n.clock.advance(seconds=1)
    await n.handlers.engagement(engaged(idea, EngagementKind.COMMENT, LISA, "Bra idé!"))
    assert len(await n.room.held(idea)) == 2 and heard(n, ANNA) == []  # the lease still runs: it waits too

    n.clock.advance(seconds=61)
    await n.handlers.engagement(engaged(idea, EngagementKind.SUPPORT, LISA))

    assert heard(n, ANNA) == heard(n, BO) == ["comment"] and heard(n, LISA) == []
    assert await n.room.held(idea) == {} and await n.room.waiting_ideas() == (0, None)
    assert LISA in (await n.store.facts(idea)).followers


async def test_a_waiting_event_that_can_never_be_handled_goes_to_its_topics_dead_letter_topic(n):
    idea = idea_id()
    broken = Envelope.wrap(
        IdeaEngagement(idea_id=idea, kind=EngagementKind.FOLLOW, person="nobody"), source="/tests", time=MONDAY
    )
    n.room.waiting[idea] = {broken.id: broken.model_dump_json()}  # it waited before its person was refused
    n.room.since[idea] = MONDAY.timestamp()
    await n.handlers.engagement(engaged(idea, EngagementKind.FOLLOW, BO))

    await n.handlers.submitted(submitted(idea, "Snöröjning"))

    [(topic, value, key, error)] = n.dead_letters.records
    assert topic == n.topics.engagement and key == idea.encode() and json.loads(value)["id"] == broken.id
    assert isinstance(error, PermanentError)
    assert await n.room.held(idea) == {} and BO in (await n.store.facts(idea)).followers


# --- digests ----------------------------------------------------------------------------------------------


async def test_a_daily_digest_collects_the_days_news_and_is_sent_once():
    n = notifications(now=MONDAY)
    await prefer(n, ANNA, frequency="daily")
    for title in ("Värmepump", "Solpaneler"):
        idea = idea_id()
        await n.handlers.submitted(submitted(idea, title))
        await n.handlers.routed(routed(idea, title, [("tekniska-verken", "energi")], [], time=MONDAY))

    assert n.queue.emails() and all(d.recipient != ANNA for d in n.queue.emails())  # no e-mail to her yet
    assert heard(n, ANNA) == ["routed", "routed"]  # in-app at once
    assert outcomes(n, "email")[ANNA] == (DeliveryOutcome.SKIPPED, "preference: daily digest")

    n.clock.now = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)  # Tuesday 06:00 in Kiruna: before the digest hour
    assert await n.handlers.send_due_digest() == 0
    n.clock.now = datetime(2026, 3, 3, 6, 30, tzinfo=UTC)  # 07:30
    assert await n.handlers.send_due_digest() == 1
    assert await n.handlers.send_due_digest() == 0  # once per day
    [digest] = n.queue.emails("digest")
    assert digest.recipient == ANNA and digest.idea_id == "digest-2026-03-02"
    assert "Värmepump" in digest.message["text"] and "Solpaneler" in digest.message["text"]


async def test_nothing_is_collected_for_someone_who_hears_at_once(n):
    await a_routed_idea(n)
    n.clock.now = MONDAY + timedelta(days=1)
    assert await n.handlers.send_due_digest() == 0 and n.queue.emails("digest") == []


# --- deadlines ---------------------------------------------------------------------------------------------


async def test_the_acknowledgement_target_warns_the_officers_then_tells_the_office_once_each(n):
    """Routed on a Monday, acknowledged within five working days: a warning one working day before (Friday),
    missed the Monday after; a weekend is no working day."""
    await a_routed_idea(n)
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=3)) == 0  # Thursday: in time
    n.clock.now = MONDAY + timedelta(days=4)  # Friday: one working day left
    assert await n.handlers.check_deadlines() == 1
    assert heard(n, ERIK)[-1] == "deadline-warning" and heard(n, OFFICE) == []
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=5)) == 0  # never twice; Saturday
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=7, hours=1)) == 1  # next Monday: missed
    assert heard(n, OFFICE) == ["deadline-missed"] and heard(n, ANNA) == ["routed"]
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=20)) == 0


async def test_an_acknowledged_idea_gets_no_deadline_notice(n):
    idea = await a_routed_idea(n)
    await n.handlers.status_changed(status(idea, IdeaState.ACKNOWLEDGED, None))
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=20)) == 0
    assert "deadline-warning" not in heard(n, ERIK)


# --- preferences ---------------------------------------------------------------------------------------------


async def test_preferences_choose_the_channels_and_the_language(n):
    await prefer(n, ANNA, channels=("in-app",))
    await prefer(n, ERIK, channels=("email",), language="en")
    await a_routed_idea(n)

    assert heard(n, ANNA) == ["routed"] and all(d.recipient != ANNA for d in n.queue.emails())
    assert outcomes(n, "email")[ANNA] == (DeliveryOutcome.SKIPPED, "preference: e-mail off")
    assert heard(n, ERIK) == [] and outcomes(n, "in-app")[ERIK] == (DeliveryOutcome.SKIPPED, "preference: in-app off")
    [to_erik] = [d for d in n.queue.emails() if d.recipient == ERIK]
    assert to_erik.message["language"] == "en" and to_erik.message["subject"].startswith("A new idea for you")


async def test_the_newest_preferences_win_whatever_order_they_arrive_in(n):
    newer = PreferencesChanged(person=PER, areas=("klimat-och-energi",))
    older = PreferencesChanged(person=PER, channels=(), areas=())
    await n.handlers.preferences_changed(Envelope.wrap(newer, source="/tests", time=MONDAY))
    await n.handlers.preferences_changed(Envelope.wrap(older, source="/tests", time=MONDAY - timedelta(hours=1)))
    await a_routed_idea(n)
    assert heard(n, PER) == ["routed"]  # a subscriber of the area, on every channel

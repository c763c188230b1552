"""Notifications' handlers on in-memory fakes (tests/fakes/notifications.py): who hears of what, events that wait
for their submission and the order they are released in, daily digests, deadline notices, people's preferences,
and people erased (a key gone, an erasure event). People are pseudonyms throughout; their events are sealed with
the in-memory keyring (tests/fakes/common.py). No Kafka, no Redis, no SMTP: the decisions only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.notifications import domain
from services.notifications.delivery.model import Delivery
from services.notifications.settings import TEMPLATES_DIR
from shared.deadletter import PermanentError
from shared.events import DeliveryOutcome, EngagementKind, IdeaState
from tests.fakes.notifications import Notifications, notifications
from tests.support.notifications import ANNA, ERIK, OFFICE, SARA, erasure, name_of, routed, status

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
    """Recipient's pseudonym -> (outcome, detail) of the notifications reported on ``channel``."""
    return {e.data.recipient: (e.data.outcome, e.data.detail) for e in n.sent() if e.data.channel == channel}


def emailed(n: Notifications, kind: str | None = None) -> list[str]:
    """The pseudonyms of the e-mails queued (of ``kind``), in order."""
    return [d.recipient for d in n.queue.emails(kind)]


async def prefer(n: Notifications, person: str, **choices) -> None:
    await n.handlers.preferences_changed(await n.people.preferences(person, time=n.clock(), **choices))


async def follow(n: Notifications, idea: str, person: str, kind=EngagementKind.FOLLOW, text=None) -> None:
    await n.handlers.engagement(await n.people.engaged(idea, kind, person, text))


async def a_routed_idea(n: Notifications, title: str = "Värmepump i ishallen", **kw) -> str:
    idea = idea_id()
    await n.handlers.submitted(await n.people.submitted(idea, title, time=n.clock(), **kw))
    await n.handlers.routed(routed(idea, title, [("tekniska-verken", "energi")], ["klimat-och-energi"], time=n.clock()))
    return idea


# --- audiences ----------------------------------------------------------------------------------------


async def test_a_submission_alone_tells_nobody_its_routing_tells_submitter_officers_and_subscribers(n):
    await prefer(n, BO, areas=("klimat-och-energi",))
    idea = idea_id()
    await n.handlers.submitted(await n.people.submitted(idea, "Värmepump i ishallen"))
    assert n.sent() == [] and n.queue.deliveries == []

    await n.handlers.routed(
        routed(idea, "Värmepump i ishallen", [("tekniska-verken", "energi")], ["klimat-och-energi"])
    )

    assert heard(n, ANNA) == heard(n, ERIK) == heard(n, BO) == ["routed"]
    assert set(emailed(n, "routed")) == {n.p(ANNA), n.p(ERIK), n.p(BO)}
    assert heard(n, SARA) == []  # kirunabostader's officer: not hers
    texts = {person: n.feed(person)[0]["text"] for person in (ANNA, ERIK, BO)}
    assert len(set(texts.values())) == 3  # each in the words of their role
    assert set(outcomes(n, "in-app")) == {n.p(ANNA), n.p(ERIK), n.p(BO)}


async def test_people_are_pseudonyms_and_no_address_or_name_is_kept_or_told(n):
    await prefer(n, BO, areas=("klimat-och-energi",))
    idea = await a_routed_idea(n)
    await follow(n, idea, "lisa@kiruna.se", EngagementKind.COMMENT, "Bra idé!")
    kept = json.dumps(
        [
            [e.model_dump(mode="json") for e in n.sent()],
            [d.to_json() for d in n.queue.deliveries],
            dict(n.store.feeds),
            [c.model_dump(mode="json") for c in n.store.contacts.values()],
            [p.model_dump(mode="json") for _, p in n.store.prefs.values()],
            {k: sorted(v) for k, v in n.store.subs.items()},
            {i: sorted(idea.followers) for i, idea in n.store.ideas.items()},
        ],
        ensure_ascii=False,
    )
    for person in (ANNA, BO, "lisa@kiruna.se", ERIK):
        assert person not in kept and n.p(person) in kept
    for name in (name_of(ANNA), name_of(BO), name_of("lisa@kiruna.se")):
        assert name not in kept
    assert all(d.recipient in {n.p(ANNA), n.p(ERIK), n.p(BO)} for d in n.queue.emails("routed"))
    assert all("to" not in d.message for d in n.queue.deliveries)


async def test_someone_in_two_groups_hears_once_in_the_words_of_the_first(n):
    await prefer(n, ANNA, areas=("klimat-och-energi",))  # the submitter also follows the area
    await a_routed_idea(n)
    assert heard(n, ANNA) == ["routed"]
    assert emailed(n).count(n.p(ANNA)) == 1
    assert n.feed(ANNA)[0]["text"].startswith("Din idé")  # the submitter's words


async def test_a_status_change_tells_the_submitter_followers_and_subscribers_but_not_who_made_it(n):
    idea = await a_routed_idea(n)
    await follow(n, idea, BO)
    await follow(n, idea, ERIK)  # the officer follows it too
    await prefer(n, LISA, organisations=("tekniska-verken",))

    await n.handlers.status_changed(status(idea, IdeaState.ACKNOWLEDGED, None, changed_by="erik.lindberg"))

    for person in (ANNA, BO, LISA):
        assert heard(n, person)[-1] == "status-changed"
    assert heard(n, ERIK) == ["routed"]  # he made the change


async def test_a_comment_tells_the_submitter_and_followers_not_the_commenter_who_then_follows(n):
    idea = await a_routed_idea(n)
    await follow(n, idea, BO)
    assert heard(n, BO) == []  # following is news to nobody

    await follow(n, idea, LISA, EngagementKind.COMMENT, "Bra idé!")
    assert heard(n, ANNA) == ["routed", "comment"] and heard(n, BO) == ["comment"] and heard(n, LISA) == []
    assert "Bra idé!" in n.feed(ANNA)[0]["text"]  # opened with the commenter's key

    await n.handlers.status_changed(status(idea, IdeaState.IN_ASSESSMENT, None))
    assert heard(n, LISA) == ["status-changed"]  # commenters follow the idea from then on


async def test_an_officers_comment_names_the_officer(n):
    idea = await a_routed_idea(n)
    await follow(n, idea, SARA, EngagementKind.COMMENT, "Vi tittar på det")
    assert n.feed(ANNA)[0]["text"].startswith("Sara Pekkari har kommenterat din idé")


async def test_an_organisation_with_a_webhook_hears_of_its_ideas():
    n = notifications(now=MONDAY, webhooks={"tekniska-verken": {"url": "https://tv.example/hook", "secret": "s"}})
    idea = idea_id()
    await n.handlers.submitted(await n.people.submitted(idea, "Värmepump"))
    await n.handlers.routed(routed(idea, "Värmepump", [("tekniska-verken", "energi"), ("kirunabostader", None)], []))
    [hook] = n.queue.webhooks()
    assert hook.recipient == "webhook:tekniska-verken" and hook.organisation == "tekniska-verken"
    assert hook.message["idea_id"] == idea and hook.message["kind"] == "routed"
    assert hook.message["text"].startswith("En ny idé") and hook.message["text_en"].startswith("A new idea")


async def test_a_redelivered_event_changes_nothing_a_second_time(n):
    idea = idea_id()
    await n.handlers.submitted(await n.people.submitted(idea, "Värmepump"))
    event = routed(idea, "Värmepump", [("tekniska-verken", "energi")], [])
    await n.handlers.routed(event)
    sent, queued = len(n.sent()), len(n.queue.deliveries)
    await n.handlers.routed(event)
    assert (len(n.sent()), len(n.queue.deliveries)) == (sent, queued) and heard(n, ANNA) == ["routed"]
    skips = {"service": "notifications", "topic": "routed"}
    assert n.metrics.registry.get_sample_value("kiruna_idempotent_skips_total", skips) == 1


# --- people erased ------------------------------------------------------------------------------------------


async def test_an_erased_person_is_forgotten_and_hears_nothing_more(n):
    await prefer(n, BO, areas=("klimat-och-energi",), frequency="daily")
    idea = await a_routed_idea(n)
    await follow(n, idea, BO)
    await follow(n, idea, BO, EngagementKind.COMMENT, "Min kommentar")
    assert heard(n, BO) == ["routed"] and n.store.digests  # his daily digest waits
    bo = n.p(BO)
    n.queue.queued["pending"] = Delivery("pending", "email", bo, idea, "cause", "routed", message={})

    await n.handlers.person_erased(await n.people.erase(BO))

    assert n.feed(BO) == [] and bo not in n.store.prefs and bo not in n.store.contacts
    assert all(bo not in people for people in n.store.subs.values())
    assert bo not in (await n.store.facts(idea)).followers
    assert all(bo not in people for people in n.store.digests.values())
    assert all(d.recipient != bo for d in n.queue.deliveries)
    assert await n.handlers.send_digest(MONDAY.date()) == 0  # his digest is gone

    sent_before, queued_before = len(n.sent()), len(n.queue.deliveries)
    await n.handlers.status_changed(status(idea, IdeaState.IN_ASSESSMENT, None))
    await n.handlers.routed(routed(idea_id(), "Ny", [("tekniska-verken", None)], ["klimat-och-energi"]))
    assert heard(n, BO) == [] and bo not in emailed(n)
    assert all(e.data.recipient != bo for e in n.sent()[sent_before:])  # not even as skipped: he is no audience
    assert len(n.queue.deliveries) > queued_before  # the others heard

    # the erasure again changes nothing
    await n.handlers.person_erased(erasure(bo))
    assert n.feed(BO) == []


async def test_an_erased_persons_comments_read_as_removed_in_the_feeds_that_quoted_them(n):
    await prefer(n, BO, frequency="daily")
    idea = await a_routed_idea(n)
    await follow(n, idea, BO)
    await follow(n, idea, LISA, EngagementKind.COMMENT, "Jag har en skottkärra")
    assert "skottkärra" in n.feed(ANNA)[0]["text"] and "by" not in (await n.store.feed(n.p(ANNA), 1))[0]
    assert "skottkärra" in json.dumps(n.store.digests, ensure_ascii=False)  # Bo's daily digest quotes her too

    await n.handlers.person_erased(await n.people.erase(LISA))

    kept = json.dumps([n.store.feeds, n.store.digests], ensure_ascii=False)
    assert "skottkärra" not in kept and n.p(LISA) not in kept
    assert n.feed(ANNA)[0]["text"].endswith("(Kommentaren är borttagen)")


async def test_mails_still_waiting_that_quote_an_erased_commenter_go_without_their_words(n):
    idea = await a_routed_idea(n)  # Anna's: she hears of comments by e-mail, at once
    await follow(n, idea, LISA, EngagementKind.COMMENT, "Jag har en skottkärra")
    waiting = [d for d in n.queue.deliveries if d.kind == "comment"]
    assert waiting and all("skottkärra" in json.dumps(d.message, ensure_ascii=False) for d in waiting)

    await n.handlers.person_erased(await n.people.erase(LISA))

    after = [d for d in n.queue.deliveries if d.kind == "comment"]
    assert {d.id for d in after} == {d.id for d in waiting}  # still sent, to the same people
    assert "skottkärra" not in json.dumps([d.message for d in after], ensure_ascii=False)
    assert all(d.by is None and d.removed is None for d in after)


async def test_an_erased_submitters_idea_stays_and_they_hear_nothing_of_it(n):
    idea = await a_routed_idea(n)
    await follow(n, idea, BO)
    await n.handlers.person_erased(await n.people.erase(ANNA))

    facts = await n.store.facts(idea)
    assert facts.title == "Värmepump i ishallen" and facts.submitter is None  # the idea stays, its contact not
    await n.handlers.status_changed(status(idea, IdeaState.ACCEPTED, "Bra"))
    assert heard(n, ANNA) == [] and heard(n, BO) == ["status-changed"]


async def test_events_sealed_under_a_key_that_is_gone_are_handled_without_the_person(n):
    """A submission, a comment and a follow by people whose keys are gone (a replay after their erasure, or an
    event that was on its way): handled all the same, never refused, and nothing is made of those people."""
    idea = idea_id()
    submission = await n.people.submitted(idea, "Cykelställ")
    comment = await n.people.engaged(idea, EngagementKind.COMMENT, LISA, "Hemlig text")
    follow_ = await n.people.engaged(idea, EngagementKind.FOLLOW, BO)
    await n.keyring.erase(n.p(ANNA))
    await n.keyring.erase(n.p(LISA))
    await n.keyring.erase(n.p(BO))

    await n.handlers.submitted(submission)
    await n.handlers.routed(routed(idea, "Cykelställ", [("tekniska-verken", "energi")], []))
    await n.handlers.engagement(follow_)
    await prefer(n, PER)
    await follow(n, idea, PER)
    await n.handlers.engagement(comment)

    facts = await n.store.facts(idea)
    assert facts.submitter is None and facts.followers == {n.p(PER)}
    assert heard(n, ERIK) == ["routed"] and heard(n, PER) == ["comment"]  # the submitter is gone
    assert "Kommentaren är borttagen" in n.feed(PER)[0]["text"] and "Hemlig" not in json.dumps(n.store.feeds)
    assert set(n.store.contacts) == {n.p(PER)} and n.dead_letters.records == []


async def test_a_preferences_event_of_someone_erased_since_is_not_applied(n):
    old = await n.people.preferences(BO, areas=("boende",), time=n.clock())
    await n.keyring.erase(n.p(BO))
    await n.handlers.preferences_changed(old)
    assert n.p(BO) not in n.store.prefs and n.store.subs.get("area:boende", set()) == set()


async def test_an_erasure_that_comes_before_the_key_is_gone_still_keeps_the_person_erased(n):
    """The erasure reaches notifications while the person's old key still answers (intake drops it a moment
    later): what is sealed under that key makes nothing of them; once they come back with a new key, they start
    from nothing and are heard again."""
    idea = await a_routed_idea(n)
    late_follow = await n.people.engaged(idea, EngagementKind.FOLLOW, BO)
    await n.handlers.person_erased(erasure(n.p(BO)))  # the key is still there
    await n.handlers.engagement(late_follow)
    assert n.p(BO) not in (await n.store.facts(idea)).followers

    await n.keyring.erase(n.p(BO))
    await follow(n, idea, BO)  # he comes back: a new key, made after the erasure
    await n.handlers.status_changed(status(idea, IdeaState.IN_ASSESSMENT, None))
    assert heard(n, BO) == ["status-changed"]


async def test_an_erased_officer_hears_nothing_while_still_in_the_catalogue(n):
    await prefer(n, ERIK)  # the officer has a key (he set his preferences)
    await n.handlers.person_erased(await n.people.erase(ERIK))
    await a_routed_idea(n)
    assert heard(n, ERIK) == [] and n.p(ERIK) not in emailed(n)
    assert outcomes(n, "email")[n.p(ERIK)] == (DeliveryOutcome.SKIPPED, "erased")


# --- waiting for the submission -------------------------------------------------------------------------


async def test_an_event_whose_submission_has_not_been_seen_waits_until_it_has(n):
    idea = idea_id()
    await n.handlers.routed(routed(idea, "Snöröjning", [("kiruna-kommun", "samhallsbyggnad")], []))
    assert n.sent() == [] and len(await n.room.held(idea)) == 1
    assert await n.room.waiting_ideas() == (1, MONDAY.timestamp())

    await n.handlers.submitted(await n.people.submitted(idea, "Snöröjning"))

    assert heard(n, ANNA) == ["routed"] and await n.room.held(idea) == {}
    assert await n.room.waiting_ideas() == (0, None) and n.room.releaser(idea) is None


async def test_waiting_events_are_released_oldest_first_whatever_order_they_arrived_in(n):
    idea = idea_id()
    first = routed(idea, "Snöröjning", [("kiruna-kommun", "samhallsbyggnad")], [], time=MONDAY)
    second = status(idea, IdeaState.ACKNOWLEDGED, None, changed_by="maria.nilsson")
    second = second.model_copy(update={"time": MONDAY + timedelta(minutes=5)})
    third = await n.people.engaged(idea, EngagementKind.COMMENT, LISA, "Äntligen")
    third = third.model_copy(update={"time": MONDAY + timedelta(minutes=10)})
    for event, handle in ((third, n.handlers.engagement), (second, n.handlers.status_changed)):
        await handle(event)
    await n.handlers.routed(first)
    assert len(await n.room.held(idea)) == 3 and n.sent() == []

    await n.handlers.submitted(await n.people.submitted(idea, "Snöröjning"))

    assert heard(n, ANNA) == ["routed", "status-changed", "comment"]
    causes = list(dict.fromkeys(e.data.cause_event_id for e in n.sent()))
    assert causes == [first.id, second.id, third.id]
    assert (await n.store.facts(idea)).state == "acknowledged" and idea in n.store.open  # assessment runs


async def test_nothing_overtakes_a_waiting_event_of_the_same_idea(n):
    """bo follows before the submission is seen; the submission lands but its releaser dies before releasing;
    lisa's comment then waits behind bo's follow (so bo hears of it) until the lease runs out and the next event
    of the idea releases them all, in order."""
    idea = idea_id()
    submission = await n.people.submitted(idea, "Belysning i gångtunneln")
    await follow(n, idea, BO)
    await n.store.remember_contact(n.p(ANNA), submission.data.submitter.sealed)
    await n.store.remember_submission(idea, domain.Contact(n.p(ANNA)), title="Belysning i gångtunneln")
    assert await n.room.start_release(idea, owner=submission.id)  # ... and the process dies here

    n.clock.advance(seconds=1)
    await follow(n, idea, LISA, EngagementKind.COMMENT, "Bra idé!")
    assert len(await n.room.held(idea)) == 2 and heard(n, ANNA) == []  # the lease still runs: it waits too

    n.clock.advance(seconds=61)
    await follow(n, idea, LISA, EngagementKind.SUPPORT)

    assert heard(n, ANNA) == heard(n, BO) == ["comment"] and heard(n, LISA) == []
    assert await n.room.held(idea) == {} and await n.room.waiting_ideas() == (0, None)
    assert n.p(LISA) in (await n.store.facts(idea)).followers


async def test_a_waiting_event_that_can_never_be_handled_goes_to_its_topics_dead_letter_topic(tmp_path: Path):
    templates = tmp_path / "templates"
    for language in ("sv", "en"):
        (templates / language).mkdir(parents=True)
        for file in (TEMPLATES_DIR / language).iterdir():
            (templates / language / file.name).write_text(file.read_text())
        (templates / language / "status-changed.txt.j2").write_text("{% block subject %}{{ nothing }}{% endblock %}")
    n = notifications(now=MONDAY, templates_dir=templates)
    idea = idea_id()
    broken = status(idea, IdeaState.ACKNOWLEDGED, None).model_copy(update={"time": MONDAY})
    await n.handlers.status_changed(broken)  # it waits for its submission
    await follow(n, idea, BO)

    await n.handlers.submitted(await n.people.submitted(idea, "Snöröjning"))

    [(topic, value, key, error)] = n.dead_letters.records
    assert topic == n.topics.status_changed and key == idea.encode() and json.loads(value)["id"] == broken.id
    assert isinstance(error, PermanentError)
    assert await n.room.held(idea) == {} and n.p(BO) in (await n.store.facts(idea)).followers


# --- digests ----------------------------------------------------------------------------------------------


async def test_a_daily_digest_collects_the_days_news_and_is_sent_once():
    n = notifications(now=MONDAY)
    await prefer(n, ANNA, frequency="daily")
    for title in ("Värmepump", "Solpaneler"):
        idea = idea_id()
        await n.handlers.submitted(await n.people.submitted(idea, title))
        await n.handlers.routed(routed(idea, title, [("tekniska-verken", "energi")], [], time=MONDAY))

    assert n.queue.emails() and n.p(ANNA) not in emailed(n)  # no e-mail to her yet
    assert heard(n, ANNA) == ["routed", "routed"]  # in-app at once
    assert outcomes(n, "email")[n.p(ANNA)] == (DeliveryOutcome.SKIPPED, "preference: daily digest")

    n.clock.now = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)  # Tuesday 06:00 in Kiruna: before the digest hour
    assert await n.handlers.send_due_digest() == 0
    n.clock.now = datetime(2026, 3, 3, 6, 30, tzinfo=UTC)  # 07:30
    assert await n.handlers.send_due_digest() == 1
    assert await n.handlers.send_due_digest() == 0  # once per day
    [digest] = n.queue.emails("digest")
    assert digest.recipient == n.p(ANNA) and digest.idea_id == "digest-2026-03-02"
    assert "Värmepump" in digest.message["text"] and "Solpaneler" in digest.message["text"]


async def test_nothing_is_collected_for_someone_who_hears_at_once(n):
    await a_routed_idea(n)
    n.clock.now = MONDAY + timedelta(days=1)
    assert await n.handlers.send_due_digest() == 0 and n.queue.emails("digest") == []


# --- deadlines ---------------------------------------------------------------------------------------------


async def test_the_acknowledgement_target_warns_the_officers_then_tells_the_office_once_each(n):
    """Submitted and routed on a Monday, acknowledged within five working days (by the end of the next Monday, as
    analytics measures): a warning one working day before (Friday), missed the Tuesday after; a weekend is no
    working day."""
    await a_routed_idea(n)
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=3)) == 0  # Thursday: in time
    n.clock.now = MONDAY + timedelta(days=4)  # Friday: one working day left
    assert await n.handlers.check_deadlines() == 1
    assert heard(n, ERIK)[-1] == "deadline-warning" and heard(n, OFFICE) == []
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=5)) == 0  # never twice; Saturday
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=7, hours=1)) == 0  # next Monday: the last day
    assert await n.handlers.check_deadlines(MONDAY + timedelta(days=8)) == 1  # Tuesday: missed
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

    assert heard(n, ANNA) == ["routed"] and n.p(ANNA) not in emailed(n)
    assert outcomes(n, "email")[n.p(ANNA)] == (DeliveryOutcome.SKIPPED, "preference: e-mail off")
    assert heard(n, ERIK) == []
    assert outcomes(n, "in-app")[n.p(ERIK)] == (DeliveryOutcome.SKIPPED, "preference: in-app off")
    [to_erik] = [d for d in n.queue.emails() if d.recipient == n.p(ERIK)]
    assert to_erik.message["language"] == "en" and to_erik.message["subject"].startswith("A new idea for you")


async def test_the_newest_preferences_win_whatever_order_they_arrive_in(n):
    newer = await n.people.preferences(PER, areas=("klimat-och-energi",), time=MONDAY)
    older = await n.people.preferences(PER, channels=(), areas=(), time=MONDAY - timedelta(hours=1))
    await n.handlers.preferences_changed(newer)
    await n.handlers.preferences_changed(older)
    await a_routed_idea(n)
    assert heard(n, PER) == ["routed"]  # a subscriber of the area, on every channel

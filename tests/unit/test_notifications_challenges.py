"""Challenges in notifications: who a challenge asks (services/notifications/challenges.py, pure), and the handlers
on in-memory fakes (tests/fakes/notifications.py): the audience told once when it opens, by their own channels and
in their language, and reminded once a week before it closes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications import challenges
from services.notifications.challenges import Place
from services.notifications.domain import Directory
from shared.catalogue import load_catalogue
from shared.events import DeliveryOutcome, EngagementKind
from shared.sealing import pseudonym
from tests.fakes.notifications import Notifications, notifications
from tests.support.notifications import ANNA, ERIK, OFFICE, SARA, challenge, erasure

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CATALOGUE = load_catalogue()
PEOPLE = Directory.of(CATALOGUE, lambda email: pseudonym(b"pepper", email))
KARIN = "karin.heikki@tekniskaverken.kiruna.se"  # Tekniska Verken, avfall-och-atervinning
MARIA = "maria.nilsson@kiruna.se"  # Kiruna kommun, samhällsbyggnad
BO, LISA, KIM, OLLE = "bo@kiruna.se", "lisa@kiruna.se", "kim@kiruna.se", "olle@kiruna.se"


@pytest.fixture
def n() -> Notifications:
    return notifications(now=MONDAY)


def opened(question: str = "Hur minskar vi energianvändningen i våra lokaler?", **kw):
    kw.setdefault("opens_at", MONDAY)
    return challenge(question, **kw).data


# --- who is asked (pure) ------------------------------------------------------------------------------------


def test_an_empty_audience_asks_every_organisation_and_a_unit_only_its_own():
    assert challenges.places(opened(audience=()), CATALOGUE.organisation_ids) == tuple(
        Place(org) for org in CATALOGUE.organisation_ids
    )
    unit = opened(audience=(("tekniska-verken", "energi"), ("tekniska-verken", "energi")))
    assert challenges.places(unit, CATALOGUE.organisation_ids) == (Place("tekniska-verken", "energi"),)


def test_the_officers_asked_are_those_of_the_organisation_or_of_the_unit():
    officers = lambda *places: sorted(o.id for o in challenges.officers_asked(PEOPLE, places))  # noqa: E731
    assert officers(Place("tekniska-verken")) == ["erik.lindberg", "karin.heikki"]
    assert officers(Place("tekniska-verken", "energi")) == ["erik.lindberg"]
    assert officers(Place("kirunabostader", "forvaltning"), Place("innovationsplattformen")) == [
        "innovation.office",
        "sara.pekkari",
    ]


def test_the_audience_is_the_officers_and_the_people_known_there_once_each_not_the_opener():
    known = {PEOPLE.pseudonyms["karin.heikki"], "a" * 32}  # an officer also known from her events: heard once
    audience = challenges.audience(opened(opened_by="erik.lindberg"), known, PEOPLE)
    assert sorted(r.person for r in audience.recipients) == sorted([PEOPLE.pseudonyms["karin.heikki"], "a" * 32])
    assert {r.role for r in audience.recipients} == {"asked"} and audience.organisations == ()


def test_the_reminder_comes_a_week_before_closing_unless_the_challenge_is_shorter():
    month = opened(closes_in=timedelta(days=30))
    assert challenges.reminder_at(month, 7) == month.closes_at - timedelta(days=7)
    states = [challenges.closing_state(month, MONDAY + timedelta(days=d), 7) for d in (0, 22, 23, 29, 30)]
    assert states == ["open", "open", "closing", "closing", "closed"]
    week = opened(closes_in=timedelta(days=5))
    assert challenges.reminder_at(week, 7) is None and challenges.closing_state(week, MONDAY, 7) == "open"
    assert challenges.reminder_at(month, 0) is None  # CHALLENGE_REMINDER_DAYS=0: no reminder


# --- told when it opens -----------------------------------------------------------------------------------------


def heard(n: Notifications, person: str) -> list[str]:
    return [item["kind"] for item in reversed(n.feed(person))]


async def seen(n: Notifications, email: str, organisation: str | None, unit: str | None = None, *, at=MONDAY) -> str:
    """Notifications sees the person (with where they work) in an event of theirs: a submission (its idea's id)."""
    idea = str(uuid.uuid4())
    event = await n.people.submitted(idea, "Något", email, organisation=organisation, unit=unit, time=at)
    await n.handlers.submitted(event)
    return idea


async def test_a_challenge_tells_its_officers_and_the_people_known_there_when_it_opened(n):
    idea = await seen(n, BO, "tekniska-verken", "energi", at=MONDAY - timedelta(days=3))
    await seen(n, OLLE, "tekniska-verken", "stadsnat", at=MONDAY - timedelta(days=2))
    await n.handlers.engagement(  # Lisa is known from her follow of Bo's idea
        await n.people.engaged(
            idea,
            EngagementKind.FOLLOW,
            LISA,
            organisation="tekniska-verken",
            time=MONDAY - timedelta(days=1),
        )
    )
    await seen(n, ANNA, "kiruna-kommun", "samhallsbyggnad", at=MONDAY - timedelta(days=1))  # another organisation
    await seen(n, KIM, "tekniska-verken", "energi", at=MONDAY + timedelta(hours=1))  # seen after it opened
    event = challenge("Hur minskar vi energianvändningen?", opens_at=MONDAY, opened_by="erik.lindberg")

    await n.handlers.challenge_opened(event)

    told = {person for person in (BO, OLLE, LISA, KARIN) if heard(n, person) == ["challenge-opened"]}
    assert told == {BO, OLLE, LISA, KARIN}
    assert heard(n, ERIK) == [] and heard(n, ANNA) == [] and heard(n, KIM) == [] and heard(n, SARA) == []
    assert {d.recipient for d in n.queue.emails("challenge-opened")} == {n.p(p) for p in (BO, OLLE, LISA, KARIN)}

    cid = event.data.challenge_id
    [item] = n.feed(BO)
    assert item["path"] == f"/challenges/{cid}" and item["idea_id"] == f"challenge-{cid}"
    assert item["link"].endswith(f"/challenges/{cid}")
    assert item["text"].startswith("Tekniska Verken") and "energianvändningen" in item["text"]
    [mail] = [d for d in n.queue.emails("challenge-opened") if d.recipient == n.p(BO)]
    assert mail.idea_id == f"challenge-{cid}" and mail.message["subject"].startswith("Ny utmaning från Tekniska Verken")
    assert f"/challenges/{cid}" in mail.message["text"] and "Svara på utmaningen" in mail.message["text"]
    assert "Erik Lindberg" in mail.message["text"] and "2026-04-01" in mail.message["text"]  # who asks; last day
    assert {e.data.idea_id for e in n.sent()} == {f"challenge-{cid}"}

    await n.handlers.challenge_opened(event)  # redelivered: nothing twice
    assert heard(n, BO) == ["challenge-opened"] and len(n.queue.emails("challenge-opened")) == 4


async def test_a_unit_challenge_asks_only_that_unit_and_an_empty_audience_the_whole_group(n):
    await seen(n, BO, "tekniska-verken", "energi", at=MONDAY - timedelta(days=1))
    await seen(n, OLLE, "tekniska-verken", "stadsnat", at=MONDAY - timedelta(days=1))
    await seen(n, ANNA, "kiruna-kommun", None, at=MONDAY - timedelta(days=1))
    energy = (("tekniska-verken", "energi"),)
    unit = challenge("Enhetens fråga", audience=energy, opens_at=MONDAY, opened_by="karin.heikki")
    await n.handlers.challenge_opened(unit)
    assert [p for p in (BO, OLLE, ANNA, ERIK, KARIN) if heard(n, p)] == [BO, ERIK]

    group = challenge(
        "Hela koncernens fråga",
        organisation="innovationsplattformen",
        audience=(),
        opens_at=MONDAY,
        opened_by="innovation.office",
    )
    await n.handlers.challenge_opened(group)
    for person in (BO, OLLE, ANNA, ERIK, KARIN, SARA, MARIA):
        assert heard(n, person)[-1] == "challenge-opened", person
    assert heard(n, OFFICE) == []  # it opened it


async def test_someone_who_moved_is_asked_where_they_work_now(n):
    await seen(n, BO, "tekniska-verken", "energi", at=MONDAY - timedelta(days=5))
    await seen(n, BO, "kirunabostader", "forvaltning", at=MONDAY - timedelta(days=2))
    await seen(n, BO, "tekniska-verken", "energi", at=MONDAY - timedelta(days=4))  # an older event, read late
    await n.handlers.challenge_opened(challenge("Fråga", opens_at=MONDAY))
    assert heard(n, BO) == []
    await n.handlers.challenge_opened(challenge("Fråga", audience=(("kirunabostader", None),), opens_at=MONDAY))
    assert heard(n, BO) == ["challenge-opened"]


async def test_the_audience_hears_by_their_own_channels_and_language_and_the_erased_not_at_all(n):
    for person in (BO, OLLE, LISA, KIM):
        await seen(n, person, "tekniska-verken", "energi", at=MONDAY - timedelta(days=1))
    await n.handlers.preferences_changed(await n.people.preferences(BO, language="en", time=MONDAY))
    await n.handlers.preferences_changed(await n.people.preferences(OLLE, frequency="daily", time=MONDAY))
    await n.handlers.preferences_changed(await n.people.preferences(LISA, channels=("in-app",), time=MONDAY))
    await n.handlers.person_erased(await n.people.erase(KIM))

    await n.handlers.challenge_opened(challenge("Hur sparar vi el?", opens_at=MONDAY, description="Vi vill veta."))

    [to_bo] = [d for d in n.queue.emails("challenge-opened") if d.recipient == n.p(BO)]
    assert to_bo.message["language"] == "en" and to_bo.message["subject"].startswith("New challenge from Tekniska")
    assert "Answer the challenge" in to_bo.message["text"] and "Vi vill veta." in to_bo.message["text"]
    assert n.p(OLLE) not in [d.recipient for d in n.queue.emails()] and n.store.digests  # in his daily digest
    assert n.p(LISA) not in [d.recipient for d in n.queue.emails()] and heard(n, LISA) == ["challenge-opened"]
    assert heard(n, KIM) == [] and n.p(KIM) not in {e.data.recipient for e in n.sent()}
    outcome = {(e.data.recipient, e.data.channel): e.data.outcome for e in n.sent()}
    assert outcome[(n.p(LISA), "email")] is DeliveryOutcome.SKIPPED


# --- reminded before it closes ----------------------------------------------------------------------------------


async def test_the_audience_is_reminded_once_a_week_before_it_closes_and_a_closed_challenge_is_forgotten(n):
    await seen(n, BO, "tekniska-verken", "energi", at=MONDAY - timedelta(days=1))
    month = challenge("Hur sparar vi el?", opens_at=MONDAY, closes_in=timedelta(days=30))
    week = challenge("Kort fråga", opens_at=MONDAY, closes_in=timedelta(days=5))
    await n.handlers.challenge_opened(month)
    await n.handlers.challenge_opened(week)
    await seen(n, OLLE, "tekniska-verken", None, at=MONDAY + timedelta(days=10))  # known since: reminded too

    assert await n.handlers.remind_closing_challenges(MONDAY + timedelta(days=22)) == 0
    assert await n.handlers.remind_closing_challenges(MONDAY + timedelta(days=23)) == 1
    assert await n.handlers.remind_closing_challenges(MONDAY + timedelta(days=24)) == 0  # once
    assert heard(n, BO) == ["challenge-opened", "challenge-opened", "challenge-closing"]
    assert heard(n, OLLE) == ["challenge-closing"] and heard(n, KARIN)[-1] == "challenge-closing"
    [mail] = [d for d in n.queue.emails("challenge-closing") if d.recipient == n.p(BO)]
    assert mail.message["subject"] == "Utmaningen stänger snart: Hur sparar vi el?"
    assert "2026-04-01" in mail.message["text"]

    assert set(n.store.challenges) == {month.data.challenge_id}  # the short one closed (day 5): forgotten
    assert await n.handlers.remind_closing_challenges(MONDAY + timedelta(days=31)) == 0
    assert n.store.challenges == {}


async def test_an_erasure_forgets_where_the_person_works(n):
    await seen(n, BO, "tekniska-verken", "energi", at=MONDAY - timedelta(days=1))
    bo = n.p(BO)
    await n.handlers.person_erased(erasure(bo))
    assert bo not in n.store.where and all(bo not in people for people in n.store.places.values())

"""The work people do on an idea (issue 18) as notifications tells it, on in-memory fakes: an assignment tells the
officer given the idea; an edit tells nobody but renames the idea in later news; a withdrawal tells its officers
and assignee (with the reason), never the submitter; a merge carries the merged idea's followers (supporters too)
and submitter over to the idea it went into and tells them so; an anonymous comment never names its writer, an
official one is told as its organisation's answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.notifications import domain
from services.notifications.domain import Contact, Directory, IdeaFacts
from shared.catalogue import load_catalogue
from shared.events import EngagementKind, IdeaState
from shared.sealing import pseudonym
from tests.fakes.notifications import Notifications, notifications
from tests.support.notifications import ANNA, ERIK, SARA, assigned, edited, name_of, routed, status

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KARIN = "karin.heikki@tekniskaverken.kiruna.se"
BO, LISA, PER, OLLE = "bo@kiruna.se", "lisa@kiruna.se", "per@kiruna.se", "olle@kiruna.se"
CATALOGUE = load_catalogue()
PEOPLE = Directory.of(CATALOGUE, lambda email: pseudonym(b"pepper", email))


@pytest.fixture
def n() -> Notifications:
    return notifications(now=MONDAY)


def heard(n: Notifications, person: str) -> list[str]:
    return [item["kind"] for item in reversed(n.feed(person))]


def mail_to(n: Notifications, person: str, kind: str) -> dict:
    [delivery] = [d for d in n.queue.emails(kind) if d.recipient == n.p(person)]
    return delivery.message


async def an_idea(n: Notifications, title: str = "Värmepump i ishallen", submitter: str = ANNA) -> str:
    idea = str(uuid.uuid4())
    await n.handlers.submitted(await n.people.submitted(idea, title, submitter, time=MONDAY))
    await n.handlers.routed(routed(idea, title, [("tekniska-verken", "energi")], ["klimat-och-energi"], time=MONDAY))
    return idea


# --- pure rules -----------------------------------------------------------------------------------------------


def test_who_is_carried_over_by_a_merge_the_followers_and_the_submitter():
    f = IdeaFacts(idea_id="i", submitter=Contact("a" * 32), followers=frozenset({"b" * 32, "c" * 32}))
    assert domain.carried_over(f) == {"a" * 32, "b" * 32, "c" * 32}
    assert domain.carried_over(IdeaFacts(idea_id="i")) == frozenset()


def test_an_assignment_tells_the_assignee_unless_they_took_it_themself_or_it_was_taken_back():
    karin = PEOPLE.pseudonyms["karin.heikki"]
    given = domain.assigned_audience("karin.heikki", "erik.lindberg", PEOPLE)
    assert [(r.person, r.role) for r in given.recipients] == [(karin, "assignee")]
    assert domain.assigned_audience("karin.heikki", "karin.heikki", PEOPLE).recipients == ()
    assert domain.assigned_audience(None, "erik.lindberg", PEOPLE).recipients == ()
    assert domain.assigned_audience("nobody", "erik.lindberg", PEOPLE).recipients == ()


# --- assignment ----------------------------------------------------------------------------------------------------


async def test_the_officer_given_an_idea_hears_who_gave_it_and_a_reassignment_tells_the_new_one(n):
    idea = await an_idea(n)
    await n.handlers.assigned(assigned(idea, "tekniska-verken", "karin.heikki", "erik.lindberg"))
    assert heard(n, KARIN) == ["assigned"]
    message = mail_to(n, KARIN, "assigned")
    assert message["subject"] == "Du har fått idén ”Värmepump i ishallen”"
    assert "Erik Lindberg har gett dig idén" in message["text"] and f"/ideas/{idea}" in message["text"]
    assert "Tekniska Verken" in n.feed(KARIN)[0]["text"]

    await n.handlers.assigned(assigned(idea, "tekniska-verken", "erik.lindberg", "karin.heikki", "karin.heikki"))
    assert heard(n, ERIK) == ["routed", "assigned"] and heard(n, KARIN) == ["assigned"]
    await n.handlers.assigned(assigned(idea, "tekniska-verken", "erik.lindberg", "erik.lindberg", "erik.lindberg"))
    assert heard(n, ERIK) == ["routed", "assigned"]  # he took it himself: nothing to tell him
    assert (await n.store.facts(idea)).assignees == {"tekniska-verken": "erik.lindberg"}
    assert heard(n, ANNA) == ["routed"]  # the submitter is not told who has it


async def test_an_assignment_that_overtook_its_submission_waits_for_it(n):
    idea = str(uuid.uuid4())
    event = assigned(idea, "tekniska-verken", "karin.heikki", "erik.lindberg")
    await n.handlers.assigned(event)
    assert heard(n, KARIN) == [] and len(await n.room.held(idea)) == 1
    await n.handlers.submitted(await n.people.submitted(idea, "Solceller på taken", time=MONDAY))
    assert heard(n, KARIN) == ["assigned"] and "Solceller på taken" in n.feed(KARIN)[0]["text"]


# --- edits --------------------------------------------------------------------------------------------------------


async def test_an_edit_tells_nobody_and_later_news_uses_the_new_title(n):
    idea = await an_idea(n, "Värmepump i ishalen")
    await n.handlers.engagement(await n.people.engaged(idea, EngagementKind.FOLLOW, BO))
    sent, queued = len(n.sent()), len(n.queue.deliveries)

    await n.handlers.edited(edited(idea, "Värmepump i ishallen", n.p(ANNA)))

    assert (len(n.sent()), len(n.queue.deliveries)) == (sent, queued)
    await n.handlers.status_changed(status(idea, IdeaState.ACKNOWLEDGED, None))
    assert "”Värmepump i ishallen”" in n.feed(BO)[0]["text"]


# --- withdrawals ----------------------------------------------------------------------------------------------------


async def test_a_withdrawal_tells_the_officers_the_assignee_and_followers_with_the_reason_not_the_submitter(n):
    idea = await an_idea(n)
    await n.handlers.engagement(await n.people.engaged(idea, EngagementKind.SUPPORT, BO))
    await n.handlers.assigned(assigned(idea, "tekniska-verken", "karin.heikki", "erik.lindberg"))

    await n.handlers.status_changed(status(idea, IdeaState.WITHDRAWN, "Det löste sig av sig självt", n.p(ANNA)))

    assert heard(n, ERIK)[-1] == heard(n, KARIN)[-1] == heard(n, BO)[-1] == "withdrawn"
    assert heard(n, ANNA) == ["routed"]  # she did it
    officer = mail_to(n, ERIK, "withdrawn")
    assert officer["subject"] == "Idén ”Värmepump i ishallen” har dragits tillbaka"
    assert "Skälet: Det löste sig av sig självt" in officer["text"] and "behöver inte göra något mer" in officer["text"]
    assert n.feed(BO)[0]["text"].startswith("Idén ”Värmepump i ishallen” som du följer har dragits tillbaka")
    assert idea not in n.store.open  # and no target is warned of any more


async def test_a_withdrawal_without_a_reason_is_told_in_english_to_those_who_chose_it(n):
    idea = await an_idea(n)
    await n.handlers.preferences_changed(await n.people.preferences(ERIK, language="en", time=MONDAY))
    await n.handlers.status_changed(status(idea, IdeaState.WITHDRAWN, None, n.p(ANNA)))
    message = mail_to(n, ERIK, "withdrawn")
    assert message["subject"] == 'The idea "Värmepump i ishallen" has been withdrawn'
    assert "Their reason" not in message["text"] and "None" not in message["text"]


# --- merges carry followers over -----------------------------------------------------------------------------------


async def test_a_merge_carries_followers_supporters_and_the_submitter_over_and_tells_them(n):
    target = await an_idea(n, "Värmepumpar i idrottshallarna", submitter=PER)
    merged = await an_idea(n, "Värmepump i ishallen")
    await n.handlers.engagement(await n.people.engaged(merged, EngagementKind.FOLLOW, BO))
    await n.handlers.engagement(await n.people.engaged(merged, EngagementKind.SUPPORT, LISA))
    await n.handlers.preferences_changed(
        await n.people.preferences(OLLE, organisations=("tekniska-verken",), time=MONDAY)
    )

    await n.handlers.status_changed(status(merged, IdeaState.MERGED, "Samma idé", merged_into=target))

    for person in (ANNA, BO, LISA):
        assert heard(n, person)[-1] == "status-changed", person
        message = mail_to(n, person, "status-changed")
        assert f"med en annan idé: http://127.0.0.1:8003/ideas/{target}" in message["text"]
        assert "Du följer nu den idén i stället" in message["text"], person
    assert "Du följer nu" not in mail_to(n, OLLE, "status-changed")["text"]  # a subscriber of the organisation
    assert {n.p(p) for p in (ANNA, BO, LISA)} <= (await n.store.facts(target)).followers

    await n.handlers.status_changed(status(target, IdeaState.ACCEPTED, "Vi gör det"))
    for person in (ANNA, BO, LISA, PER):
        assert heard(n, person)[-1] == "status-changed", person
    assert "Värmepumpar i idrottshallarna" in n.feed(BO)[0]["text"]


async def test_someone_carried_over_and_then_erased_is_forgotten_on_the_target_too(n):
    target = await an_idea(n, "Värmepumpar i idrottshallarna", submitter=PER)
    merged = await an_idea(n)
    await n.handlers.engagement(await n.people.engaged(merged, EngagementKind.FOLLOW, BO))
    await n.handlers.status_changed(status(merged, IdeaState.MERGED, "Samma idé", merged_into=target))
    await n.handlers.person_erased(await n.people.erase(BO))
    assert n.p(BO) not in (await n.store.facts(target)).followers


# --- comments: anonymous and official ------------------------------------------------------------------------------


async def test_an_anonymous_comment_never_names_its_writer_even_an_officer(n):
    idea = await an_idea(n)
    await n.handlers.engagement(await n.people.engaged(idea, EngagementKind.FOLLOW, BO))
    comment = await n.people.engaged(idea, EngagementKind.COMMENT, SARA, "Vi borde prova", anonymous=True)
    await n.handlers.engagement(comment)
    for person in (ANNA, BO):
        text = n.feed(person)[0]["text"]
        assert "anonym" in text and "Sara" not in text and "Vi borde prova" in text
    message = mail_to(n, ANNA, "comment")
    assert "Sara" not in message["text"] + message["subject"] and "vill vara anonym" in message["text"]
    assert name_of(SARA) not in message["html"]


async def test_an_official_comment_is_told_as_the_organisations_answer(n):
    idea = await an_idea(n)
    answer = await n.people.engaged(
        idea, EngagementKind.COMMENT, ERIK, "Vi tar med den i budgeten", official="tekniska-verken"
    )
    await n.handlers.engagement(answer)
    assert n.feed(ANNA)[0]["text"].startswith("Tekniska Verken i Kiruna har svarat på din idé ”Värmepump i ishallen”")
    message = mail_to(n, ANNA, "comment")
    assert message["subject"] == "Svar från Tekniska Verken i Kiruna på ”Värmepump i ishallen”"
    assert "(Erik Lindberg)" in message["text"] and "Vi tar med den i budgeten" in message["text"]

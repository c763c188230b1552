"""Warnings for every response-time target of the catalogue (acknowledged, assessed, decided): when each is warned
of and told missed, to whom (the assignee of an organisation that gave the idea to one, else its officers; missed:
the innovation office and the assignees), once per idea and target, and never for a final idea. Pure rules
(services/notifications/domain.py) and the periodic check on in-memory fakes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications import domain
from services.notifications.domain import Contact, Directory, IdeaFacts
from shared.catalogue import load_catalogue
from shared.events import IdeaState, RoutingTarget
from shared.sealing import pseudonym
from shared.workdays import add_working_days
from tests.fakes.notifications import Notifications, notifications
from tests.support.notifications import ANNA, ERIK, OFFICE, SARA, assigned, routed, status

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # targets: acknowledged 5, assessed 30, decided 60 working days
CATALOGUE = load_catalogue()
PEOPLE = Directory.of(CATALOGUE, lambda email: pseudonym(b"pepper", email))
KARIN = "karin.heikki@tekniskaverken.kiruna.se"
P = PEOPLE.pseudonyms  # officer id -> pseudonym


def facts(**overrides) -> IdeaFacts:
    values = dict(
        idea_id="i1",
        title="T",
        submitter=Contact("a" * 32),
        organisations=(RoutingTarget(organisation="tekniska-verken", unit="energi"),),
        areas=("klimat-och-energi",),
    )
    values.update(overrides)
    return IdeaFacts(**values)


def told(audience: domain.Audience) -> list[tuple[str, str]]:
    officer_of = {pseudonym_: officer_id for officer_id, pseudonym_ in P.items()}
    return sorted((officer_of[r.person], r.role) for r in audience.recipients)


# --- pure rules -----------------------------------------------------------------------------------------------


def test_which_targets_still_run_in_each_state():
    running = {state: domain.running_targets(state) for state in IdeaState}
    assert running[IdeaState.ROUTED] == ("acknowledged", "assessed", "decided")
    assert running[IdeaState.ACKNOWLEDGED] == ("assessed", "decided")
    assert running[IdeaState.IN_ASSESSMENT] == ("decided",)
    for final in (IdeaState.ACCEPTED, IdeaState.DECLINED, IdeaState.MERGED, IdeaState.WITHDRAWN, IdeaState.SPREAD):
        assert running[final] == (), final


def test_a_warning_goes_to_the_assignee_of_an_organisation_else_to_its_officers():
    assert told(domain.deadline_warning_audience(facts(), PEOPLE)) == [("erik.lindberg", "officer")]
    given = facts(assignees={"tekniska-verken": "karin.heikki"})
    assert told(domain.deadline_warning_audience(given, PEOPLE)) == [("karin.heikki", "assignee")]
    two = facts(
        organisations=(RoutingTarget(organisation="tekniska-verken"), RoutingTarget(organisation="kirunabostader")),
        areas=(),
        assignees={"tekniska-verken": "karin.heikki"},
    )
    assert told(domain.deadline_warning_audience(two, PEOPLE)) == [
        ("karin.heikki", "assignee"),
        ("sara.pekkari", "officer"),  # Kirunabostäder gave it to nobody
    ]
    gone = facts(assignees={"tekniska-verken": "no.longer.here"})  # the assignee left the catalogue
    assert told(domain.deadline_warning_audience(gone, PEOPLE)) == [("erik.lindberg", "officer")]


def test_a_missed_target_goes_to_the_innovation_office_and_the_assignees():
    assert told(domain.deadline_missed_audience(PEOPLE, facts())) == [("innovation.office", "office")]
    given = facts(assignees={"tekniska-verken": "karin.heikki"})
    assert told(domain.deadline_missed_audience(PEOPLE, given)) == [
        ("innovation.office", "office"),
        ("karin.heikki", "assignee"),
    ]


def test_each_notice_has_its_own_cause_per_idea_target_and_kind_and_the_acknowledgements_is_as_before():
    causes = {domain.deadline_cause("routed-1", s, t) for s in ("warning", "missed") for t in domain.STAGES}
    assert len(causes) == 6
    before_issue_18 = domain.derived_event_id("routed-1", "notifications.deadline-warning.acknowledged")
    assert domain.deadline_cause("routed-1", "warning", "acknowledged") == before_issue_18


# --- the periodic check ---------------------------------------------------------------------------------------


@pytest.fixture
def n() -> Notifications:
    return notifications(now=MONDAY)


def heard(n: Notifications, person: str) -> list[str]:
    return [item["kind"] for item in reversed(n.feed(person))]


async def an_idea(n: Notifications, *, routed_at: datetime = MONDAY) -> str:
    """Anna's idea, submitted on MONDAY and routed to Tekniska Verken / energi (Erik) at ``routed_at``."""
    idea = str(uuid.uuid4())
    await n.handlers.submitted(await n.people.submitted(idea, "Värmepump i ishallen", time=MONDAY))
    targets = [("tekniska-verken", "energi")]
    await n.handlers.routed(routed(idea, "Värmepump i ishallen", targets, ["klimat-och-energi"], time=routed_at))
    return idea


def day(working_days: int) -> datetime:
    """MONDAY plus that many working days (Swedish holidays skipped), at 10:00."""
    return add_working_days(MONDAY, working_days) + timedelta(hours=1)


async def test_assessment_and_decision_are_warned_of_and_told_missed_as_their_days_come(n):
    idea = await an_idea(n)
    await n.handlers.status_changed(status(idea, IdeaState.ACKNOWLEDGED, None, time=MONDAY + timedelta(days=1)))

    assert await n.handlers.check_deadlines(day(28)) == 0
    assert await n.handlers.check_deadlines(day(29)) == 1  # one working day before the 30th
    [warning] = [d for d in n.queue.emails("deadline-warning") if d.recipient == n.p(ERIK)]
    due = day(30).date().isoformat()
    assert warning.message["subject"] == f"Påminnelse: börja bedöma idén ”Värmepump i ishallen” senast {due}"
    assert await n.handlers.check_deadlines(day(30)) == 0  # the last day: in time, and warned once
    assert await n.handlers.check_deadlines(day(31)) == 1  # missed
    assert heard(n, OFFICE) == ["deadline-missed"]
    assert "började inte bedömas" in n.feed(OFFICE)[0]["text"]

    await n.handlers.status_changed(status(idea, IdeaState.IN_ASSESSMENT, None, time=day(31)))
    assert await n.handlers.check_deadlines(day(59)) == 1  # the decision's warning
    assert await n.handlers.check_deadlines(day(61)) == 1  # and missed
    assert await n.handlers.check_deadlines(day(90)) == 0  # each once
    assert heard(n, ERIK) == ["routed", "deadline-warning", "deadline-warning"]
    assert heard(n, OFFICE) == ["deadline-missed", "deadline-missed"]
    assert "fatta beslut om idén" in n.feed(ERIK)[0]["text"] and "fick inget beslut" in n.feed(OFFICE)[0]["text"]


async def test_every_target_runs_from_the_submission_as_analytics_measures_not_from_a_late_routing(n):
    await an_idea(n, routed_at=MONDAY + timedelta(days=2))  # routing was late: Wednesday
    assert await n.handlers.check_deadlines(day(4)) == 1  # Friday: the acknowledgement is due Monday
    assert heard(n, ERIK)[-1] == "deadline-warning"


async def test_an_assigned_idea_warns_its_assignee_and_the_missed_notice_tells_them_and_the_office(n):
    idea = await an_idea(n)
    await n.handlers.assigned(assigned(idea, "tekniska-verken", "karin.heikki", "erik.lindberg"))
    assert await n.handlers.check_deadlines(day(4)) == 1
    assert heard(n, KARIN) == ["assigned", "deadline-warning"] and heard(n, ERIK) == ["routed"]
    [mail] = n.queue.emails("deadline-warning")
    assert mail.recipient == n.p(KARIN) and ", som du har fått," in mail.message["text"]
    assert await n.handlers.check_deadlines(day(6)) == 1
    assert heard(n, KARIN)[-1] == "deadline-missed" and heard(n, OFFICE) == ["deadline-missed"]

    await n.handlers.assigned(assigned(idea, "tekniska-verken", None, "erik.lindberg", previous="karin.heikki"))
    await n.handlers.status_changed(status(idea, IdeaState.ACKNOWLEDGED, None, changed_by="erik.lindberg"))
    assert await n.handlers.check_deadlines(day(29)) == 1  # taken back: the officers are warned again
    assert heard(n, ERIK)[-1] == "deadline-warning" and heard(n, KARIN)[-1] == "deadline-missed"


@pytest.mark.parametrize("final", [IdeaState.WITHDRAWN, IdeaState.MERGED, IdeaState.DECLINED])
async def test_a_final_idea_gets_no_warning_for_any_target(n, final):
    idea = await an_idea(n)
    reason = None if final == IdeaState.WITHDRAWN else "Skäl"
    merged_into = str(uuid.uuid4()) if final == IdeaState.MERGED else None
    await n.handlers.status_changed(status(idea, final, reason, merged_into=merged_into))
    for working_days in (4, 6, 29, 31, 59, 61):
        assert await n.handlers.check_deadlines(day(working_days)) == 0
    assert idea not in n.store.open
    assert not [d for d in n.queue.deliveries if d.kind.startswith("deadline-")]


async def test_an_idea_routed_to_two_organisations_warns_each_ones_holder_once(n):
    idea = str(uuid.uuid4())
    await n.handlers.submitted(await n.people.submitted(idea, "Gemensam fjärrvärme", time=MONDAY))
    targets = [("tekniska-verken", None), ("kirunabostader", None)]
    await n.handlers.routed(routed(idea, "Gemensam fjärrvärme", targets, [], time=MONDAY))
    await n.handlers.assigned(assigned(idea, "tekniska-verken", "erik.lindberg", "karin.heikki"))
    assert await n.handlers.check_deadlines(day(4)) == 1
    warned = {d.recipient for d in n.queue.emails("deadline-warning")}
    assert warned == {n.p(ERIK), n.p(SARA)}  # Erik for Tekniska Verken (not Karin), Sara for Kirunabostäder
    assert heard(n, ERIK) == ["routed", "assigned", "deadline-warning"] and heard(n, ANNA) == ["routed"]

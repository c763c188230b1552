"""Assignment at intake (issue 18), on in-memory fakes: an officer gives an idea of their organisation to one of its
officers in the catalogue (themself included) or to nobody; the event names who had it before."""

from __future__ import annotations

import pytest

from services.intake.errors import Conflict, Forbidden, InvalidField, NotFound, WrongState
from services.intake.models import AssignmentIn, IdeaIn
from services.intake.store import iso
from shared.events import IdeaAssigned, IdeaState, IdeaStatusChanged
from shared.principal import Principal, Role
from tests.fakes.intake import IntakeOnFakes

ERIK = Principal(
    id="erik.lindberg", email="erik@tekniskaverken.se", organisation="tekniska-verken", roles=frozenset({Role.OFFICER})
)
SARA = Principal(
    id="sara.pekkari", email="sara@kirunabostader.se", organisation="kirunabostader", roles=frozenset({Role.OFFICER})
)
OFFICE = Principal(
    id="innovation.office",
    email="innovation@kiruna.se",
    organisation="innovationsplattformen",
    roles=frozenset({Role.INNOVATION_OFFICE}),
)
ANNA = Principal(id="anna.svensson", email="anna@kiruna.se", organisation="kiruna-kommun", roles=frozenset())


@pytest.fixture
def fakes() -> IntakeOnFakes:
    return IntakeOnFakes()


async def idea(fakes: IntakeOnFakes, *organisations: str) -> str:
    idea_id = (await fakes.intake.submit(IdeaIn(title="Värmepumpar i Kirunabostäders hus", anonymous=True))).idea_id
    await fakes.routed(idea_id, *organisations)
    return idea_id


async def test_an_officer_assigns_a_colleague_then_reassigns_and_each_event_names_who_had_it(fakes):
    idea_id = await idea(fakes, "tekniska-verken", "kirunabostader")
    first = await fakes.intake.assign(ERIK, idea_id, AssignmentIn(assignee="karin.heikki"), "c-1")
    second = await fakes.intake.assign(ERIK, idea_id, AssignmentIn(assignee="me"))
    assert await fakes.intake.assign(ERIK, idea_id, AssignmentIn(assignee="erik.lindberg")) is None  # already his
    events = fakes.publisher.on(fakes.topics.assignments)
    assert [e.id for e in events] == [first, second] and events[0].correlationid == "c-1"
    assert [(e.data.organisation, e.data.assignee, e.data.previous, e.data.assigned_by) for e in events] == [
        ("tekniska-verken", "karin.heikki", None, "erik.lindberg"),
        ("tekniska-verken", "erik.lindberg", "karin.heikki", "erik.lindberg"),
    ]
    await fakes.intake.assign(SARA, idea_id, AssignmentIn(assignee="sara.pekkari"))
    unassigned = await fakes.intake.assign(ERIK, idea_id, AssignmentIn(assignee=None))
    assert unassigned is not None
    record = await fakes.store.idea(idea_id)
    assert record.assignees == {"tekniska-verken": None, "kirunabostader": "sara.pekkari"}  # one per organisation


async def test_the_innovation_office_assigns_for_any_organisation_that_owns_the_idea(fakes):
    idea_id = await idea(fakes, "kirunabostader")
    await fakes.intake.assign(OFFICE, idea_id, AssignmentIn(organisation="kirunabostader", assignee="sara.pekkari"))
    [event] = fakes.publisher.on(fakes.topics.assignments)
    assert (event.data.organisation, event.data.assigned_by) == ("kirunabostader", "innovation.office")


@pytest.mark.parametrize(
    ("who", "request_", "refusal", "code", "says"),
    [
        (ANNA, AssignmentIn(assignee="karin.heikki"), Forbidden, "not-an-officer", "officer"),
        (
            SARA,
            AssignmentIn(organisation="tekniska-verken", assignee="karin.heikki"),
            Forbidden,
            "other-organisation",
            "kirunabostader may not",
        ),
        (
            ERIK,
            AssignmentIn(assignee="sara.pekkari"),
            Conflict,
            "assignee-not-an-officer",
            "'sara.pekkari' is not an officer of tekniska-verken",
        ),
        (ERIK, AssignmentIn(assignee="anna.svensson"), Conflict, "assignee-not-an-officer", "not an officer"),
        (
            OFFICE,
            AssignmentIn(assignee="innovation.office"),
            Conflict,
            "not-routed-there",
            "not routed to innovationsplattformen",
        ),
        (
            OFFICE,
            AssignmentIn(organisation="rymdbolaget", assignee=None),
            InvalidField,
            "refused",
            "unknown organisation",
        ),
    ],
)
async def test_an_assignment_outside_the_rules_is_refused_with_the_reason(fakes, who, request_, refusal, code, says):
    idea_id = await idea(fakes, "tekniska-verken")
    with pytest.raises(refusal) as refused:
        await fakes.intake.assign(who, idea_id, request_)
    assert says in str(refused.value)
    if refusal is not InvalidField:
        assert refused.value.code == code
    assert fakes.publisher.on(fakes.topics.assignments) == []


async def test_a_closed_or_unknown_idea_is_not_assigned(fakes):
    idea_id = await idea(fakes, "tekniska-verken")
    await fakes.follow(
        IdeaStatusChanged(idea_id=idea_id, to_state=IdeaState.DECLINED, reason="Nej", changed_by="erik.lindberg")
    )
    with pytest.raises(WrongState) as refused:
        await fakes.intake.assign(ERIK, idea_id, AssignmentIn(assignee="me"))
    assert refused.value.current == "declined"
    with pytest.raises(NotFound):
        await fakes.intake.assign(ERIK, "3f2b8c4e-0000-4000-8000-000000000009", AssignmentIn(assignee="me"))


async def test_the_follower_keeps_the_latest_assignment_whatever_the_order(fakes):
    idea_id = await idea(fakes, "tekniska-verken")
    given = IdeaAssigned(idea_id=idea_id, organisation="tekniska-verken", assignee="karin.heikki", assigned_by="e")
    await fakes.follow(given)
    given_at = iso(fakes.clock.now)
    await fakes.follow(given.model_copy(update={"assignee": None, "previous": "karin.heikki"}))
    assert (await fakes.store.idea(idea_id)).assignees == {"tekniska-verken": None}
    assert not await fakes.store.record_assignment(idea_id, "tekniska-verken", "karin.heikki", given_at)  # replayed
    assert (await fakes.store.idea(idea_id)).assignees == {"tekniska-verken": None}

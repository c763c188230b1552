"""Challenges at intake (issue 18), on in-memory fakes: who opens one and for whom, the closing time, the audience,
answering one (its hints, unknown and closed challenges) and which are shown to whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake.challenges import addressed_to, open_to
from services.intake.domain import intake_id
from services.intake.errors import ChallengeClosed, Forbidden, InvalidField
from services.intake.models import ChallengeIn, IdeaIn, NewIdeaIn
from services.intake.store import IdempotencyMismatch
from shared.events import ChallengeAudience, ChallengeOpened
from shared.principal import Principal, Role
from tests.fakes.intake import IntakeOnFakes

ERIK = Principal(
    id="erik.lindberg",
    email="erik.lindberg@tekniskaverken.kiruna.se",
    organisation="tekniska-verken",
    unit="energi",
    roles=frozenset({Role.OFFICER}),
)
OFFICE = Principal(
    id="innovation.office",
    email="innovation@kiruna.se",
    organisation="innovationsplattformen",
    roles=frozenset({Role.INNOVATION_OFFICE}),
)
ANNA = Principal(
    id="anna.svensson",
    email="anna.svensson@kiruna.se",
    organisation="kiruna-kommun",
    unit="kultur-och-fritid",
    roles=frozenset({Role.EMPLOYEE}),
)
QUESTION = "Hur minskar vi energianvändningen i våra lokaler?"


@pytest.fixture
def fakes() -> IntakeOnFakes:
    return IntakeOnFakes()


def asking(**fields) -> ChallengeIn:
    return ChallengeIn.model_validate({"question": QUESTION, "closes_at": "2025-03-31", **fields})


async def test_an_officer_asks_their_own_organisation_and_the_challenge_is_published_and_known(fakes):
    accepted = await fakes.intake.open_challenge(
        ERIK, asking(areas=["klimat-och-energi"], description="Lokalerna drar mycket el."), correlation_id="c-1"
    )
    [event] = fakes.publisher.on(fakes.topics.challenges)
    challenge = event.data
    assert event.subject == challenge.challenge_id == accepted.challenge_id and event.correlationid == "c-1"
    assert event.id == accepted.event_id == intake_id(accepted.challenge_id, "opened")
    assert (challenge.organisation, challenge.opened_by, challenge.language) == ("tekniska-verken", ERIK.id, "sv")
    assert challenge.audience == (ChallengeAudience(organisation="tekniska-verken"),)  # empty: all of their own
    assert challenge.areas == ("klimat-och-energi",) and challenge.opens_at == fakes.clock.now
    assert challenge.closes_at == datetime(2025, 3, 31, 21, 59, 59, 999999, tzinfo=UTC)  # the day's end in Kiruna
    assert accepted.url == f"http://status.test/challenges/{accepted.challenge_id}"
    assert await fakes.store.challenge(accepted.challenge_id) == challenge


async def test_the_innovation_office_asks_the_whole_group_or_anyone_in_it(fakes):
    everyone = await fakes.intake.open_challenge(OFFICE, asking())
    some = await fakes.intake.open_challenge(
        OFFICE,
        asking(
            audience=[{"organisation": "kirunabostader"}, {"organisation": "kiruna-kommun", "unit": "socialtjanst"}]
        ),
    )
    group, chosen = [await fakes.store.challenge(a.challenge_id) for a in (everyone, some)]
    assert group.organisation == chosen.organisation == "innovationsplattformen" and group.audience == ()
    assert [(a.organisation, a.unit) for a in chosen.audience] == [
        ("kirunabostader", None),
        ("kiruna-kommun", "socialtjanst"),
    ]


async def test_only_officers_open_challenges(fakes):
    with pytest.raises(Forbidden, match="officer"):
        await fakes.intake.open_challenge(ANNA, asking())
    assert fakes.publisher.count == 0


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"closes_at": "2025-03-02"}, "closes_at", "in the past"),  # the clock says 2025-03-03 09:00
        ({"closes_at": "2025-03-03T08:59:00+00:00"}, "closes_at", "in the past"),
        (
            {"audience": [{"organisation": "tekniska-verken"}, {"organisation": "kirunabostader"}]},
            "audience.1.organisation",
            "outside",
        ),
        ({"audience": [{"organisation": "rymdbolaget"}]}, "audience.0.organisation", "unknown organisation"),
        ({"audience": [{"organisation": "tekniska-verken", "unit": "forvaltning"}]}, "audience.0.unit", "not a unit"),
        ({"areas": ["klimat-och-energi", "rymden"]}, "areas.1", "unknown area"),
    ],
)
async def test_a_challenge_that_breaks_a_rule_is_refused_naming_the_field(fakes, fields, field, says):
    with pytest.raises(InvalidField) as refused:
        await fakes.intake.open_challenge(ERIK, asking(**fields))
    assert refused.value.field == field and says in refused.value.message
    assert fakes.publisher.count == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "Energi?"}, "question"),
        ({"question": "x" * 301}, "question"),
        ({"closes_at": "den 30 juni"}, "closes_at"),
        ({"audience": [{"organisation": "Inte En Slug"}]}, "audience.0.organisation"),
        ({"language": "fi"}, "language"),
        ({"owner": "kirunabostader"}, "owner"),
    ],
)
def test_a_challenge_request_that_cannot_be_read_names_the_field(fields, field):
    with pytest.raises(ValidationError) as refused:
        asking(**fields)
    assert field in {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}


def test_a_closing_date_is_the_end_of_that_day_in_kiruna_and_a_time_without_offset_is_kiruna_time():
    assert asking(closes_at="2025-01-15").closes_at == datetime(2025, 1, 15, 22, 59, 59, 999999, tzinfo=UTC)  # CET
    assert asking(closes_at="2025-06-30").closes_at == datetime(2025, 6, 30, 21, 59, 59, 999999, tzinfo=UTC)  # CEST
    assert asking(closes_at="2025-06-30T16:00").closes_at == datetime(2025, 6, 30, 14, 0, tzinfo=UTC)
    assert asking(closes_at="2025-06-30T16:00:00Z").closes_at == datetime(2025, 6, 30, 16, 0, tzinfo=UTC)


async def test_the_same_key_opens_one_challenge_and_another_request_under_it_is_refused(fakes):
    first = await fakes.intake.open_challenge(ERIK, asking(), idempotency_key="web:form-1")
    fakes.clock.advance(minutes=1)
    again = await fakes.intake.open_challenge(ERIK, asking(), idempotency_key="web:form-1")
    assert again == first and len(fakes.publisher.on(fakes.topics.challenges)) == 1
    with pytest.raises(IdempotencyMismatch):
        await fakes.intake.open_challenge(
            ERIK, asking(question=QUESTION + " Och i skolorna?"), idempotency_key="web:form-1"
        )
    other = await fakes.intake.open_challenge(OFFICE, asking(), idempotency_key="web:form-1")  # the key is per person
    assert other.challenge_id != first.challenge_id


async def test_an_answer_carries_the_challenge_and_its_areas_and_organisation_as_hints(fakes):
    challenge = await fakes.intake.open_challenge(ERIK, asking(areas=["klimat-och-energi", "boende"]))
    idea = IdeaIn(
        title="Styr ventilationen efter närvaro",
        anonymous=True,
        area_hints=["boende"],
        challenge_id=challenge.challenge_id,
    )
    accepted = await fakes.intake.submit(idea)
    [event] = fakes.publisher.on(fakes.topics.submitted)
    assert event.data.challenge_id == challenge.challenge_id
    assert event.data.area_hints == ("boende", "klimat-och-energi")
    assert event.data.organisation_hints == ("tekniska-verken",)
    assert (await fakes.store.idea(accepted.idea_id)).challenge_id == challenge.challenge_id


async def test_an_unknown_challenge_is_422_and_a_closed_one_409_saying_when(fakes):
    challenge = await fakes.intake.open_challenge(ERIK, asking(closes_at="2025-03-04"))
    unknown = IdeaIn(title="Solceller på taken", anonymous=True, challenge_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidField) as refused:
        await fakes.intake.submit(unknown)
    assert refused.value.field == "challenge_id"
    fakes.clock.now = datetime(2025, 3, 4, 23, 0, tzinfo=UTC)  # midnight in Kiruna has passed
    with pytest.raises(ChallengeClosed) as closed:
        await fakes.intake.submit(unknown.model_copy(update={"challenge_id": challenge.challenge_id}))
    assert closed.value.closed_at == datetime(2025, 3, 4, 22, 59, 59, 999999, tzinfo=UTC)
    assert "closed at 2025-03-04T22:59:59" in str(closed.value)
    with pytest.raises(ChallengeClosed):  # with an Idempotency-Key too, and the key is free for a retry
        await fakes.intake.submit(
            unknown.model_copy(update={"challenge_id": challenge.challenge_id}), idempotency_key="k-123456"
        )
    assert fakes.publisher.on(fakes.topics.submitted) == []


def test_a_challenge_id_must_look_like_one():
    with pytest.raises(ValidationError) as refused:
        NewIdeaIn(title="Solceller", anonymous=True, challenge_id="drop table")
    assert refused.value.errors()[0]["loc"] == ("challenge_id",)


def challenge(*audience: tuple[str, str | None], closes_in_days: int = 10, question: str = QUESTION) -> ChallengeOpened:
    now = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    return ChallengeOpened(
        challenge_id=f"{len(audience)}-{question[:8]}-{closes_in_days}",
        question=question,
        organisation="innovationsplattformen",
        audience=tuple(ChallengeAudience(organisation=org, unit=unit) for org, unit in audience),
        opens_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=closes_in_days),
        opened_by="innovation.office",
    )


def test_a_challenge_asks_its_audience_and_an_empty_one_asks_everyone():
    group = challenge()
    municipality = challenge(("kiruna-kommun", None))
    culture = challenge(("kiruna-kommun", "kultur-och-fritid"))
    care = challenge(("kiruna-kommun", "socialtjanst"))
    assert [addressed_to(c, ANNA) for c in (group, municipality, culture, care)] == [True, True, True, False]
    assert [addressed_to(c, None) for c in (group, municipality)] == [True, False]  # anonymous: the group's only
    assert [addressed_to(c, ERIK) for c in (group, municipality)] == [True, False]


def test_the_form_offers_the_open_challenges_that_ask_the_viewer_closing_soonest_first():
    now = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    later = challenge(closes_in_days=20, question="Hur blir Kiruna en bättre stad för barn?")
    sooner = challenge(closes_in_days=5)
    closed = challenge(closes_in_days=-1, question="Vad ska vi göra med gamla stadshuset?")
    housing = challenge(("kirunabostader", None), question="Hur sparar vi vatten i lägenheterna?")
    offered = open_to([later, closed, housing, sooner], ANNA, now)
    assert offered == [sooner, later]
    assert open_to([housing, closed], ANNA, now, chosen=housing.challenge_id) == [housing]  # a link's choice
    assert open_to([closed], ANNA, now, chosen=closed.challenge_id) == []  # a closed one never

"""The submitter's own ideas at intake (issue 18), on in-memory fakes: edit until an officer acknowledges it,
withdraw while it is open, and never someone else's or an anonymous idea."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.intake.domain import idea_of
from services.intake.errors import Conflict, Forbidden, WrongState
from services.intake.following import follow
from services.intake.models import EditIn, NewIdeaIn, WithdrawIn
from services.intake.store import ANONYMOUS
from shared.catalogue import load_catalogue
from shared.events import Envelope, IdeaEdited, IdeaState, IdeaStatusChanged, IdeaSubmitted
from shared.kafka import KafkaUnavailable
from shared.principal import Principal, Role
from tests.fakes.intake import IntakeOnFakes

ANNA = Principal(
    id="anna.svensson",
    email="anna.svensson@kiruna.se",
    name="Anna Svensson",
    organisation="kiruna-kommun",
    unit="kultur-och-fritid",
    roles=frozenset({Role.EMPLOYEE}),
)
PER = Principal(id="per.niemi", email="per.niemi@kirunabostader.se", roles=frozenset({Role.EMPLOYEE}))
IDEA = NewIdeaIn(title="Snöröjning av gångbanorna", description="Börja med gångbanorna vid skolorna.")


@pytest.fixture
def fakes() -> IntakeOnFakes:
    return IntakeOnFakes()


async def annas_idea(fakes: IntakeOnFakes, *, state: IdeaState | None = None, anonymous: bool = False) -> str:
    idea = idea_of(IDEA.model_copy(update={"anonymous": anonymous}), ANNA, load_catalogue())
    idea_id = (await fakes.intake.submit(idea, principal=ANNA)).idea_id
    await fakes.routed(idea_id, "kiruna-kommun")
    if state is not None:
        await fakes.follow(IdeaStatusChanged(idea_id=idea_id, to_state=state, changed_by="maria.nilsson"))
    return idea_id


async def test_the_submitter_corrects_the_title_and_keeps_the_description(fakes):
    idea_id = await annas_idea(fakes)
    event_id = await fakes.intake.edit(ANNA, idea_id, EditIn(title="Snöröjning av gångbanorna vid skolorna"))
    [event] = fakes.publisher.on(fakes.topics.edited)
    assert event.id == event_id and event.subject == idea_id
    assert (event.data.title, event.data.description) == ("Snöröjning av gångbanorna vid skolorna", IDEA.description)
    assert event.data.edited_by == fakes.keyring.pseudonym(ANNA.email) and event.data.language == "sv"
    record = await fakes.store.idea(idea_id)
    assert record.title == "Snöröjning av gångbanorna vid skolorna" and record.state is IdeaState.ROUTED
    english = EditIn(title="Snow clearing of the pavements", description="Clear the pavements by the schools first.")
    await fakes.intake.edit(ANNA, idea_id, english)
    assert fakes.publisher.on(fakes.topics.edited)[-1].data.language == "en"


async def test_an_edit_after_an_officer_acknowledged_the_idea_is_refused_naming_the_state(fakes):
    idea_id = await annas_idea(fakes, state=IdeaState.ACKNOWLEDGED)
    with pytest.raises(WrongState) as refused:
        await fakes.intake.edit(ANNA, idea_id, EditIn(title="Ny rubrik"))
    assert refused.value.current == "acknowledged" and "acknowledged" in str(refused.value)
    assert refused.value.code == "not-editable" and fakes.publisher.on(fakes.topics.edited) == []


async def test_nobody_edits_or_withdraws_someone_elses_idea_or_an_anonymous_one(fakes):
    idea_id = await annas_idea(fakes)
    anonymous = await annas_idea(fakes, anonymous=True)
    with pytest.raises(Forbidden) as refused:
        await fakes.intake.edit(PER, idea_id, EditIn(title="Min rubrik nu"))
    assert refused.value.code == "not-yours" and "submitter" in str(refused.value)
    with pytest.raises(Forbidden) as refused:
        await fakes.intake.withdraw(PER, idea_id, WithdrawIn())
    assert refused.value.code == "not-yours"
    for attempt in (
        fakes.intake.edit(ANNA, anonymous, EditIn(title="Min rubrik nu")),
        fakes.intake.withdraw(ANNA, anonymous, WithdrawIn()),
    ):
        with pytest.raises(Forbidden) as refused:
            await attempt
        assert refused.value.code == "anonymous" and "anonymous" in str(refused.value)
    assert (await fakes.store.idea(anonymous)).submitter == ANONYMOUS
    assert fakes.publisher.on(fakes.topics.edited) == [] and fakes.publisher.on(fakes.topics.status_changed) == []


async def test_an_idea_whose_submission_intake_has_not_seen_yet_cannot_be_changed_yet(fakes):
    await fakes.routed("3f2b8c4e-0000-4000-8000-000000000001", "kiruna-kommun")  # routed is read before submitted
    with pytest.raises(Conflict) as refused:
        await fakes.intake.edit(ANNA, "3f2b8c4e-0000-4000-8000-000000000001", EditIn(title="Ny rubrik"))
    assert refused.value.code == "not-yet"


async def test_the_submitter_withdraws_an_open_idea_with_a_reason_and_it_is_final(fakes):
    idea_id = await annas_idea(fakes, state=IdeaState.IN_ASSESSMENT)
    event_id = await fakes.intake.withdraw(ANNA, idea_id, WithdrawIn(reason="Löst på annat sätt"))
    [event] = fakes.publisher.on(fakes.topics.status_changed)
    assert event.id == event_id and event.data.to_state is IdeaState.WITHDRAWN
    assert (event.data.from_state, event.data.reason) == (IdeaState.IN_ASSESSMENT, "Löst på annat sätt")
    assert event.data.changed_by == fakes.keyring.pseudonym(ANNA.email) and event.data.organisation is None
    assert (await fakes.store.idea(idea_id)).state is IdeaState.WITHDRAWN
    with pytest.raises(WrongState) as refused:
        await fakes.intake.withdraw(ANNA, idea_id, WithdrawIn())
    assert refused.value.current == "withdrawn" and refused.value.code == "not-withdrawable"


@pytest.mark.parametrize("state", [IdeaState.ACCEPTED, IdeaState.DECLINED, IdeaState.MERGED])
async def test_a_decided_idea_cannot_be_withdrawn(fakes, state):
    idea_id = await annas_idea(fakes, state=state)
    with pytest.raises(WrongState) as refused:
        await fakes.intake.withdraw(ANNA, idea_id, WithdrawIn())
    assert refused.value.current == state.value


async def test_a_withdrawal_kafka_did_not_take_leaves_the_idea_as_it_was(fakes):
    idea_id = await annas_idea(fakes)
    fakes.publisher.unavailable = True
    with pytest.raises(KafkaUnavailable):
        await fakes.intake.withdraw(ANNA, idea_id, WithdrawIn())
    assert (await fakes.store.idea(idea_id)).state is IdeaState.ROUTED


async def test_an_erased_submitter_is_no_longer_linked_to_their_ideas(fakes):
    idea_id = await annas_idea(fakes)
    pseudonym = fakes.keyring.pseudonym(ANNA.email)
    assert (await fakes.store.idea(idea_id)).submitter == pseudonym
    await fakes.keyring.erase(pseudonym)
    await fakes.store.forget_person(pseudonym)
    with pytest.raises(Forbidden) as refused:
        await fakes.intake.edit(ANNA, idea_id, EditIn(title="Ny rubrik"))
    assert refused.value.code == "anonymous"
    [submitted] = fakes.publisher.on(fakes.topics.submitted)  # a replay of the submission links no one again
    await fakes.follow(submitted.data)
    assert (await fakes.store.idea(idea_id)).submitter == ANONYMOUS


async def test_the_follower_records_the_text_and_the_latest_edit_wins_whatever_the_order(fakes):
    idea_id = "3f2b8c4e-0000-4000-8000-000000000002"
    edited_first = fakes.clock.advance(seconds=5)
    await fakes.follow(IdeaSubmitted(idea_id=idea_id, title="Gammal rubrik", description="Gammal text"))
    record = await fakes.store.idea(idea_id)
    assert (record.title, record.submitter) == ("Gammal rubrik", ANONYMOUS)

    edit = IdeaEdited(idea_id=idea_id, title="Ny rubrik", description="Ny text", edited_by="p")
    await follow(fakes.store, fakes.keyring, Envelope.wrap(edit, source="/t", time=fakes.clock.advance(seconds=5)))
    submitted = IdeaSubmitted(idea_id=idea_id, title="Gammal rubrik", description="Gammal text")
    await follow(fakes.store, fakes.keyring, Envelope.wrap(submitted, source="/t", time=edited_first))
    assert (await fakes.store.idea(idea_id)).title == "Ny rubrik"


def test_an_edit_must_change_something_and_keep_to_the_limits():
    for body, field in (({}, "title"), ({"title": "ab"}, "title"), ({"description": "x" * 10_001}, "description")):
        with pytest.raises(ValidationError) as refused:
            EditIn.model_validate(body)
        assert field in str(refused.value)
    with pytest.raises(ValidationError):
        WithdrawIn(reason="x" * 1001)

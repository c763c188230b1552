"""Intake's similar-ideas index (services/intake/similar.py) over the in-memory store and a fake engine (what the
engine scores is shared/similarity.py's business, tested there): which ideas it holds as texts and states change,
that every replica catches up with every change, and what a suggestion shows."""

from __future__ import annotations

import logging

import pytest

from services.intake.similar import SimilarIdeas
from shared.events import IdeaEdited, IdeaState, IdeaStatusChanged, IdeaSubmitted
from shared.similarity import Suggestion
from tests.fakes.intake import FakeSimilarityIndex, IntakeOnFakes

LOG = logging.getLogger("test")
IDS = [f"3f2b8c4e-0000-4000-8000-00000000000{n}" for n in range(5)]


@pytest.fixture
def fakes() -> IntakeOnFakes:
    return IntakeOnFakes()


def replica(fakes: IntakeOnFakes) -> tuple[SimilarIdeas, FakeSimilarityIndex]:
    index = FakeSimilarityIndex()
    return SimilarIdeas(fakes.store, index=index, logger=LOG), index


async def submitted(fakes: IntakeOnFakes, n: int, title: str, description: str = "") -> str:
    await fakes.follow(IdeaSubmitted(idea_id=IDS[n], title=title, description=description))
    return IDS[n]


async def test_the_index_holds_the_ideas_worth_pointing_to_as_their_texts_and_states_change(fakes):
    similar, index = replica(fakes)
    snow = await submitted(fakes, 0, "Snöröjning av gångbanorna", "Skotta gångvägarna tidigt")
    heat = await submitted(fakes, 1, "Fjärrvärme till badhuset")
    gone = await submitted(fakes, 2, "Fler cykelställ")
    assert await similar.catch_up() == 3 and index.ideas[snow] == (
        "Snöröjning av gångbanorna",
        "Skotta gångvägarna tidigt",
    )
    await fakes.follow(
        IdeaEdited(idea_id=heat, title="Fjärrvärme till simhallen", description="Ny text", edited_by="p")
    )
    await fakes.follow(IdeaStatusChanged(idea_id=gone, to_state=IdeaState.WITHDRAWN, changed_by="p"))
    await fakes.follow(IdeaStatusChanged(idea_id=snow, to_state=IdeaState.ACKNOWLEDGED, changed_by="maria.nilsson"))
    assert await similar.catch_up() == 3
    assert set(index.ideas) == {snow, heat} and index.ideas[heat] == ("Fjärrvärme till simhallen", "Ny text")
    assert await similar.catch_up() == 0  # nothing new: nothing read again
    for state in (IdeaState.MERGED, IdeaState.DECLINED):
        await fakes.follow(IdeaStatusChanged(idea_id=snow, to_state=state, changed_by="maria.nilsson"))
        await similar.catch_up()
        assert snow not in index


async def test_every_replica_catches_up_with_what_any_replica_recorded(fakes):
    first, first_index = replica(fakes)
    await submitted(fakes, 0, "Snöröjning av gångbanorna")
    await first.catch_up()
    second, second_index = replica(fakes)  # started later: it loads everything from the store
    await submitted(fakes, 1, "Fjärrvärme till badhuset")
    await first.catch_up()
    await second.catch_up()
    assert set(first_index.ideas) == set(second_index.ideas) == {IDS[0], IDS[1]}


async def test_a_suggestion_shows_the_ideas_current_title_and_state_and_a_short_text_asks_nothing(fakes):
    similar, index = replica(fakes)
    snow = await submitted(fakes, 0, "Snöröjning av gångbanorna", "Skotta gångvägarna tidigt på morgonen")
    await fakes.routed(snow, "kiruna-kommun")
    index.answers["Skotta gångvägarna vid skolan"] = [Suggestion(snow, 0.8123, ("gångvägarna", "skotta"))]
    [found] = await similar.suggest("Skotta gångvägarna vid skolan", "")
    assert (found.idea_id, found.title, found.state) == (snow, "Snöröjning av gångbanorna", "routed")
    assert (found.score, found.shared_words) == (0.81, ("gångvägarna", "skotta"))
    assert await similar.suggest("Skotta", "nu") == [] and index.asked == [("Skotta gångvägarna vid skolan", "")]


async def test_an_idea_closed_since_the_index_last_heard_is_not_suggested(fakes):
    similar, index = replica(fakes)
    snow = await submitted(fakes, 0, "Snöröjning av gångbanorna")
    await similar.catch_up()
    index.answers["Skotta gångvägarna vid skolan"] = [Suggestion(snow, 0.9, ("gångbanorna",))]
    await fakes.store.record_state(snow, IdeaState.MERGED, "2099-01-01T00:00:00.000000Z")  # after it caught up...
    fakes.store.changes.clear()  # ...and as if its change were not read yet
    assert await similar.suggest("Skotta gångvägarna vid skolan", "") == []

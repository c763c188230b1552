"""Taking part on an idea's page at intake (issue 18), on in-memory fakes: anonymous comments, officers' answers,
and a merge that carries the merged idea's supports over to its target (a person who supported both is one)."""

from __future__ import annotations

import pytest

from services.intake.domain import person_of
from services.intake.models import CommentIn, IdeaIn, StatusChangeIn
from shared.catalogue import load_catalogue
from shared.events import EngagementKind, IdeaEngagement, IdeaState
from shared.principal import Principal, Role
from tests.fakes.intake import IntakeOnFakes

CATALOGUE = load_catalogue()
ERIK = Principal(
    id="erik.lindberg",
    email="erik.lindberg@tekniskaverken.kiruna.se",
    name="Erik Lindberg",
    organisation="tekniska-verken",
    roles=frozenset({Role.OFFICER}),
)
SARA = Principal(
    id="sara.pekkari",
    email="sara.pekkari@kirunabostader.se",
    organisation="kirunabostader",
    roles=frozenset({Role.OFFICER}),
)
OFFICE = Principal(id="innovation.office", email="innovation@kiruna.se", roles=frozenset({Role.INNOVATION_OFFICE}))
PER = Principal(id="per.niemi", email="per.niemi@kirunabostader.se", organisation="kirunabostader", roles=frozenset())
LISA = Principal(id="lisa.kurak", email="lisa.kurak@kiruna.se", organisation="kiruna-kommun", roles=frozenset())


@pytest.fixture
def fakes() -> IntakeOnFakes:
    return IntakeOnFakes()


async def idea(fakes: IntakeOnFakes, *organisations: str, title: str = "Fjärrvärme till badhuset") -> str:
    idea_id = (await fakes.intake.submit(IdeaIn(title=title, anonymous=True))).idea_id
    await fakes.routed(idea_id, *organisations)
    return idea_id


async def comment(fakes: IntakeOnFakes, principal: Principal, idea_id: str, **fields) -> IdeaEngagement:
    body = CommentIn(text="Vi tittar på det", **fields)
    await fakes.intake.comment(idea_id, person_of(principal, CATALOGUE), body, principal=principal)
    return fakes.publisher.on(fakes.topics.engagement)[-1].data


async def test_an_officer_of_the_ideas_organisation_answers_as_it_and_anyone_may_comment_as_anonym(fakes):
    idea_id = await idea(fakes, "tekniska-verken")
    assert (await comment(fakes, ERIK, idea_id)).official == "tekniska-verken"
    assert (await comment(fakes, SARA, idea_id)).official is None  # an officer, but of another organisation
    assert (await comment(fakes, OFFICE, idea_id)).official == "innovationsplattformen"
    per = await comment(fakes, PER, idea_id, anonymous=True)
    assert (per.official, per.anonymous, per.kind) == (None, True, EngagementKind.COMMENT)
    assert per.person.pseudonym == fakes.keyring.pseudonym(PER.email)  # still theirs (erasure, once per person)
    assert not (await comment(fakes, PER, idea_id)).anonymous  # the default: shown with the name


async def test_a_merge_carries_the_supports_over_and_a_person_who_supported_both_is_one(fakes):
    duplicate = await idea(fakes, "tekniska-verken", title="Badhuset borde värmas med fjärrvärme")
    target = await idea(fakes, "tekniska-verken")
    per, lisa = (person_of(p, CATALOGUE) for p in (PER, LISA))
    await fakes.intake.support(duplicate, per)
    await fakes.intake.support(duplicate, lisa)
    await fakes.intake.support(target, per)
    for event in fakes.publisher.on(fakes.topics.engagement):
        await fakes.follow(event.data)
    merge = StatusChangeIn(to_state=IdeaState.MERGED, merged_into=target, reason="Samma idé")
    await fakes.intake.change_status(ERIK, duplicate, merge)
    await fakes.follow(fakes.publisher.on(fakes.topics.status_changed)[-1].data)
    pseudonyms = {fakes.keyring.pseudonym(p.email) for p in (PER, LISA)}
    assert fakes.store.supporters[target] == pseudonyms
    assert await fakes.intake.support(target, lisa) is None  # her support of the duplicate counts for the target
    assert len([e for e in fakes.publisher.on(fakes.topics.engagement) if e.subject == target]) == 1  # Per's own
    assert (await fakes.store.idea(duplicate)).merged_into == target


async def test_a_support_of_the_merged_idea_read_after_the_merge_marks_the_target_too(fakes):
    """A rebuild reads the topics in its own order: the merge may come before the supports."""
    duplicate, target = await idea(fakes, "tekniska-verken"), await idea(fakes, "tekniska-verken")
    merge = StatusChangeIn(to_state=IdeaState.MERGED, merged_into=target, reason="Samma idé")
    await fakes.intake.change_status(ERIK, duplicate, merge)
    await fakes.follow(fakes.publisher.on(fakes.topics.status_changed)[-1].data)
    ref, _ = await fakes.keyring.person_ref(LISA.email, "Lisa Kurak")
    await fakes.follow(IdeaEngagement(idea_id=duplicate, kind=EngagementKind.SUPPORT, person=ref))
    assert ref.pseudonym in fakes.store.supporters[target]

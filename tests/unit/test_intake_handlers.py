"""Intake's use cases on in-memory fakes (tests/fakes/intake.py): every decision without Kafka or Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.intake.domain import Person, person_of
from services.intake.errors import Conflict, Forbidden, IdempotencyPending, InvalidField, NotFound
from services.intake.following import follow
from services.intake.handlers import Intake
from services.intake.lifecycle import TransitionError
from services.intake.models import CommentIn, IdeaIn, RerouteIn, StatusChangeIn, SubmitterIn
from services.intake.store import IdempotencyMismatch, iso
from shared.catalogue import load_catalogue
from shared.events import EngagementKind, Envelope, IdeaRouted, IdeaState, RoutingTarget
from shared.kafka import KafkaUnavailable
from shared.principal import Principal, Role
from shared.topics import Topics
from tests.fakes.common import FakeKeyring, FakePublisher, FixedClock
from tests.fakes.intake import FakeIntakeStore

TOPICS = Topics()
IDEA = IdeaIn(title="Fjärrvärme till badhuset", description="Anslut badhuset till fjärrvärmen", anonymous=True)
ERIK = Principal(
    id="erik", email="erik@tekniskaverken.se", organisation="tekniska-verken", roles=frozenset({Role.OFFICER})
)
SARA = Principal(id="sara", email="sara@kiruna.se", organisation="kiruna-kommun", roles=frozenset({Role.OFFICER}))
ANNA = Principal(id="anna", email="anna@kiruna.se", organisation="kiruna-kommun", roles=frozenset({Role.EMPLOYEE}))
OFFICE = Principal(id="office", email="office@kiruna.se", roles=frozenset({Role.INNOVATION_OFFICE}))
ADMIN = Principal(id="admin", roles=frozenset({Role.ADMIN}))
ANNA_P = Person(email="anna@kiruna.se", name="Anna Svensson", organisation="kiruna-kommun")
SARA_P = Person(email="sara@kiruna.se", name="Sara Pekkari")
NAMED = IdeaIn(
    title="Fjärrvärme till badhuset",
    description="Anslut badhuset till fjärrvärmen",
    submitter=SubmitterIn(name="Anna Svensson", email="Anna@Kiruna.se", organisation="kiruna-kommun"),
)


class Fakes:
    def __init__(self) -> None:
        self.publisher = FakePublisher()
        self.store = FakeIntakeStore()
        self.clock = FixedClock()
        self.keyring = FakeKeyring()
        self.intake = Intake(
            self.publisher,
            self.store,
            load_catalogue(),
            self.keyring,
            topics=TOPICS,
            public_base_url="http://status.test",
            idempotency_ttl_s=3600,
            clock=self.clock,
        )

    async def routed_idea(self, *organisations: str, state: IdeaState | None = None) -> str:
        """An idea intake knows, routed to ``organisations`` (as the followed topics tell it), in ``state``."""
        idea_id = (await self.intake.submit(IDEA)).idea_id
        routed = IdeaRouted(
            idea_id=idea_id,
            title=IDEA.title,
            organisations=tuple(RoutingTarget(organisation=org) for org in organisations),
            reason="test",
            catalogue_version="v",
        )
        self.clock.advance(seconds=1)
        await follow(self.store, self.keyring, Envelope.wrap(routed, source="/tests", time=self.clock()))
        if state is not None:
            await self.store.record_state(idea_id, state, iso(self.clock()))
        return idea_id


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


def uuid5(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


# --- new ideas ------------------------------------------------------------------------------------------------


async def test_a_new_idea_is_published_then_known_and_answered_with_its_status_url(fakes):
    accepted = await fakes.intake.submit(IDEA, correlation_id="c-1")
    [event] = fakes.publisher.on(TOPICS.submitted)
    assert event.subject == accepted.idea_id and event.id == accepted.event_id and event.correlationid == "c-1"
    assert event.data.title == IDEA.title and event.data.language == "sv" and event.time == fakes.clock.now
    assert accepted.status_url == f"http://status.test/ideas/{accepted.idea_id}"
    assert (await fakes.store.idea(accepted.idea_id)).state is IdeaState.SUBMITTED


async def test_hints_outside_the_catalogue_are_refused_and_nothing_is_published(fakes):
    with pytest.raises(InvalidField) as refused:
        await fakes.intake.submit(IDEA.model_copy(update={"area_hints": ["boende", "no-such-area"]}))
    assert refused.value.field == "area_hints.1"
    with pytest.raises(InvalidField) as refused:
        await fakes.intake.submit(IDEA.model_copy(update={"organisation_hints": ["no-such-org"]}))
    assert refused.value.field == "organisation_hints.0"
    assert fakes.publisher.count == 0


async def test_without_kafka_a_new_idea_is_not_recorded(fakes):
    fakes.publisher.unavailable = True
    with pytest.raises(KafkaUnavailable):
        await fakes.intake.submit(IDEA)
    assert fakes.store.ideas == {}


async def test_the_same_idempotency_key_gives_the_same_answer_and_one_event(fakes):
    first = await fakes.intake.submit(IDEA, idempotency_key="key-12345")
    again = await fakes.intake.submit(IDEA, idempotency_key="key-12345")
    assert again == first and len(fakes.publisher.on(TOPICS.submitted)) == 1
    # the idea id is the reservation's own (not derived from the key), the idea names its event
    assert first.idea_id != uuid5("kiruna-innovation:idempotency:key-12345")
    assert first.event_id == uuid5(f"{first.idea_id}:submitted")
    assert fakes.store.ttls["-\nkey-12345"] == 3600


async def test_a_key_reused_after_its_record_expired_makes_a_new_idea_that_consumers_keep(fakes):
    first = await fakes.intake.submit(IDEA, idempotency_key="key-12345")
    fakes.store.expire("-\nkey-12345")  # 7 days later, or Redis was lost
    second = await fakes.intake.submit(IDEA, idempotency_key="key-12345")
    published = fakes.publisher.on(TOPICS.submitted)
    assert len(published) == 2 and second.idea_id != first.idea_id
    assert len({event.id for event in published}) == 2  # no consumer drops the second as a duplicate


async def test_concurrent_requests_with_one_key_publish_once_and_the_others_come_back_later(fakes):
    outcomes = await asyncio.gather(
        *(fakes.intake.submit(IDEA, idempotency_key="key-race-1") for _ in range(3)), return_exceptions=True
    )
    [accepted] = [o for o in outcomes if not isinstance(o, IdempotencyPending)]
    assert all(isinstance(o, IdempotencyPending) and 1 <= o.retry_after_s <= 10 for o in outcomes if o is not accepted)
    assert len(fakes.publisher.on(TOPICS.submitted)) == 1
    assert await fakes.intake.submit(IDEA, idempotency_key="key-race-1") == accepted  # a retry after it finished


async def test_a_key_is_bound_to_the_body_and_to_the_person(fakes):
    await fakes.intake.submit(IDEA, idempotency_key="key-12345", principal=ANNA)
    with pytest.raises(IdempotencyMismatch):
        await fakes.intake.submit(
            IDEA.model_copy(update={"title": "Något annat"}), idempotency_key="key-12345", principal=ANNA
        )
    assert len(fakes.publisher.on(TOPICS.submitted)) == 1
    # another person's key is another key: it neither sees Anna's answer nor is refused for her body
    other = await fakes.intake.submit(IDEA, idempotency_key="key-12345", principal=SARA)
    anonymous = await fakes.intake.submit(IDEA, idempotency_key="key-12345")
    published = fakes.publisher.on(TOPICS.submitted)
    assert len(published) == 3 and {other.idea_id, anonymous.idea_id} == {e.subject for e in published[1:]}


class Hanging:
    """A publisher that never returns: the attempt is in flight (or its process died mid-publish)."""

    def __init__(self) -> None:
        self.publishing = asyncio.Event()

    async def publish(self, topic, envelope) -> None:
        self.publishing.set()
        await asyncio.Event().wait()


async def test_an_attempt_in_flight_refuses_retries_at_once_and_a_crashed_one_only_for_its_short_lease(fakes):
    fakes.intake.publisher = hanging = Hanging()
    in_flight = asyncio.ensure_future(fakes.intake.submit(IDEA, idempotency_key="key-crash"))
    await hanging.publishing.wait()
    offered = fakes.store.idempotency["-\nkey-crash"]["answer"]["idea_id"]
    fakes.intake.publisher = fakes.publisher
    with pytest.raises(IdempotencyPending) as pending:
        await fakes.intake.submit(IDEA, idempotency_key="key-crash")
    assert pending.value.retry_after_s == 10  # 409 with Retry-After at once, never a wait and never a 500
    fakes.store.now += 10  # the first attempt never finished: its lease has run out
    accepted = await fakes.intake.submit(IDEA, idempotency_key="key-crash")
    assert accepted.idea_id == offered and [e.subject for e in fakes.publisher.on(TOPICS.submitted)] == [offered]
    in_flight.cancel()


async def test_a_key_whose_first_attempt_failed_may_be_retried_at_once_and_names_the_same_idea(fakes):
    fakes.publisher.unavailable = True
    with pytest.raises(KafkaUnavailable):
        await fakes.intake.submit(IDEA, idempotency_key="key-12345")
    offered = fakes.store.idempotency["-\nkey-12345"]["answer"]["idea_id"]
    fakes.publisher.unavailable = False
    accepted = await fakes.intake.submit(IDEA, idempotency_key="key-12345")  # the lease was released
    assert accepted.idea_id == offered
    [event] = fakes.publisher.on(TOPICS.submitted)
    assert event.id == accepted.event_id == uuid5(f"{offered}:submitted")


async def test_when_redis_fails_after_kafka_acknowledged_the_idea_is_answered_and_the_follower_heals_it(fakes):
    fakes.store.failing = {"record_submitted", "complete"}
    accepted = await fakes.intake.submit(IDEA, idempotency_key="key-12345")  # 202, not "nothing was stored"
    [event] = fakes.publisher.on(TOPICS.submitted)
    assert event.subject == accepted.idea_id and await fakes.store.idea(accepted.idea_id) is None
    fakes.store.failing = set()
    await follow(fakes.store, fakes.keyring, event)  # intake's follower reads its own topic
    assert (await fakes.store.idea(accepted.idea_id)).state is IdeaState.SUBMITTED
    assert await fakes.intake.submit(IDEA, idempotency_key="key-12345") == accepted
    assert len(fakes.publisher.on(TOPICS.submitted)) == 1
    fakes.store.failing = {"record_submitted"}
    without_key = await fakes.intake.submit(IDEA)
    assert fakes.publisher.on(TOPICS.submitted)[-1].subject == without_key.idea_id


async def test_an_idea_from_the_raw_topic_keeps_its_given_id_and_says_it_came_by_kafka(fakes):
    accepted = await fakes.intake.submit_from_topic(IDEA, "raw-idea-1")
    [event] = fakes.publisher.on(TOPICS.submitted)
    assert event.subject == "raw-idea-1" and event.id == uuid5("raw-idea-1:submitted") == accepted.event_id
    assert event.data.channel == "kafka"
    await fakes.intake.submit_from_topic(IDEA.model_copy(update={"channel": "app"}), "raw-idea-2")
    assert fakes.publisher.on(TOPICS.submitted)[-1].data.channel == "app"


async def test_a_named_idea_names_its_submitter_by_pseudonym_and_seals_who_they_are(fakes):
    accepted = await fakes.intake.submit(NAMED)
    [event] = fakes.publisher.on(TOPICS.submitted)
    submitter = event.data.submitter
    assert (
        submitter.pseudonym == fakes.keyring.pseudonym("anna@kiruna.se") and submitter.organisation == "kiruna-kommun"
    )
    assert "anna" not in event.model_dump_json().lower() and "svensson" not in event.model_dump_json().lower()
    opened = await fakes.keyring.open_json(submitter.sealed)
    assert opened == {"name": "Anna Svensson", "email": "anna@kiruna.se"}  # the address as keyed: lower-case
    assert fakes.keyring.recorded == [submitter.sealed.key]  # the key was recorded before it sealed anything
    assert accepted.idea_id == event.subject


async def test_a_named_idea_without_an_address_is_refused_naming_the_field_and_nothing_is_keyed(fakes):
    nameless = NAMED.model_copy(update={"submitter": SubmitterIn(name="Anna Svensson")})
    for attempt in (
        fakes.intake.submit(nameless),
        fakes.intake.submit(nameless, idempotency_key="key-12345"),
        fakes.intake.submit_from_topic(nameless, "raw-idea-3"),
    ):
        with pytest.raises(InvalidField) as refused:
            await attempt
        assert refused.value.field == "submitter.email"
    assert fakes.publisher.count == 0 and fakes.keyring.keys == {} and fakes.store.idempotency == {}


async def test_an_idempotency_key_is_scoped_by_pseudonym_and_redis_holds_no_address_or_user_name(fakes):
    await fakes.intake.submit(NAMED, idempotency_key="key-12345", principal=ANNA)
    await fakes.intake.submit(IDEA, idempotency_key="key-67890", principal=ANNA)
    stored = repr((fakes.store.idempotency, fakes.store.records_of, fakes.store.pointers)).lower()
    assert "anna" not in stored and "svensson" not in stored
    pseudonym = fakes.keyring.pseudonym("anna@kiruna.se")
    assert set(fakes.store.idempotency) == {f"{pseudonym}\nkey-12345", f"{pseudonym}\nkey-67890"}
    # only the named idea's record is the person's: an anonymous idea is linked to no one
    assert fakes.store.records_of == {pseudonym: {f"{pseudonym}\nkey-12345"}}


# --- status changes -------------------------------------------------------------------------------------------


async def test_an_officer_of_the_owning_organisation_moves_the_idea_on(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    event_id = await fakes.intake.change_status(ERIK, idea_id, StatusChangeIn(to_state="acknowledged"), "c-2")
    [event] = fakes.publisher.on(TOPICS.status_changed)
    assert event.id == event_id and event.correlationid == "c-2"
    change = event.data
    assert (change.from_state, change.to_state) == (IdeaState.ROUTED, IdeaState.ACKNOWLEDGED)
    assert (change.changed_by, change.organisation) == ("erik", "tekniska-verken")
    assert (await fakes.store.idea(idea_id)).state is IdeaState.ACKNOWLEDGED


async def test_a_move_the_lifecycle_does_not_allow_is_refused_listing_what_is(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    with pytest.raises(TransitionError) as refused:
        await fakes.intake.change_status(ERIK, idea_id, StatusChangeIn(to_state="implemented"))
    assert refused.value.current is IdeaState.ROUTED
    assert [s.value for s in refused.value.allowed] == ["acknowledged", "declined", "merged"]
    closed = await fakes.routed_idea("tekniska-verken", state=IdeaState.DECLINED)
    with pytest.raises(TransitionError) as refused:
        await fakes.intake.change_status(ERIK, closed, StatusChangeIn(to_state="acknowledged"))
    assert refused.value.allowed == () and "none (the idea is closed)" in str(refused.value)
    assert fakes.publisher.on(TOPICS.status_changed) == []


async def test_declining_needs_a_reason(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    with pytest.raises(InvalidField) as refused:
        await fakes.intake.change_status(ERIK, idea_id, StatusChangeIn(to_state="declined", reason="  "))
    assert refused.value.field == "reason"
    await fakes.intake.change_status(ERIK, idea_id, StatusChangeIn(to_state="declined", reason="Finns redan"))
    assert fakes.publisher.on(TOPICS.status_changed)[0].data.reason == "Finns redan"


async def test_merging_names_another_known_idea(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    other = await fakes.routed_idea("kiruna-kommun")
    for merged_into, message in (
        (None, "required when moving an idea to merged"),
        (idea_id, "cannot be merged into itself"),
        (str(uuid.uuid4()), "no idea with id"),
    ):
        change = StatusChangeIn(to_state="merged", reason="Dubblett", merged_into=merged_into)
        with pytest.raises(InvalidField, match=message) as refused:
            await fakes.intake.change_status(ERIK, idea_id, change)
        assert refused.value.field == "merged_into"
    change = StatusChangeIn(to_state="merged", reason="Dubblett", merged_into=other)
    await fakes.intake.change_status(ERIK, idea_id, change)
    assert fakes.publisher.on(TOPICS.status_changed)[0].data.merged_into == other


async def test_two_officers_at_once_one_wins_and_the_other_is_told_of_the_conflict(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    other_erik = Principal(id="erik2", organisation="tekniska-verken", roles=frozenset({Role.OFFICER}))
    outcomes = await asyncio.gather(
        fakes.intake.change_status(ERIK, idea_id, StatusChangeIn(to_state="acknowledged")),
        fakes.intake.change_status(other_erik, idea_id, StatusChangeIn(to_state="acknowledged")),
        return_exceptions=True,
    )
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1 and sum(isinstance(o, str) for o in outcomes) == 1
    assert len(fakes.publisher.on(TOPICS.status_changed)) == 1


async def test_without_kafka_a_status_change_is_undone(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    fakes.publisher.unavailable = True
    with pytest.raises(KafkaUnavailable):
        await fakes.intake.change_status(ERIK, idea_id, StatusChangeIn(to_state="acknowledged"))
    assert (await fakes.store.idea(idea_id)).state is IdeaState.ROUTED


async def test_who_may_move_an_idea(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    with pytest.raises(Forbidden, match="needs the role officer \\(of tekniska-verken\\)"):
        await fakes.intake.change_status(ANNA, idea_id, StatusChangeIn(to_state="acknowledged"))
    with pytest.raises(Forbidden, match="routed to tekniska-verken; an officer of kiruna-kommun may not"):
        await fakes.intake.change_status(SARA, idea_id, StatusChangeIn(to_state="acknowledged"))
    with pytest.raises(NotFound):
        await fakes.intake.change_status(ERIK, str(uuid.uuid4()), StatusChangeIn(to_state="acknowledged"))
    await fakes.intake.change_status(OFFICE, idea_id, StatusChangeIn(to_state="acknowledged"))  # group-wide
    await fakes.intake.change_status(ADMIN, idea_id, StatusChangeIn(to_state="in-assessment"))
    unrouted = (await fakes.intake.submit(IDEA)).idea_id
    with pytest.raises(Forbidden, match="no organisation yet"):
        await fakes.intake.change_status(ERIK, unrouted, StatusChangeIn(to_state="acknowledged"))
    await fakes.intake.change_status(OFFICE, unrouted, StatusChangeIn(to_state="acknowledged"))  # triage


# --- engagement -----------------------------------------------------------------------------------------------


async def test_a_person_supports_an_idea_once_by_pseudonym(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    pseudonym = fakes.keyring.pseudonym("anna@kiruna.se")
    event_id = await fakes.intake.support(idea_id, ANNA_P, "c-3")
    assert event_id == uuid5(f"kiruna-innovation:support:{idea_id}:{pseudonym}")
    assert await fakes.intake.support(idea_id, ANNA_P) is None
    [event] = fakes.publisher.on(TOPICS.engagement)
    assert (event.id, event.data.kind, event.data.person.pseudonym) == (event_id, EngagementKind.SUPPORT, pseudonym)
    assert await fakes.keyring.open_json(event.data.person.sealed) == {"name": "Anna Svensson", "email": ANNA_P.email}
    assert fakes.store.supporters[idea_id] == {pseudonym} and fakes.store.supported_by[pseudonym] == {idea_id}
    assert await fakes.intake.support(idea_id, SARA_P) not in (None, event_id)


async def test_supports_racing_publish_one_event_id(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    answers = await asyncio.gather(*(fakes.intake.support(idea_id, ANNA_P) for _ in range(3)))
    [published] = fakes.publisher.on(TOPICS.engagement)
    assert answers.count(None) == 2 and [a for a in answers if a] == [published.id]


async def test_a_support_that_could_not_be_published_may_be_given_again(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    fakes.publisher.unavailable = True
    with pytest.raises(KafkaUnavailable):
        await fakes.intake.support(idea_id, ANNA_P)
    assert fakes.store.supporters[idea_id] == set() and fakes.store.supported_by == {
        fakes.keyring.pseudonym(ANNA_P.email): set()
    }
    fakes.publisher.unavailable = False
    pseudonym = fakes.keyring.pseudonym("anna@kiruna.se")
    assert await fakes.intake.support(idea_id, ANNA_P) == uuid5(f"kiruna-innovation:support:{idea_id}:{pseudonym}")


async def test_following_twice_is_one_event_id(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    first = await fakes.intake.follow(idea_id, ANNA_P)
    assert await fakes.intake.follow(idea_id, ANNA_P) == first
    assert first == uuid5(f"kiruna-innovation:follow:{idea_id}:{fakes.keyring.pseudonym('anna@kiruna.se')}")
    assert {e.data.kind for e in fakes.publisher.on(TOPICS.engagement)} == {EngagementKind.FOLLOW}


async def test_a_comment_is_published_as_the_persons_with_its_text_sealed_under_their_key(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    event_id = await fakes.intake.comment(idea_id, ANNA_P, CommentIn(text="Bra idé!"))
    [event] = fakes.publisher.on(TOPICS.engagement)
    assert (event.id, event.data.kind) == (event_id, EngagementKind.COMMENT)
    assert "Bra idé" not in event.model_dump_json() and "anna" not in event.model_dump_json().lower()
    assert event.data.text.key == event.data.person.sealed.key  # the same person's key
    assert await fakes.keyring.open(event.data.text) == "Bra idé!"
    await fakes.keyring.erase(event.data.person.pseudonym)
    assert await fakes.keyring.open(event.data.text) is None  # erasing the key erases the comment


async def test_engagement_with_an_unknown_idea_is_not_found(fakes):
    unknown = str(uuid.uuid4())
    for attempt in (
        fakes.intake.comment(unknown, ANNA_P, CommentIn(text="Hej")),
        fakes.intake.support(unknown, ANNA_P),
        fakes.intake.follow(unknown, ANNA_P),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert fakes.publisher.count == 0 and fakes.keyring.keys == {}


async def test_the_follower_marks_a_support_only_while_its_persons_key_is_live(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    await fakes.intake.support(idea_id, ANNA_P)
    [support] = fakes.publisher.on(TOPICS.engagement)
    await fakes.store.forget_ideas()  # as a rebuild starts
    await follow(fakes.store, fakes.keyring, support)
    assert fakes.store.supporters[idea_id] == {support.data.person.pseudonym}
    await fakes.store.forget_ideas()
    await fakes.keyring.erase(support.data.person.pseudonym)
    await follow(fakes.store, fakes.keyring, support)  # handled all the same, never failed
    assert fakes.store.supporters[idea_id] == set()


def test_the_person_of_a_sign_in_is_their_address_name_and_known_workplace():
    catalogue = load_catalogue()
    assert person_of(ANNA, catalogue) == Person(
        email="anna@kiruna.se", name="anna@kiruna.se", organisation="kiruna-kommun"
    )
    with pytest.raises(Forbidden, match="no e-mail address"):
        person_of(ADMIN, catalogue)


# --- re-routes ------------------------------------------------------------------------------------------------


def reroute_in(*targets: dict, areas: tuple[str, ...] = ()) -> RerouteIn:
    return RerouteIn(organisations=list(targets), areas=list(areas), reason="Hör hemma där")


async def test_only_the_innovation_office_and_admins_reroute(fakes):
    idea_id = await fakes.routed_idea("tekniska-verken")
    request = reroute_in({"organisation": "kiruna-kommun", "unit": "socialtjanst"}, areas=("valfard-och-omsorg",))
    for who in (ANNA, ERIK):
        with pytest.raises(Forbidden, match="innovation-office or admin"):
            await fakes.intake.reroute(who, idea_id, request)
    event_id = await fakes.intake.reroute(OFFICE, idea_id, request, "c-4")
    [command] = fakes.publisher.on(TOPICS.routing_commands)
    assert command.id == event_id and command.correlationid == "c-4" and command.data.requested_by == "office"
    assert [(t.organisation, t.unit) for t in command.data.organisations] == [("kiruna-kommun", "socialtjanst")]
    assert [a.area for a in command.data.areas] == ["valfard-och-omsorg"]
    await fakes.intake.reroute(ADMIN, idea_id, request)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (reroute_in({"organisation": "no-such-org"}), "organisations.0.organisation"),
        (
            reroute_in({"organisation": "kiruna-kommun"}, {"organisation": "tekniska-verken", "unit": "boende"}),
            "organisations.1.unit",
        ),
        (reroute_in({"organisation": "kiruna-kommun"}, areas=("boende", "no-such-area")), "areas.1"),
    ],
)
async def test_a_reroute_outside_the_catalogue_is_refused(fakes, request_, field):
    idea_id = await fakes.routed_idea("tekniska-verken")
    with pytest.raises(InvalidField) as refused:
        await fakes.intake.reroute(OFFICE, idea_id, request_)
    assert refused.value.field == field and fakes.publisher.on(TOPICS.routing_commands) == []


async def test_a_reroute_of_an_unknown_idea_is_not_found(fakes):
    with pytest.raises(NotFound):
        await fakes.intake.reroute(OFFICE, str(uuid.uuid4()), reroute_in({"organisation": "kiruna-kommun"}))

"""Routing's handlers on in-memory fakes (tests/fakes/routing.py): every decision without Kafka or Redis."""

from __future__ import annotations

import uuid

import pytest

from services.routing.classifier import Router
from services.routing.feedback import FeedbackMemory
from services.routing.handlers import RoutingHandlers
from shared.catalogue import TRIAGE_ORGANISATION, load_catalogue
from shared.events import AreaMatch, Envelope, IdeaEdited, IdeaSubmitted, RerouteIdea, RoutingTarget, derived_event_id
from shared.metrics import ServiceMetrics
from shared.topics import Topics
from tests.fakes.routing import FakePublisher, FakeRoutingStore, FixedClock

TOPICS = Topics()
CATALOGUE = load_catalogue()
BATH = ("Gratis bad för nyanlända familjer", "Låt nyanlända barnfamiljer prova simhallen gratis en gång i månaden.")


class Routing:
    """The handlers with their fakes, and what the tests look at."""

    def __init__(self, store: FakeRoutingStore | None = None) -> None:
        self.publisher = FakePublisher()
        self.store = store or FakeRoutingStore()
        self.memory = FeedbackMemory()
        self.router = Router(CATALOGUE, feedback=self.memory)
        self.metrics = ServiceMetrics.create("routing")
        self.clock = FixedClock()
        self.handlers = RoutingHandlers(
            self.publisher,
            lambda: self.router,
            self.store,
            self.memory,
            topics=TOPICS,
            metrics=self.metrics,
            clock=self.clock,
        )

    def routed(self) -> list[Envelope]:
        return self.publisher.on(TOPICS.routed)

    def skips(self, topic: str) -> float:
        return self.metrics.registry.get_sample_value(
            "kiruna_idempotent_skips_total", {"service": "routing", "topic": topic}
        )


@pytest.fixture
def routing() -> Routing:
    return Routing()


def submitted(title: str, description: str = "", idea_id: str | None = None, **fields) -> Envelope:
    idea = IdeaSubmitted(
        idea_id=idea_id or str(uuid.uuid4()), title=title, description=description, anonymous=True, **fields
    )
    return Envelope.wrap(idea, source="/tests", correlation_id="corr-1")


def reroute(idea_id: str, *targets: tuple[str, str | None], areas: tuple[str, ...] = ()) -> Envelope:
    command = RerouteIdea(
        idea_id=idea_id,
        organisations=tuple(RoutingTarget(organisation=org, unit=unit) for org, unit in targets),
        areas=tuple(AreaMatch(area=a) for a in areas),
        requested_by="office.person",
        reason="Integration",
    )
    return Envelope.wrap(command, source="/tests")


# --- a submitted idea -----------------------------------------------------------------------------------------


async def test_a_submitted_idea_is_routed_to_every_organisation_it_touches_and_their_topics(routing):
    event = submitted(
        "Informationsträffar om flytten av stadskärnan",
        "Invånarna vet inte när deras kvarter ska flyttas. Ordna träffar med kommunen och bostadsbolaget för "
        "hyresgästerna.",
    )
    await routing.handlers.submitted(event)
    [routed] = routing.routed()
    decision = routed.data
    organisations = {t.organisation for t in decision.organisations}
    assert {"kiruna-kommun", "kirunabostader"} <= organisations
    assert {"stadsomvandling", "boende"} <= {a.area for a in decision.areas}
    assert not decision.triage and "->" in decision.reason and decision.catalogue_version == CATALOGUE.version
    assert routed.id == derived_event_id(event.id, "routing.route")  # the same cause, the same effect id
    assert routed.correlationid == "corr-1" and routed.time == routing.clock.now and routed.subject == event.subject
    for org in organisations:
        assert routing.publisher.on(TOPICS.organisation(org)) == [routed]
    assert routing.store.ideas[event.subject]["title"] == event.data.title  # kept to learn from a re-route


async def test_an_idea_no_rule_can_place_goes_to_triage(routing):
    await routing.handlers.submitted(submitted("Lorem ipsum", "dolor sit amet"))
    [routed] = routing.routed()
    assert routed.data.triage and [t.organisation for t in routed.data.organisations] == [TRIAGE_ORGANISATION]
    assert routing.publisher.on(TOPICS.organisation(TRIAGE_ORGANISATION)) == [routed]


async def test_the_submitters_hints_are_taken(routing):
    await routing.handlers.submitted(
        submitted("Lorem ipsum", "dolor sit amet", area_hints=("boende",), organisation_hints=("tekniska-verken",))
    )
    decision = routing.routed()[0].data
    assert "boende" in {a.area for a in decision.areas}
    assert {"kirunabostader", "tekniska-verken"} <= {t.organisation for t in decision.organisations}
    assert not decision.triage


async def test_a_redelivered_submission_is_routed_once_and_counted_as_skipped(routing):
    event = submitted(*BATH)
    await routing.handlers.submitted(event)
    await routing.handlers.submitted(event)
    assert len(routing.routed()) == 1
    assert routing.skips(TOPICS.submitted) == 1


async def test_a_submission_is_marked_handled_only_after_it_was_published(routing):
    routing.publisher.unavailable = True
    event = submitted(*BATH)
    with pytest.raises(Exception, match="fake outage"):
        await routing.handlers.submitted(event)
    assert event.id not in routing.store.handled_events  # so the retry routes it
    routing.publisher.unavailable = False
    await routing.handlers.submitted(event)
    assert [e.id for e in routing.routed()] == [derived_event_id(event.id, "routing.route")]


# --- an idea corrected by its submitter (issue 18) -------------------------------------------------------------


def edited(idea_id: str, title: str, description: str = "") -> Envelope:
    return Envelope.wrap(
        IdeaEdited(idea_id=idea_id, title=title, description=description, edited_by="ab12"), source="/tests"
    )


SNOW = ("Snöröjning vid skolan", "Gångbanorna vid skolan plogas för sent på morgonen.")
HEATING = ("Fjärrvärme till badhuset", "Anslut badhuset till fjärrvärmenätet i stället för elpannan.")


async def test_an_edited_idea_is_routed_again_by_its_new_text_with_the_submissions_hints(routing):
    idea = submitted(*SNOW, organisation_hints=("kirunabostader",))
    await routing.handlers.submitted(idea)
    first = routing.routed()[0].data
    assert "tekniska-verken" not in {t.organisation for t in first.organisations}
    correction = edited(idea.subject, *HEATING)
    await routing.handlers.edited(correction)
    await routing.handlers.edited(correction)  # redelivered: routed once
    [_, again] = routing.routed()
    assert again.id == derived_event_id(correction.id, "routing.route-edited")
    organisations = {t.organisation for t in again.data.organisations}
    assert {"tekniska-verken", "kirunabostader"} <= organisations  # the new text, and the submitter's hint kept
    assert again.data.title == HEATING[0]
    assert routing.store.ideas[idea.subject]["title"] == HEATING[0]  # a later re-route learns the corrected text
    assert routing.skips(TOPICS.edited) == 1


async def test_an_edit_that_overtakes_its_submission_is_routed_when_the_submission_arrives(routing):
    idea = submitted(*SNOW)
    await routing.handlers.edited(edited(idea.subject, *HEATING))
    assert routing.routed() == []  # nothing to route yet: the submission has not arrived
    await routing.handlers.submitted(idea)
    [routed] = routing.routed()
    assert routed.data.title == HEATING[0]
    assert "tekniska-verken" in {t.organisation for t in routed.data.organisations}


async def test_an_edit_leaves_the_innovation_offices_reroute_standing(routing):
    idea = submitted(*SNOW)
    await routing.handlers.submitted(idea)
    await routing.handlers.reroute(reroute(idea.subject, ("kiruna-kommun", "samhallsbyggnad")))
    await routing.handlers.edited(edited(idea.subject, *HEATING))
    assert len(routing.routed()) == 2  # the routing and the re-route; the edit changed the text only
    assert routing.store.ideas[idea.subject]["title"] == HEATING[0]


# --- re-routes from the innovation office ---------------------------------------------------------------------


async def test_a_reroute_replaces_the_routing_and_teaches_the_router(routing):
    idea = submitted(*BATH)
    await routing.handlers.submitted(idea)
    command = reroute(idea.subject, ("kiruna-kommun", "socialtjanst"), areas=("valfard-och-omsorg",))
    await routing.handlers.reroute(command)
    _routed, second = routing.routed()
    assert second.id == derived_event_id(command.id, "routing.reroute") and second.correlationid == command.id
    assert [(t.organisation, t.unit) for t in second.data.organisations] == [("kiruna-kommun", "socialtjanst")]
    assert [a.area for a in second.data.areas] == ["valfard-och-omsorg"]
    assert second.data.title == BATH[0] and second.data.rerouted_by == "office.person"
    assert second.data.reason == "Omdirigerad av office.person: Integration"
    assert routing.publisher.on(TOPICS.organisation("kiruna-kommun"))[-1] == second
    assert routing.store.ideas[idea.subject]["rerouted"] == "1"
    [learnt] = routing.store.feedback.values()
    assert (learnt["idea_id"], learnt["title"], learnt["organisations"][0]["unit"]) == (
        idea.subject,
        BATH[0],
        "socialtjanst",
    )
    # a similar idea now goes where the officer sent this one, and the reason says so
    await routing.handlers.submitted(submitted(BATH[0], BATH[1] + " Gärna på lördagar."))
    similar = routing.routed()[-1].data
    assert [(t.organisation, t.unit) for t in similar.organisations] == [("kiruna-kommun", "socialtjanst")]
    assert similar.reason.startswith("Liknar en idé som omdirigerats")


async def test_a_reroute_handled_twice_is_published_once(routing):
    command = reroute(str(uuid.uuid4()), ("tekniska-verken", None))
    await routing.handlers.reroute(command)
    await routing.handlers.reroute(command)
    assert len(routing.routed()) == 1 and routing.skips(TOPICS.routing_commands) == 1


async def test_a_reroute_before_its_idea_is_held_and_learnt_when_the_idea_arrives(routing):
    idea = submitted(*BATH)
    await routing.handlers.reroute(reroute(idea.subject, ("kiruna-kommun", "socialtjanst")))
    [rerouted] = routing.routed()
    assert rerouted.data.title == ""  # the text is not known yet
    assert routing.store.pending_feedback[idea.subject]["title"] == "" and not routing.store.feedback
    assert len(routing.memory) == 0

    await routing.handlers.submitted(idea)
    assert routing.routed() == [rerouted]  # the innovation office's decision stands: not routed again
    assert not routing.store.pending_feedback
    assert routing.store.feedback[idea.subject]["title"] == BATH[0]  # learnt with the text that arrived
    assert len(routing.memory) == 1 and idea.id in routing.store.handled_events


async def test_what_other_replicas_learnt_is_picked_up(routing):
    shared_store = routing.store
    other = Routing(store=shared_store)  # another replica on the same Redis
    idea = submitted(*BATH)
    await other.handlers.submitted(idea)
    await other.handlers.reroute(reroute(idea.subject, ("kiruna-kommun", "socialtjanst")))
    assert len(routing.memory) == 0
    await routing.handlers.refresh_feedback()
    assert len(routing.memory) == 1
    await routing.handlers.submitted(submitted(BATH[0], BATH[1] + " Gärna på lördagar."))
    assert routing.routed()[-1].data.reason.startswith("Liknar en idé som omdirigerats")


# --- people ----------------------------------------------------------------------------------------------------


async def test_routing_ignores_the_submitter_and_has_nothing_to_forget_on_an_erasure(routing):
    from shared.events import PersonErasureRequested
    from tests.fakes.common import FakeKeyring

    keyring = FakeKeyring()
    anna, _ = await keyring.person_ref("anna.svensson@kiruna.se", "Anna Svensson", organisation="kiruna-kommun")
    named = Envelope.wrap(
        IdeaSubmitted(idea_id=str(uuid.uuid4()), title=BATH[0], description=BATH[1], submitter=anna),
        source="/tests",
    )
    await routing.handlers.submitted(named)
    [routed] = routing.routed()
    held = repr((routing.store.ideas, routing.store.feedback, routing.store.pending_feedback))
    published = repr([envelope.to_bytes() for envelope in routing.publisher.published[TOPICS.routed]])
    for trace in ("anna", "Anna Svensson", anna.pseudonym, anna.sealed.box):
        assert trace not in held and trace not in published, trace
    assert routed.data.title == BATH[0]

    before = (dict(routing.store.ideas), routing.publisher.count)
    erasure = Envelope.wrap(PersonErasureRequested(pseudonym=anna.pseudonym, requested_by="person"), source="/t")
    await routing.handlers.erased(erasure)
    assert (dict(routing.store.ideas), routing.publisher.count) == before


# --- starting while Redis is away -------------------------------------------------------------------------------


class RedisAwayAtStart(FakeRoutingStore):
    """Redis refuses at first (restarting, or hung past the socket timeout), then answers."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 1

    async def feedback_count(self) -> int:
        if self.refusals:
            self.refusals -= 1
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return await super().feedback_count()


async def test_routing_starts_and_routes_while_redis_cannot_say_what_it_learnt():
    routing = Routing(RedisAwayAtStart())
    async with routing.handlers.learning(interval_s=3600):  # the start does not fail ...
        await routing.handlers.submitted(submitted(*BATH))  # ... and ideas are routed meanwhile
    assert len(routing.routed()) == 1

"""Analytics' handlers and read model on the in-memory fake of the projection store (tests/fakes/analytics.py):
folding an idea's events in any arrival order, duplicates, re-routes, status changes, engagement, the submitter
index ("my ideas") and who sees which view of an idea (services/analytics/access.py). No Kafka, no Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.analytics import access
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.queries import ReadModel, check_scope
from shared.catalogue import load_catalogue
from shared.events import (
    AreaMatch,
    DeliveryOutcome,
    EngagementKind,
    Envelope,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    NotificationSent,
    RoutingTarget,
    Submitter,
)
from shared.metrics import ServiceMetrics
from shared.principal import Principal, Role
from tests.fakes.analytics import FakeProjectionStore

CATALOGUE = load_catalogue()
TZ = ZoneInfo("Europe/Stockholm")
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # a Monday
TOPIC = "ideas.any.v1"

ERIK = Principal("erik", "erik@tekniskaverken.se", organisation="tekniska-verken", roles=frozenset({Role.OFFICER}))
MARIA = Principal("maria", "maria@kirunabostader.se", organisation="kirunabostader", roles=frozenset({Role.OFFICER}))
OFFICE = Principal(
    "sara", "sara@kiruna.se", organisation="innovationsplattformen", roles=frozenset({Role.INNOVATION_OFFICE})
)
ANNA = Principal("anna", "Anna.Svensson@Kiruna.se", organisation="kiruna-kommun", roles=frozenset({Role.EMPLOYEE}))


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def event(payload, time: datetime) -> Envelope:
    return Envelope.wrap(payload, source="/tests", time=time)


def submitted(idea: str, time: datetime, *, email: str | None = "anna.svensson@kiruna.se", title="Idé") -> Envelope:
    submitter = Submitter(name="Anna Svensson", email=email, organisation="kiruna-kommun") if email else None
    return event(IdeaSubmitted(idea_id=idea, title=title, description="Text", submitter=submitter), time)


def routed(idea: str, time: datetime, *targets: str, by: str | None = None, areas=("klimat-och-energi",)):
    organisations = tuple(RoutingTarget(organisation=t.split("/")[0], unit=[*t.split("/"), None][1]) for t in targets)
    payload = IdeaRouted(
        idea_id=idea,
        organisations=organisations,
        areas=tuple(AreaMatch(area=a) for a in areas),
        reason="'fjärrvärmen' -> klimat-och-energi",
        triage=targets == ("innovationsplattformen",),
        rerouted_by=by,
    )
    return event(payload, time)


def status(idea: str, time: datetime, to: str, **extra) -> Envelope:
    return event(IdeaStatusChanged(idea_id=idea, to_state=IdeaState(to), changed_by="erik", **extra), time)


def engage(idea: str, time: datetime, kind: str, person: str, text: str | None = None) -> Envelope:
    return event(IdeaEngagement(idea_id=idea, kind=EngagementKind(kind), person=person, text=text), time)


def notified(idea: str, time: datetime, outcome: str = "delivered") -> Envelope:
    payload = NotificationSent(
        idea_id=idea,
        cause_event_id=str(uuid.uuid4()),
        recipient="anna.svensson@kiruna.se",
        channel="email",
        outcome=DeliveryOutcome(outcome),
    )
    return event(payload, time)


def new_id() -> str:
    return str(uuid.uuid4())


class Analytics:
    """The handlers and the read model over one fake store, as the service wires them."""

    def __init__(self) -> None:
        self.store = FakeProjectionStore()
        self.metrics = ServiceMetrics.create("analytics")
        self.handlers = AnalyticsHandlers(self.store, self.metrics)
        self.read = ReadModel(self.store, CATALOGUE, TZ, clock=lambda: at(days=30))

    async def record(self, *events: Envelope, topic: str = TOPIC) -> None:
        for one in events:
            await self.handlers.record(topic, [one])

    def skipped(self, topic: str = TOPIC) -> float:
        labels = {"service": "analytics", "topic": topic}
        return self.metrics.registry.get_sample_value("kiruna_idempotent_skips_total", labels) or 0.0

    async def inbox(self, **filters) -> list[str]:
        state = filters.pop("state", None)
        page = await self.read.inbox(check_scope(CATALOGUE, **filters), state=state, page_size=100)
        return [item["idea_id"] for item in page["items"]]


@pytest.fixture
def analytics() -> Analytics:
    return Analytics()


# --- folding ---------------------------------------------------------------------------------------------------


async def test_an_ideas_events_give_the_same_summary_and_indexes_in_any_arrival_order():
    idea = new_id()
    events = [
        submitted(idea, at(0)),
        routed(idea, at(0, 1), "tekniska-verken/energi"),
        status(idea, at(1), "acknowledged"),
        engage(idea, at(1, 2), "support", "per@kiruna.se"),
        status(idea, at(2), "in-assessment"),
    ]
    outcomes = set()
    for order in itertools.permutations(events):
        analytics = Analytics()
        await analytics.record(*order)
        store = analytics.store
        outcomes.add((store.summary_documents[idea], json.dumps(sorted(map(list, store.indexes)))))
    assert len(outcomes) == 1

    analytics = Analytics()
    await analytics.handlers.record(TOPIC, events[::-1])  # one batch of the idea: one refresh
    assert analytics.store.writes == 1
    summary = (await analytics.store.summaries([idea]))[0]
    assert summary.state == "in-assessment"
    assert [state for state, _ in summary.history] == ["submitted", "routed", "acknowledged", "in-assessment"]
    assert (await analytics.inbox(state="in-assessment")) == [idea]
    assert (await analytics.inbox(organisation="tekniska-verken", unit="energi")) == [idea]


async def test_a_redelivered_event_changes_nothing_and_is_counted_as_skipped(analytics):
    idea = new_id()
    first, second = submitted(idea, at(0)), routed(idea, at(0, 1), "kirunabostader")
    await analytics.record(first, second)
    before = analytics.store.summary_documents[idea]

    await analytics.handlers.record("ideas.routed.v1", [second, second])
    await analytics.record(first)

    assert analytics.store.summary_documents[idea] == before
    assert len(await analytics.store.entries(idea)) == 2
    assert analytics.skipped("ideas.routed.v1") == 2 and analytics.skipped() == 1


async def test_concurrent_events_of_one_idea_end_in_the_summary_of_all_of_them(analytics):
    idea = new_id()
    events = [submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken"), status(idea, at(1), "acknowledged")]
    await asyncio.gather(*(analytics.handlers.record(TOPIC, [one]) for one in events))
    summary = (await analytics.store.summaries([idea]))[0]
    assert summary.state == "acknowledged" and summary.organisations == ["tekniska-verken"]
    assert (await analytics.inbox(state="acknowledged")) == [idea] and not await analytics.inbox(state="routed")


async def test_a_reroute_moves_the_idea_between_inboxes_and_keeps_its_state(analytics):
    idea = new_id()
    await analytics.record(
        submitted(idea, at(0)),
        routed(idea, at(0, 1), "innovationsplattformen"),
        status(idea, at(1), "acknowledged"),
    )
    assert (await analytics.inbox(organisation="innovationsplattformen")) == [idea]

    await analytics.record(routed(idea, at(2), "tekniska-verken/energi", "kirunabostader/forvaltning", by="sara"))

    assert not await analytics.inbox(organisation="innovationsplattformen")
    assert (await analytics.inbox(organisation="tekniska-verken")) == [idea]
    assert (await analytics.inbox(organisation="kirunabostader", unit="forvaltning")) == [idea]
    item = (await analytics.read.inbox(check_scope(CATALOGUE, organisation="kirunabostader")))["items"][0]
    assert item["state"] == "acknowledged" and item["cross_organisation"]
    assert item["organisations"] == ["kirunabostader", "tekniska-verken"]
    view = await analytics.read.idea(idea)
    assert not view.triage and [entry.get("rerouted_by") for entry in view.timeline] == [None, None, None, "sara"]


async def test_status_changes_move_the_state_index_and_what_an_officer_may_do_next(analytics):
    idea, other = new_id(), new_id()
    await analytics.record(submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken"))
    await analytics.record(submitted(other, at(1)), routed(other, at(1, 1), "tekniska-verken"))
    page = await analytics.read.inbox(check_scope(CATALOGUE, organisation="tekniska-verken"))
    assert [i["idea_id"] for i in page["items"]] == [other, idea]  # newest first
    assert page["items"][0]["next_states"] == ["acknowledged", "declined", "merged"]

    await analytics.record(status(idea, at(2), "acknowledged"), status(idea, at(3), "in-assessment"))
    await analytics.record(status(idea, at(4), "accepted"))
    assert (await analytics.inbox(state="accepted")) == [idea]
    assert (await analytics.inbox(state="routed")) == [other]
    accepted = (await analytics.read.inbox(check_scope(CATALOGUE), state="accepted"))["items"][0]
    assert accepted["next_states"] == ["in-pilot", "implemented", "declined", "merged"]

    await analytics.record(status(other, at(5), "merged", reason="Samma idé", merged_into=idea))
    view = await analytics.read.idea(other)
    assert (view.state, view.merged_into, view.next_states) == ("merged", idea, [])
    await analytics.record(status(idea, at(6), "declined", reason="För dyrt"))
    assert (await analytics.read.idea(idea)).decline_reason == "För dyrt"
    assert sorted(await analytics.inbox(state="declined") + await analytics.inbox(state="merged")) == sorted(
        [idea, other]
    )


async def test_engagement_counts_distinct_supporters_and_followers_and_every_comment(analytics):
    idea = new_id()
    await analytics.record(
        submitted(idea, at(0)),
        engage(idea, at(1), "support", "per@kiruna.se"),
        engage(idea, at(2), "support", "PER@kiruna.se"),  # the same person, another case
        engage(idea, at(3), "support", "maria@kirunabostader.se"),
        engage(idea, at(4), "follow", "per@kiruna.se"),
        engage(idea, at(5), "comment", "per@kiruna.se", "Bra idé"),
        engage(idea, at(6), "comment", "per@kiruna.se", "Och billig"),
        notified(idea, at(7)),
        notified(idea, at(8), "skipped"),
    )
    summary = (await analytics.store.summaries([idea]))[0]
    assert (summary.supporters, summary.followers, summary.comments) == (2, 1, 2)
    assert summary.notifications == {"delivered": 1, "skipped": 1}
    view = await analytics.read.idea(idea)
    assert (view.supporters, view.followers, view.comments) == (2, 1, 2)
    assert "notified" not in {entry["kind"] for entry in view.timeline}  # counted, not part of the story
    stored = json.dumps(await analytics.store.entries(idea))
    assert "per@kiruna.se" not in stored.lower() and "anna.svensson" not in stored.lower()


async def test_my_ideas_are_the_named_ideas_of_the_address_in_any_case_newest_first(analytics):
    first, second, anonymous, someone_elses = new_id(), new_id(), new_id(), new_id()
    await analytics.record(
        submitted(first, at(0)),
        submitted(second, at(1), title="Andra"),
        submitted(anonymous, at(2), email=None),
        submitted(someone_elses, at(3), email="per@kiruna.se"),
        routed(second, at(1, 1), "kirunabostader"),
    )
    mine = await analytics.read.ideas_of(ANNA.email)
    assert [i["idea_id"] for i in mine] == [second, first]
    assert mine[0] == {
        "idea_id": second,
        "title": "Andra",
        "state": "routed",
        "state_since": at(1, 1).isoformat().replace("+00:00", "Z"),
        "submitted_at": at(1).isoformat().replace("+00:00", "Z"),
        "organisations": ["kirunabostader"],
        "status_url": f"/ideas/{second}",
    }
    assert await analytics.read.ideas_of("nobody@kiruna.se") == []


# --- who sees what ---------------------------------------------------------------------------------------------


async def routed_with_story(analytics: Analytics) -> str:
    idea = new_id()
    await analytics.record(
        submitted(idea, at(0)),
        routed(idea, at(0, 1), "innovationsplattformen"),
        routed(idea, at(1), "tekniska-verken/energi", by="sara"),
        status(idea, at(2), "acknowledged", organisation="tekniska-verken"),
        engage(idea, at(3), "comment", "per@kiruna.se", "Ring Per på 070-123 45 67"),
    )
    return idea


async def test_the_public_view_names_no_one_and_shows_comments_only_as_counts(analytics):
    idea = await routed_with_story(analytics)
    view = await analytics.read.idea(idea)
    for principal in (None, ANNA, MARIA):
        assert access.idea_view_for(principal, view) == "public"
    document = access.idea_document(view, "public")
    text = json.dumps(document)
    assert document["view"] == "public" and document["comments"] == 1
    assert "changed_by" not in text and "rerouted_by" not in text and "070-123" not in text
    assert [entry.get("rerouted", False) for entry in document["timeline"]] == [False, False, True, False, False]


async def test_the_officer_view_is_for_the_organisations_it_is_routed_to_and_the_innovation_office(analytics):
    idea = await routed_with_story(analytics)
    view = await analytics.read.idea(idea)
    assert access.idea_view_for(ERIK, view) == access.idea_view_for(OFFICE, view) == "officer"
    document = access.idea_document(view, "officer")
    timeline = document["timeline"]
    assert document["view"] == "officer"
    assert timeline[2]["rerouted_by"] == "sara" and timeline[3]["changed_by"] == "erik"
    assert timeline[4]["summary"] == "Ring Per på 070-123 45 67"


async def test_inboxes_are_for_their_organisations_officers_and_every_inbox_for_the_innovation_office():
    assert access.inbox_refusal(ERIK, "tekniska-verken") is None
    assert access.inbox_refusal(OFFICE, "tekniska-verken") is None and access.inbox_refusal(OFFICE, None) is None
    assert "tekniska-verken" in access.inbox_refusal(MARIA, "tekniska-verken")
    assert access.inbox_refusal(ERIK, None) and access.inbox_refusal(ANNA, "kiruna-kommun")
    assert access.inbox_roles(None) == (Role.INNOVATION_OFFICE, Role.ADMIN)

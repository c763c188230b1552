"""Analytics' handlers and read model on the in-memory fake of the projection store (tests/fakes/analytics.py) and
of the people's keyring (tests/fakes/common.py FakeKeyring, with the real sealing): folding an idea's events in
any arrival order, duplicates, re-routes, status changes, engagement, the submitter index ("my ideas", by
pseudonym), who sees which view of an idea (services/analytics/access.py), and erasure: the person's name, address
and comments' texts gone, "en tidigare medarbetare", every count and figure unchanged. No Kafka, no Redis."""

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
from services.analytics.queries import FIGURES, Listing, ReadModel, Scope, check_scope
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
    PersonErasureRequested,
    PersonRef,
    RoutingTarget,
    Sealed,
)
from shared.metrics import ServiceMetrics
from shared.principal import Principal, Role
from shared.sealing import DataKey
from tests.fakes.analytics import FakeProjectionStore
from tests.fakes.common import FakeKeyring

CATALOGUE = load_catalogue()
TZ = ZoneInfo("Europe/Stockholm")
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # a Monday
TOPIC = "ideas.any.v2"
KEYRING = FakeKeyring()
"""The people's keys of these tests (and of those that import the event builders below)."""

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


def data_key(email: str, keyring: FakeKeyring = KEYRING) -> DataKey:
    """The person's data key, made if they have none (``keyring.key_for``; the fake keeps its keys in a dict, so
    the event builders below need not be coroutines)."""
    pseudonym = keyring.pseudonym(email)
    if pseudonym not in keyring.keys:
        keyring.keys[pseudonym] = DataKey.new(pseudonym)
    return keyring.keys[pseudonym]


def person(email: str, name: str | None = "Anna Svensson", organisation: str | None = "kiruna-kommun", unit=None):
    """A person as an event names them (``keyring.person_ref``): the pseudonym, and name and address sealed."""
    key = data_key(email)
    sealed = key.seal_json({"name": name, "email": email.strip().lower()})
    return PersonRef(pseudonym=key.pseudonym, sealed=sealed, organisation=organisation, unit=unit)


def sealed_text(email: str, text: str) -> Sealed:
    return data_key(email).seal(text)


def submitted(
    idea: str, time: datetime, *, email: str | None = "anna.svensson@kiruna.se", title="Idé", name="Anna Svensson"
) -> Envelope:
    submitter = person(email, name) if email else None
    payload = IdeaSubmitted(idea_id=idea, title=title, description="Text", submitter=submitter, anonymous=not email)
    return event(payload, time)


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


def engage(idea: str, time: datetime, kind: str, email: str, text: str | None = None) -> Envelope:
    payload = IdeaEngagement(
        idea_id=idea,
        kind=EngagementKind(kind),
        person=person(email, name=f"Namn {email.split('@')[0]}", organisation=None),
        text=sealed_text(email, text) if text is not None else None,
    )
    return event(payload, time)


def notified(idea: str, time: datetime, outcome: str = "delivered") -> Envelope:
    payload = NotificationSent(
        idea_id=idea,
        cause_event_id=str(uuid.uuid4()),
        recipient=KEYRING.pseudonym("anna.svensson@kiruna.se"),
        channel="email",
        outcome=DeliveryOutcome(outcome),
    )
    return event(payload, time)


def erasure(email: str, time: datetime | None = None) -> Envelope:
    return Envelope.wrap(
        PersonErasureRequested(pseudonym=KEYRING.pseudonym(email), requested_by="person"), source="/tests", time=time
    )


def new_id() -> str:
    return str(uuid.uuid4())


class Analytics:
    """The handlers and the read model over one fake store, as the service wires them."""

    def __init__(self) -> None:
        self.store = FakeProjectionStore()
        self.metrics = ServiceMetrics.create("analytics")
        self.keyring = KEYRING
        self.handlers = AnalyticsHandlers(self.store, self.metrics, self.keyring)
        self.read = ReadModel(self.store, CATALOGUE, TZ, clock=lambda: at(days=30), keyring=self.keyring)

    async def erase(self, email: str) -> None:
        """What an erasure does: intake tombstones the key, every service gets the request."""
        await self.keyring.erase(self.keyring.pseudonym(email))
        await self.handlers.erased(erasure(email))

    async def figures(self) -> dict:
        scope = check_scope(CATALOGUE)
        return {name: await self.read.figure(name, scope) for name in FIGURES}

    async def record(self, *events: Envelope, topic: str = TOPIC) -> None:
        for one in events:
            await self.handlers.record(topic, [one])

    def skipped(self, topic: str = TOPIC) -> float:
        labels = {"service": "analytics", "topic": topic}
        return self.metrics.registry.get_sample_value("kiruna_idempotent_skips_total", labels) or 0.0

    async def inbox_page(self, scope: Scope, *, state: str | None = None, **more) -> dict:
        """A page of the inbox (the list of ideas in the officer view)."""
        return await self.read.ideas(Listing(scope, state=state, **more), officer=True, me=more.get("me"))

    async def inbox(self, **filters) -> list[str]:
        state = filters.pop("state", None)
        page = await self.inbox_page(check_scope(CATALOGUE, **filters), state=state, page_size=100)
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
    item = (await analytics.inbox_page(check_scope(CATALOGUE, organisation="kirunabostader")))["items"][0]
    assert item["state"] == "acknowledged" and item["cross_organisation"]
    assert item["organisations"] == ["kirunabostader", "tekniska-verken"]
    view = await analytics.read.idea(idea)
    assert not view.triage and [entry.get("rerouted_by") for entry in view.timeline] == [None, None, None, "sara"]


async def test_status_changes_move_the_state_index_and_what_an_officer_may_do_next(analytics):
    idea, other = new_id(), new_id()
    await analytics.record(submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken"))
    await analytics.record(submitted(other, at(1)), routed(other, at(1, 1), "tekniska-verken"))
    page = await analytics.inbox_page(check_scope(CATALOGUE, organisation="tekniska-verken"))
    assert [i["idea_id"] for i in page["items"]] == [other, idea]  # newest first
    assert page["items"][0]["next_states"] == ["acknowledged", "declined", "merged"]

    await analytics.record(status(idea, at(2), "acknowledged"), status(idea, at(3), "in-assessment"))
    await analytics.record(status(idea, at(4), "accepted"))
    assert (await analytics.inbox(state="accepted")) == [idea]
    assert (await analytics.inbox(state="routed")) == [other]
    accepted = (await analytics.inbox_page(check_scope(CATALOGUE), state="accepted"))["items"][0]
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
    stored = json.dumps([await analytics.store.entries(idea), analytics.store.summary_documents[idea]])
    for personal in ("per@kiruna.se", "anna.svensson", "Anna Svensson", "Namn per", "Bra idé", "Och billig"):
        assert personal.lower() not in stored.lower(), personal  # pseudonyms and sealed values only


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
        "description": "Text",
        "state": "routed",
        "state_since": at(1, 1).isoformat().replace("+00:00", "Z"),
        "submitted_at": at(1).isoformat().replace("+00:00", "Z"),
        "organisations": ["kirunabostader"],
        "challenge": None,
        "assigned": False,
        "last": {"kind": "routed", "time": at(1, 1).isoformat().replace("+00:00", "Z")},
        "can_edit": True,
        "can_withdraw": True,
        "merged_into": None,
        "merged_into_title": None,
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


async def test_the_public_view_names_no_officer_nor_the_submitter_and_shows_comments_with_their_authors(analytics):
    idea = await routed_with_story(analytics)
    view = await analytics.read.idea(idea)
    for principal in (None, ANNA, MARIA):
        assert access.idea_view_for(principal, view) == "public"
    document = access.idea_document(view, "public")
    text = json.dumps(document)
    assert document["view"] == "public" and document["comments"] == 1
    assert "changed_by" not in text and "rerouted_by" not in text and '"erik"' not in text and "sara" not in text
    assert document["submitter"] == {"status": "employee", "organisation": "kiruna-kommun"}  # "en medarbetare"
    assert "Anna" not in text and "sealed" not in text and "box" not in text and "per@kiruna.se" not in text
    assert [entry.get("rerouted", False) for entry in document["timeline"]] == [False, False, True, False, False]
    [comment] = [entry for entry in document["timeline"] if entry.get("engagement") == "comment"]
    assert (comment["summary"], comment["author"]) == ("Ring Per på 070-123 45 67", "Namn per")  # issue 18


async def test_the_officer_view_is_for_the_organisations_it_is_routed_to_and_the_innovation_office(analytics):
    idea = await routed_with_story(analytics)
    view = await analytics.read.idea(idea)
    assert access.idea_view_for(ERIK, view) == access.idea_view_for(OFFICE, view) == "officer"
    document = access.idea_document(view, "officer")
    timeline = document["timeline"]
    assert document["view"] == "officer"
    assert timeline[2]["rerouted_by"] == "sara" and timeline[3]["changed_by"] == "erik"
    assert timeline[4]["summary"] == "Ring Per på 070-123 45 67"  # opened for those who act on the idea
    assert document["submitter"] == {"status": "employee", "organisation": "kiruna-kommun", "name": "Anna Svensson"}
    assert "sealed" not in json.dumps(document) and "anna.svensson@" not in json.dumps(document)


async def test_inboxes_are_for_their_organisations_officers_and_every_inbox_for_the_innovation_office():
    assert access.inbox_refusal(ERIK, "tekniska-verken") is None
    assert access.inbox_refusal(OFFICE, "tekniska-verken") is None and access.inbox_refusal(OFFICE, None) is None
    assert "tekniska-verken" in access.inbox_refusal(MARIA, "tekniska-verken")
    assert access.inbox_refusal(ERIK, None) and access.inbox_refusal(ANNA, "kiruna-kommun")
    assert access.inbox_roles(None) == (Role.INNOVATION_OFFICE, Role.ADMIN)


async def test_the_inbox_names_the_submitter_and_says_anonymous_for_anonymous_ideas(analytics):
    named, anonymous, nameless = new_id(), new_id(), new_id()
    await analytics.record(
        submitted(named, at(0)),
        submitted(anonymous, at(1), email=None),
        submitted(nameless, at(2), email="utan.namn@kiruna.se", name=None),
    )
    items = {i["idea_id"]: i["submitter"] for i in (await analytics.inbox_page(check_scope(CATALOGUE)))["items"]}
    assert items == {
        named: {"status": "employee", "organisation": "kiruna-kommun", "name": "Anna Svensson"},
        anonymous: {"status": "anonymous"},
        nameless: {"status": "employee", "organisation": "kiruna-kommun", "name": None},  # "en medarbetare"
    }


# --- erasure ---------------------------------------------------------------------------------------------------


async def erased_story(analytics: Analytics, kim: str) -> tuple[str, str]:
    """Kim submits one idea and comments on, supports and follows another; others engage too."""
    mine, other = new_id(), new_id()
    await analytics.record(
        submitted(mine, at(0), email=kim, name="Kim Kallio", title="Kims idé"),
        routed(mine, at(0, 1), "tekniska-verken/energi"),
        status(mine, at(1), "acknowledged"),
        submitted(other, at(0, 2)),
        routed(other, at(0, 3), "tekniska-verken/energi"),
        engage(other, at(1), "comment", kim, "Ring Kim på 070-999"),
        engage(other, at(1, 1), "support", kim),
        engage(other, at(1, 2), "follow", kim),
        engage(other, at(1, 3), "support", "per@kiruna.se"),
        engage(other, at(1, 4), "comment", "per@kiruna.se", "Pers kommentar"),
        engage(mine, at(2), "support", "per@kiruna.se"),
        notified(mine, at(2)),
    )
    return mine, other


async def test_an_erasure_forgets_the_person_and_leaves_every_count_and_figure_as_it_was(analytics):
    kim = f"kim.{new_id()[:8]}@kiruna.se"
    mine, other = await erased_story(analytics, kim)
    pseudonym = KEYRING.pseudonym(kim)
    assert [i["idea_id"] for i in await analytics.read.ideas_of(kim)] == [mine]
    figures_before = await analytics.figures()
    counts_before = [(s.supporters, s.followers, s.comments) for s in await analytics.store.summaries([mine, other])]

    await analytics.erase(kim)

    assert await analytics.figures() == figures_before  # distinct submitters, engagement, everything
    assert [(s.supporters, s.followers, s.comments) for s in await analytics.store.summaries([mine, other])] == (
        counts_before
    )
    view = await analytics.read.idea(mine)
    for kind in ("public", "officer"):
        assert access.idea_document(view, kind)["submitter"] == {"status": "former-employee"}
    assert await analytics.read.ideas_of(kim) == [] and ("submitter", pseudonym) not in analytics.store.indexes
    assert pseudonym not in analytics.store.held
    item = next(i for i in (await analytics.inbox_page(check_scope(CATALOGUE)))["items"] if i["idea_id"] == mine)
    assert item["submitter"] == {"status": "former-employee"}
    comments = [
        (c.get("summary"), c.get("removed", False))
        for c in access.idea_document(await analytics.read.idea(other), "officer")["timeline"]
        if c.get("engagement") == "comment"
    ]
    assert comments == [("", True), ("Pers kommentar", False)]  # Kim's removed; Per's still there
    held = json.dumps([await analytics.store.entries(mine), await analytics.store.entries(other)])
    assert f'"{pseudonym}.' not in held  # not one sealed value under Kim's key is kept

    writes = analytics.store.writes
    await analytics.handlers.erased(erasure(kim))  # a repeated request changes nothing
    assert analytics.store.writes == writes and await analytics.figures() == figures_before


async def test_events_whose_key_is_gone_make_no_person_state_and_read_as_erased(analytics):
    """As in a replay after an erasure: the events still name the person's old key, which no longer exists."""
    kim = f"kim.{new_id()[:8]}@kiruna.se"
    idea, other = new_id(), new_id()
    events = [
        submitted(idea, at(0), email=kim, name="Kim Kallio"),
        submitted(other, at(0, 1)),
        engage(other, at(1), "comment", kim, "Hemligt"),
    ]
    await KEYRING.erase(KEYRING.pseudonym(kim))
    await analytics.record(*events)
    [summary] = await analytics.store.summaries([idea])
    assert summary.submitter_status == "former-employee" and summary.submitter_key == KEYRING.pseudonym(kim)
    assert ("submitter", KEYRING.pseudonym(kim)) not in analytics.store.indexes
    assert KEYRING.pseudonym(kim) not in analytics.store.held
    assert (await analytics.figures())["overview"]["submitters"] == 2  # still counted, by pseudonym
    assert (await analytics.read.idea(idea)).submitter == {"status": "former-employee"}
    [comment] = [i for i in (await analytics.read.idea(other)).timeline if i["kind"] == "engagement"]
    assert comment["removed"] is True and comment["summary"] == ""


async def test_a_person_who_comes_back_after_an_erasure_starts_from_nothing(analytics):
    kim = f"kim.{new_id()[:8]}@kiruna.se"
    before, after = new_id(), new_id()
    await analytics.record(submitted(before, at(0), email=kim, name="Kim Kallio"))
    request = erasure(kim)
    await KEYRING.erase(KEYRING.pseudonym(kim))
    await analytics.handlers.erased(request)
    pseudonym = KEYRING.pseudonym(kim)
    KEYRING.keys[pseudonym] = DataKey.new(pseudonym, now=request.time + timedelta(seconds=1))  # a fresh key
    await analytics.record(submitted(after, at(1), email=kim, name="Kim Kallio"))
    assert [i["idea_id"] for i in await analytics.read.ideas_of(kim)] == [after]
    await analytics.handlers.erased(request)  # the old request again (redelivered, or a rebuild): theirs stays
    assert [i["idea_id"] for i in await analytics.read.ideas_of(kim)] == [after]
    assert (await analytics.read.idea(after)).submitter["name"] == "Kim Kallio"
    assert (await analytics.read.idea(before)).submitter == {"status": "former-employee"}

"""Analytics' bounded work, on the in-memory fake of the projection store: engagement and notifications are
absorbed into the stored summary (O(1) per event, whatever the idea's history) and the result is always the full
fold of all the idea's events, in any arrival order, batching, duplication or interleaving; the figures' cache
(services/analytics/cache.py) serves a figure again only while nothing changed, bounded in age and in scopes."""

from __future__ import annotations

import asyncio
import json
import random

from services.analytics.cache import FigureCache
from services.analytics.domain import IdeaSummary, sealed_keys, summarise, timeline_entry
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.queries import ReadModel, check_scope
from shared.metrics import ServiceMetrics
from tests.fakes.analytics import FakeProjectionStore
from tests.unit.test_analytics_handlers import (
    CATALOGUE,
    KEYRING,
    TZ,
    at,
    engage,
    new_id,
    notified,
    routed,
    status,
    submitted,
)
from tests.unit.test_analytics_taking_part import ERIK_ID, assigned, comment, edited

PEOPLE = [f"person{n}@kiruna.se" for n in range(6)]
PATHS = [
    ["acknowledged", "in-assessment", "accepted", "in-pilot", "implemented", "spread"],
    ["acknowledged", "declined"],
    ["acknowledged", "in-assessment", "merged"],
    ["withdrawn"],
    ["acknowledged", "withdrawn"],
    [],
]


def random_history(rnd: random.Random, idea: str) -> list:
    """One idea's events in event-time order: a submission, a routing (sometimes a re-routing), a path through
    the lifecycle (withdrawal included), edits and assignments, and engagement (comments anonymous or an
    officer's answer too) and notifications at any time (some stamped before the submission)."""
    events = [submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken/energi")]
    if rnd.random() < 0.3:
        events.append(routed(idea, at(0, 5), "kirunabostader/forvaltning", "tekniska-verken", by="sara"))
    for step, state in enumerate(rnd.choice(PATHS)):
        extra = {"organisation": "kirunabostader"} if state == "spread" else {}
        if state == "merged":
            extra = {"merged_into": new_id()}
        events.append(status(idea, at(step + 1), state, **extra))
    for n in range(rnd.randrange(0, 3)):
        events.append(edited(idea, at(rnd.uniform(0, 1)), f"Rättad titel {n}"))
    for _ in range(rnd.randrange(0, 3)):
        events.append(assigned(idea, at(rnd.uniform(0, 8)), rnd.choice([ERIK_ID, "dag.officer", None])))
    for _ in range(rnd.randrange(0, 25)):
        time = at(rnd.uniform(-0.5, 8))
        kind = rnd.choice(["support", "support", "follow", "comment", "comment"])
        if rnd.random() < 0.2:
            events.append(notified(idea, time, rnd.choice(["delivered", "failed", "skipped"])))
        elif kind == "comment" and rnd.random() < 0.5:
            flavour = rnd.choice([{"anonymous": True}, {"official": "tekniska-verken"}])
            events.append(comment(idea, time, rnd.choice(PEOPLE), "Svar", **flavour))
        else:
            events.append(engage(idea, time, kind, rnd.choice(PEOPLE), text="Bra" if kind == "comment" else None))
    return events


def expected(idea: str, events: list) -> IdeaSummary:
    dumped = [e.model_dump(mode="json") for e in events]
    return summarise(idea, [timeline_entry(e, sealed_keys(e)) for e in dumped])  # every key live


async def deliver(store: FakeProjectionStore, rnd: random.Random, events: list) -> None:
    """The events in a random order, in random small batches, some delivered twice, batches of different topics
    running at the same time (as analytics' subscribers of different topics do)."""
    arrivals = events + rnd.sample(events, k=len(events) // 4)
    rnd.shuffle(arrivals)
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    batches, start = [], 0
    while start < len(arrivals):
        size = rnd.randint(1, 4)
        batches.append(arrivals[start : start + size])
        start += size
    for wave in range(0, len(batches), 3):  # three batches at a time, interleaving at every await
        await asyncio.gather(*(handlers.record("ideas.any.v1", batch) for batch in batches[wave : wave + 3]))


async def test_for_random_histories_the_incremental_projection_is_the_full_fold():
    for seed in range(150):
        rnd = random.Random(seed)
        store = FakeProjectionStore()
        idea = new_id()
        events = random_history(rnd, idea)
        await deliver(store, rnd, events)
        [found] = await store.summaries([idea])
        want = expected(idea, events)
        assert found == want, f"seed {seed}"
        assert {key for key, members in store.indexes.items() if idea in members} == want.index_keys(), seed


async def test_arrival_order_does_not_change_the_summary():
    rnd = random.Random(7)
    idea = new_id()
    events = [*random_history(rnd, idea), engage(idea, at(-1), "support", "early@kiruna.se")]
    outcomes = set()
    for seed in range(20):
        store = FakeProjectionStore()
        await deliver(store, random.Random(seed), events)
        [found] = await store.summaries([idea])
        outcomes.add(json.dumps(found.to_json(), sort_keys=True))
    assert outcomes == {json.dumps(expected(idea, events).to_json(), sort_keys=True)}


async def test_support_spam_on_one_idea_costs_constant_work_per_event():
    """3,000 support, follow and comment events and notifications on one idea: the refolds (the work that grows
    with an idea's history) read only the idea's few lifecycle events, so each engagement event costs O(1).
    Before: every event refolded every earlier one, about 4.5 million entries read for these 3,000."""
    store = FakeProjectionStore()
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    idea = new_id()
    lifecycle = [submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken/energi")]
    for one in lifecycle:
        await handlers.record("ideas.submitted.v2", [one])
    spam = []
    for n in range(3000):
        kind = ("support", "support", "follow", "comment")[n % 4]
        spam.append(
            engage(idea, at(1, n / 1000), kind, f"p{n % 1500}@kiruna.se", text="x" if kind == "comment" else None)
        )
    spam += [notified(idea, at(2), "delivered") for _ in range(50)]
    before = store.refolded
    for one in spam:
        await handlers.record("ideas.engagement.v2", [one])
    assert store.refolded == before  # not one refold: every one of them absorbed
    acknowledged = status(idea, at(3), "acknowledged")
    await handlers.record("ideas.status-changed.v1", [acknowledged])
    assert store.refolded - before == len(lifecycle) + len(spam) + 1  # a status change refolds, once
    [found] = await store.summaries([idea])
    assert found == expected(idea, [*lifecycle, *spam, acknowledged])
    assert (found.supporters, found.followers, found.comments, found.notifications) == (
        750,
        375,
        750,
        {"delivered": 50},
    )


async def test_engagement_before_the_submission_is_refolded_and_then_absorbed():
    store = FakeProjectionStore()
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    idea = new_id()
    early = engage(idea, at(-1), "support", "early@kiruna.se")
    await handlers.record("e", [early])  # no submission yet: the earliest event is the idea's creation for now
    [found] = await store.summaries([idea])
    assert found == expected(idea, [early]) and (found.submitted, found.supporters) == (False, 1)
    events = [early, submitted(idea, at(0)), engage(idea, at(1), "support", "early@kiruna.se")]
    for one in events[1:]:
        await handlers.record("e", [one])
    [found] = await store.summaries([idea])
    assert (
        found == expected(idea, events)
        and found.supporters == 1
        and found.created_at != expected(idea, [early]).created_at
    )


async def test_a_projection_made_before_the_sets_of_people_is_refolded_once_then_absorbed():
    """A summary whose supporters are not in the set beside it (written by older code): the next engagement
    refolds the idea (filling the set) instead of counting from an empty set."""
    store = FakeProjectionStore()
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    idea = new_id()
    events = [submitted(idea, at(0)), engage(idea, at(1), "support", "a@kiruna.se")]
    await handlers.record("e", events)
    store.people.clear()  # as a projection from before the sets
    more = engage(idea, at(2), "support", "b@kiruna.se")
    await handlers.record("e", [more])
    [found] = await store.summaries([idea])
    assert found.supporters == 2 and found == expected(idea, [*events, more])
    refolded = store.refolded
    last = engage(idea, at(3), "support", "c@kiruna.se")
    await handlers.record("e", [last])
    assert store.refolded == refolded and (await store.summaries([idea]))[0].supporters == 3


# --- the figures' cache ----------------------------------------------------------------------------------------


class CountingStore(FakeProjectionStore):
    """The fake store, counting how often every summary is loaded (a figure's O(ideas) work)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def summaries(self, idea_ids=None, **narrow):
        if idea_ids is None:
            self.loads += 1
        return await super().summaries(idea_ids, **narrow)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def cached_model(max_age_s=10.0, max_scopes=4):
    store, clock = CountingStore(), Clock()
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    cache = FigureCache(max_age_s=max_age_s, max_scopes=max_scopes, monotonic=clock)
    read = ReadModel(store, CATALOGUE, TZ, clock=lambda: at(30), figures_cache=cache, keyring=KEYRING)
    idea = new_id()
    await handlers.record("e", [submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken/energi")])
    return store, clock, handlers, read, idea


async def test_a_figure_is_served_again_while_nothing_changed_and_for_at_most_the_cache_time():
    store, clock, handlers, read, idea = await cached_model()
    everything = check_scope(CATALOGUE)
    first = await read.figure("overview", everything)
    assert await read.figure("overview", everything) == first and store.loads == 1
    first["added by a caller"] = True  # callers get their own copy
    assert "added by a caller" not in await read.figure("overview", everything)

    await handlers.record("e", [engage(idea, at(1), "support", "per@kiruna.se")])  # the projection changed
    changed = await read.figure("overview", everything)
    assert store.loads == 2 and changed["engagement"] != first["engagement"]

    clock.now += 9.9
    await read.figure("overview", everything)
    assert store.loads == 2
    clock.now += 0.2  # older than ANALYTICS_FIGURES_CACHE_S: computed again (what is overdue moves with time)
    await read.figure("overview", everything)
    assert store.loads == 3

    await store.wipe()
    assert (await read.figure("overview", everything))["ideas"] == 0


async def test_the_cache_holds_a_bounded_number_of_scopes_and_shares_one_computation():
    store, _, _, read, _ = await cached_model(max_scopes=2)
    scopes = [check_scope(CATALOGUE, organisation=o) for o in ("tekniska-verken", "kirunabostader", "kiruna-kommun")]
    for scope in scopes:
        await read.figure("funnel", scope)
    assert len(read.figures_cache) == 2 and store.loads == 3
    await read.figure("funnel", scopes[2])
    assert store.loads == 3  # the most recent scopes stayed
    await read.figure("funnel", scopes[0])
    assert store.loads == 4  # the oldest one had left

    answers = await asyncio.gather(*(read.figure("time-in-state", scopes[1]) for _ in range(10)))
    assert store.loads == 5 and all(a == answers[0] for a in answers)  # ten at once: computed once

    read.catalogue = CATALOGUE  # a reloaded catalogue: nothing cached survives it
    await read.figure("time-in-state", scopes[1])
    assert store.loads == 6


async def test_without_a_cache_every_request_computes():
    store = CountingStore()
    read = ReadModel(store, CATALOGUE, TZ, clock=lambda: at(30), keyring=KEYRING)
    for _ in range(3):
        await read.figure("overview", check_scope(CATALOGUE))
    assert store.loads == 3

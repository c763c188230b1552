"""The in-memory fake of analytics' projection store (tests/fakes/analytics.py) answers as the Redis store does:
the same events through the same handlers, the same answers from both (an erasure included; issue 18's
assignments, challenges, merges carried over and the change log too), and both the full fold of each idea's
events however they arrive; support spam is absorbed without reading the idea's history; a projection made before
the change log is loaded by the replicas' indexes all the same. Needs Redis."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import pytest
from redis.asyncio import Redis

from services.analytics import store as store_module
from services.analytics.domain import ANY, timeline_entry
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.mirror import IdeaMirror, NoSuggestions
from services.analytics.store import ProjectionStore
from shared.metrics import ServiceMetrics
from tests.conftest import REDIS_URL
from tests.fakes.analytics import FakeProjectionStore
from tests.unit.test_analytics_challenges import answer as challenge_answer
from tests.unit.test_analytics_challenges import opened
from tests.unit.test_analytics_handlers import KEYRING, at, engage, new_id, notified, routed, status, submitted
from tests.unit.test_analytics_incremental import deliver, expected, random_history
from tests.unit.test_analytics_taking_part import ERIK_ID, assigned, edited

pytestmark = pytest.mark.kafka


async def answers(store) -> dict:
    """Run one story through the handlers into ``store`` and collect what the read side asks of it."""
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    a, b, c, d = ids = [new_id() for _ in range(4)]
    story = [
        submitted(a, at(0)),
        routed(a, at(0, 1), "innovationsplattformen"),
        submitted(b, at(1), email=None),
        routed(b, at(1, 1), "kirunabostader/forvaltning", areas=("boende",)),
        status(a, at(2), "acknowledged"),
        routed(a, at(3), "tekniska-verken/energi", "kirunabostader", by="sara"),
        engage(a, at(4), "support", "per@kiruna.se"),
        submitted(c, at(5)),
        status(b, at(6), "declined", reason="Nej"),
        submitted(d, at(7), email="kim@kiruna.se", name="Kim Kallio"),
        engage(a, at(8), "comment", "kim@kiruna.se", "Kims kommentar"),
        engage(a, at(9), "support", "kim@kiruna.se"),
    ]
    for event in story:
        await handlers.record("ideas.v1", [event])
    await handlers.record("ideas.v1", story[:2])  # redelivered
    name = {idea: f"idea-{n}" for n, idea in enumerate(ids)}
    found = {
        "all": await store.idea_ids(),
        "tekniska-verken": await store.idea_ids(organisation="tekniska-verken"),
        "triage": await store.idea_ids(organisation="innovationsplattformen"),
        "unit": await store.idea_ids(unit="kirunabostader/forvaltning"),
        "boende+declined": await store.idea_ids(area="boende", state="declined"),
        "acknowledged": await store.idea_ids(state="acknowledged"),
        "anna": await store.submitted_by(KEYRING.pseudonym("anna.svensson@kiruna.se")),
        "kim": await store.submitted_by(KEYRING.pseudonym("kim@kiruna.se")),
    }
    kim_before = await store.summaries([a, d])
    forgotten = await store.forget_person(KEYRING.pseudonym("kim@kiruna.se"))  # the erasure of Kim
    found["kim after"] = await store.submitted_by(KEYRING.pseudonym("kim@kiruna.se"))
    found["d after"] = await store.idea_ids(state="submitted")
    result = {key: [name[i] for i in value] for key, value in found.items()}
    result["forgotten"] = (forgotten, await store.forget_person(KEYRING.pseudonym("kim@kiruna.se")))
    kim_after = await store.summaries([a, d])
    result["counts kept"] = [(s.supporters, s.comments) for s in kim_before] == [
        (s.supporters, s.comments) for s in kim_after
    ]
    result["d erased"] = [s.submitter_status for s in kim_after]
    result["kim's keys left"] = [
        e for i in ids for e in await store.entries(i) if KEYRING.pseudonym("kim@kiruna.se") + "." in str(e)
    ]
    result["summaries"] = sorted(
        (name[s.idea_id], s.state, s.organisations, s.units, s.supporters) for s in await store.summaries()
    )
    result["entries"] = sorted(e["event_id"] for e in await store.entries(a)) == sorted(
        e.id for e in story if e.subject == a
    )
    result["counts"] = await store.counts()
    result["refresh unknown"] = await store.refresh(new_id())
    return result


async def test_the_fake_store_answers_as_the_redis_store(redis_prefix):
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        real = await answers(ProjectionStore(redis, redis_prefix))
    finally:
        await redis.aclose()
    fake = await answers(FakeProjectionStore())
    assert fake == real
    assert real["all"] == ["idea-3", "idea-2", "idea-1", "idea-0"] and real["anna"] == ["idea-2", "idea-0"]
    assert real["triage"] == [] and real["boende+declined"] == ["idea-1"]
    assert real["kim"] == ["idea-3"] and real["kim after"] == [] and real["d after"] == ["idea-3", "idea-2"]
    assert real["forgotten"] == (2, 0) and real["counts kept"] and real["d erased"] == ["employee", "former-employee"]
    assert real["kim's keys left"] == []


async def test_random_histories_give_the_full_fold_in_the_redis_store_as_in_the_fake(redis_prefix):
    """Random arrival orders, batches, duplicates and interleavings (tests/unit/test_analytics_incremental.py)
    through the Redis store's absorb and refold scripts: the full fold every time, the fake's answer too."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for seed in range(30):
            idea = new_id()
            events = random_history(random.Random(seed), idea)
            real = ProjectionStore(redis, f"{redis_prefix}:{seed}")
            fake = FakeProjectionStore()
            await deliver(real, random.Random(seed), events)
            await deliver(fake, random.Random(seed), events)
            want = expected(idea, events)
            assert await real.summaries([idea]) == [want] == await fake.summaries([idea]), f"seed {seed}"
            assert await real.idea_ids(state=want.state) == [idea]
    finally:
        await redis.aclose()


async def test_support_spam_is_absorbed_by_the_redis_store_without_reading_the_history(redis_prefix):
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    store = ProjectionStore(redis, redis_prefix)
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    idea = new_id()
    lifecycle = [submitted(idea, at(0)), routed(idea, at(0, 1), "tekniska-verken/energi")]
    try:
        for one in lifecycle:
            await handlers.record("s", [one])
        refolded = store.refolded
        spam = [engage(idea, at(1, n / 100), "support", f"p{n % 700}@kiruna.se") for n in range(1500)]
        spam += [engage(idea, at(2), "comment", "q@kiruna.se", text="x"), notified(idea, at(2), "failed")]
        for n in range(0, len(spam), 3):  # batches of three, as a batch subscriber gives them
            await handlers.record("e", spam[n : n + 3])
        assert store.refolded == refolded  # every one absorbed: not one read of the idea's events
        [found] = await store.summaries([idea])
        assert found == expected(idea, [*lifecycle, *spam])
        assert (found.supporters, found.comments, found.notifications) == (700, 1, {"failed": 1})

        # a projection made before the sets of people: the next engagement refolds once, then absorbs again
        await redis.delete(store._people(idea, "supporters"))
        late = engage(idea, at(3), "support", "new@kiruna.se")
        await handlers.record("e", [late])
        assert store.refolded > refolded and (await store.summaries([idea]))[0].supporters == 701
        refolded = store.refolded
        await handlers.record("e", [engage(idea, at(4), "support", "newer@kiruna.se")])
        assert store.refolded == refolded and (await store.summaries([idea]))[0].supporters == 702
    finally:
        await redis.aclose()


async def issue_18_answers(store) -> dict:
    """Issue 18's events through the same handlers into ``store``: what the read side asks of it (assignment and
    challenge indexes, the sets a merge carries over, the challenges, the change log the replicas read)."""
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    a, b, c = ids = [new_id() for _ in range(3)]
    challenge = str(uuid.uuid4())
    story = [
        challenge_answer(a, challenge, at(0), "anna.svensson@kiruna.se"),
        routed(a, at(0, 1), "tekniska-verken/energi"),
        submitted(b, at(1)),
        routed(b, at(1, 1), "tekniska-verken/energi"),
        submitted(c, at(2)),
        routed(c, at(2, 1), "kirunabostader"),
        assigned(a, at(3), ERIK_ID),
        assigned(c, at(3), "dag", organisation="kirunabostader"),
        engage(b, at(4), "support", "per@kiruna.se"),
        engage(b, at(4, 1), "follow", "kim@kiruna.se"),
        edited(b, at(4, 2), "Ny titel"),
        status(b, at(5), "merged", reason="samma", merged_into=a),
    ]
    for event in story:
        await handlers.record("ideas.v1", [event])
    await handlers.challenge_opened("challenges.v1", opened(challenge))
    name = {idea: f"idea-{n}" for n, idea in enumerate(ids)}
    found = {
        "challenge": await store.idea_ids(challenge=challenge),
        "erik's": await store.idea_ids(assignee=ERIK_ID),
        "unassigned tv": await store.idea_ids(organisation="tekniska-verken", unassigned="tekniska-verken"),
        "unassigned anywhere": await store.idea_ids(unassigned=ANY),
    }
    result = {key: [name[i] for i in value] for key, value in found.items()}
    result["challenge sizes"] = await store.index_sizes("challenge", [challenge, str(uuid.uuid4())])
    result["challenge sizes"] = sorted(result["challenge sizes"].values())
    result["a's people"] = [len(people) for people in await store.people_of(a)]  # carried over from b
    result["challenges"] = [c["question"] for c in await store.challenges()]
    changes = await store.changes_since(0)
    result["changed"] = sorted(name[i] for i in changes.idea_ids)
    result["nothing since"] = (await store.changes_since(changes.version)).idea_ids
    texts = await store.summary_texts([b, new_id()])
    result["texts"] = [json.loads(t)["title"] for t in texts]
    result["last of b"] = (await store.summary(b)).last["to_state"]
    return result


async def test_the_fake_store_answers_issue_18_as_the_redis_store(redis_prefix):
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        real = await issue_18_answers(ProjectionStore(redis, redis_prefix))
    finally:
        await redis.aclose()
    fake = await issue_18_answers(FakeProjectionStore())
    assert fake == real
    assert real["challenge"] == ["idea-0"] and real["erik's"] == ["idea-0"]
    assert real["unassigned tv"] == ["idea-1"] and real["unassigned anywhere"] == ["idea-1"]
    assert real["challenge sizes"] == [0, 1] and real["a's people"] == [1, 1]
    assert real["changed"] == ["idea-0", "idea-1", "idea-2"] and real["nothing since"] == []
    assert real["texts"] == ["Ny titel"] and real["last of b"] == "merged"


async def test_ideas_projected_before_the_change_log_are_loaded_by_the_replicas_too(redis_prefix):
    """A projection made by older code has no ``changes`` entries: the first catching up from nothing notes every
    idea once, so search, similar ideas and every idea's list know them without a rebuild."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    store = ProjectionStore(redis, redis_prefix)
    handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
    old, new = new_id(), new_id()
    try:
        await handlers.record("s", [submitted(old, at(0), title="Snöröjningen vid skolan")])
        await redis.delete(store._key("changes"))  # as older code left it
        await handlers.record("s", [submitted(new, at(1), title="Snöröjning vid torget")])
        mirror = IdeaMirror(store, NoSuggestions())
        assert await mirror.search("snöröjning") == {old, new}
        version = (await store.changes_since(0)).version
        assert await redis.zcard(store._key("changes")) == 2
        assert (await store.changes_since(version)).idea_ids == []  # noted once: nothing new after it
    finally:
        await redis.aclose()


async def test_whole_batches_of_many_ideas_give_what_one_event_at_a_time_gives(redis_prefix):
    """The batch subscriber's path (``AnalyticsHandlers.record_batch``: every idea of a batch read in one round
    trip, written in another): batches mixing ideas, two events of one idea in one batch, an idea's engagement
    before its submission (read again for a refold), redelivered events and a merge carried over end where the
    same events one at a time end in the fake store; the redelivered ones are counted as skipped."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        real = ProjectionStore(redis, redis_prefix)
        fake = FakeProjectionStore()
        metrics = ServiceMetrics.create("analytics")
        batched = AnalyticsHandlers(real, metrics, KEYRING)
        one_by_one = AnalyticsHandlers(fake, ServiceMetrics.create("analytics"), KEYRING)
        a, b, c = ids = [new_id() for _ in range(3)]
        first_a, support_b = submitted(a, at(0)), engage(b, at(1, 1), "support", "per@kiruna.se")
        batches = [
            [first_a, support_b, routed(a, at(0, 1), "kirunabostader")],  # b's support before its submission
            [submitted(b, at(1)), engage(a, at(2), "comment", "kim@kiruna.se", "Bra"), notified(a, at(2, 1))],
            [first_a, submitted(c, at(3)), support_b],  # two redelivered
            [engage(b, at(4), "follow", "kim@kiruna.se"), status(b, at(5), "merged", reason="samma", merged_into=c)],
            [routed(c, at(3, 1), "tekniska-verken/energi"), engage(a, at(6), "support", "per@kiruna.se")],
        ]
        for batch in batches:
            await batched.record_batch("ideas.v1", batch)
            for event in batch:
                await one_by_one.record("ideas.v1", [event])
        skipped = metrics.registry.get_sample_value(
            "kiruna_idempotent_skips_total", {"service": "analytics", "topic": "ideas.v1"}
        )
        assert skipped == 2
        assert await real.summaries(ids) == await fake.summaries(ids)
        for idea in ids:
            assert sorted(await real.entries(idea), key=str) == sorted(await fake.entries(idea), key=str)
            summary = await real.summary(idea)
            assert summary is not None
            assert set(await real.idea_ids(state=summary.state)) >= {idea}
        assert (
            await real.people_of(c)
            == await fake.people_of(c)
            == ({KEYRING.pseudonym("per@kiruna.se")}, {KEYRING.pseudonym("kim@kiruna.se")})
        )
        assert await real.submitted_by(KEYRING.pseudonym("anna.svensson@kiruna.se")) == [c, b, a]
        # the erasure finds every idea that holds a sealed value of the person, recorded in batches
        assert await real.forget_person(KEYRING.pseudonym("kim@kiruna.se")) == 1
    finally:
        await redis.aclose()


async def test_random_histories_of_several_ideas_in_whole_batches_give_the_full_fold(redis_prefix):
    """Random arrival orders, duplicates and batches mixing several ideas' events, two batches at a time through
    ``record_ideas``: every idea ends in the full fold of its events, in its indexes."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for seed in range(12):
            rnd = random.Random(seed)
            store = ProjectionStore(redis, f"{redis_prefix}:{seed}")
            handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
            histories = {idea: random_history(rnd, idea) for idea in (new_id() for _ in range(4))}
            arrivals = [event for events in histories.values() for event in events]
            arrivals += rnd.sample(arrivals, k=len(arrivals) // 4)
            rnd.shuffle(arrivals)
            batches, start = [], 0
            while start < len(arrivals):
                size = rnd.randint(1, 9)
                batches.append(arrivals[start : start + size])
                start += size
            for wave in range(0, len(batches), 2):
                await asyncio.gather(*(handlers.record_batch("ideas.any.v1", b) for b in batches[wave : wave + 2]))
            for idea, events in histories.items():
                want = expected(idea, events)
                assert await store.summaries([idea]) == [want], f"seed {seed}"
                assert idea in await store.idea_ids(state=want.state), f"seed {seed}"
    finally:
        await redis.aclose()


async def test_scripts_that_redis_does_not_know_are_loaded_and_the_batch_goes_through(redis_prefix):
    """After a restart Redis knows no script: the store loads its scripts and sends the batch again."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        store = ProjectionStore(redis, redis_prefix)
        marker = f"\n-- {uuid.uuid4()}"  # scripts of their own, which no one loaded yet
        store._read_sha = store._script(store_module._READ + marker)
        store._write_sha = store._script(store_module._WRITE + marker)
        assert await redis.script_exists(store._read_sha, store._write_sha) == [False, False]
        idea, other = new_id(), new_id()
        added = await store.record_ideas(
            {idea: [_entry(submitted(idea, at(0)))], other: [_entry(submitted(other, at(1)))]}
        )
        assert added == {idea: 1, other: 1}
        assert await redis.script_exists(store._read_sha, store._write_sha) == [True, True]
        assert [s.idea_id for s in await store.summaries([idea, other])] == [idea, other]
    finally:
        await redis.aclose()


def _entry(event) -> dict:
    return timeline_entry(event.model_dump(mode="json"), set())


def test_the_summary_document_is_the_json_of_its_fields_sorted():
    for seed in range(20):
        idea = new_id()
        summary = expected(idea, random_history(random.Random(seed), idea))
        assert summary.to_document() == json.dumps(summary.to_json(), sort_keys=True)


async def test_any_text_reaches_redis_through_the_scripts_as_it_was(redis_prefix):
    """The scripts take each idea's arguments as one JSON text: quotes, backslashes, line breaks, Swedish letters
    and emoji in a title, an officer's id and an index arrive unchanged (the stored entry is ``json.dumps`` of it)."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        store = ProjectionStore(redis, redis_prefix)
        handlers = AnalyticsHandlers(store, ServiceMetrics.create("analytics"), KEYRING)
        idea, officer = new_id(), 'åsa "😀" \\ \n\t'
        title = 'Snö"röjning" på\ngången \\ 😀 \u2028 \x7f'
        events = [submitted(idea, at(0), title=title), assigned(idea, at(1), officer)]
        await handlers.record_batch("ideas.v1", events)
        [found] = await store.summaries([idea])
        assert found == expected(idea, events) and found.title == title
        assert await store.idea_ids(assignee=officer) == [idea]
        stored = await redis.hget(store._events(idea), events[0].id)
        assert stored == json.dumps(json.loads(stored)) and json.loads(stored)["data"]["title"] == title
    finally:
        await redis.aclose()

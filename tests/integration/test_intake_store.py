"""Intake's store on the real Redis: a submission is recorded in one round trip (state, text, submitter, challenge
and the person's index together), by whichever sees it first, the request or the follower, and again changes
nothing; a later edit's text stays."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from services.intake.store import ANONYMOUS, IntakeStore
from shared.events import IdeaState
from shared.redis_pipelining import AutoPipelineRedis
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.asyncio(loop_scope="function")

AT = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-02T00:00:00.000000Z"
CHALLENGE = "7d3c1f0e-5b2a-4e8f-9c6d-2a1b0e9f8d7c"
PERSON = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def redis():
    client = AutoPipelineRedis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def store(redis: Redis, redis_prefix: str) -> IntakeStore:
    return IntakeStore(redis, redis_prefix)


async def test_a_named_submission_is_recorded_whole_once_and_a_replay_changes_nothing(store, redis):
    idea = str(uuid.uuid4())
    await store.record_submitted(
        idea, AT, title="Värme i busskuren", description="Beskrivning.", submitter=PERSON, challenge_id=CHALLENGE
    )
    record = await store.idea(idea)
    assert record is not None and record.state is IdeaState.SUBMITTED
    assert (record.title, record.description, record.submitter, record.challenge_id) == (
        "Värme i busskuren",
        "Beskrivning.",
        PERSON,
        CHALLENGE,
    )
    assert await redis.smembers(store._key("submitted-by", PERSON)) == {idea}
    assert await redis.hget(store._key("idea", idea), "state_time") == AT
    seq, changed = await store.changed_texts(0)
    assert changed == [idea]

    await store.move(idea, IdeaState.SUBMITTED, IdeaState.ACKNOWLEDGED, LATER)
    assert await store.record_text(idea, "Ny rubrik", "Rättad.", LATER)  # the submitter's edit
    seq, _ = await store.changed_texts(0)
    # the follower (or a retry) records the same submission again: neither state nor the newer text goes back
    await store.record_submitted(
        idea, AT, title="Värme i busskuren", description="Beskrivning.", submitter=PERSON, challenge_id=CHALLENGE
    )
    again = await store.idea(idea)
    assert again is not None and again.state is IdeaState.ACKNOWLEDGED
    assert (again.title, again.description) == ("Ny rubrik", "Rättad.")
    assert (await store.changed_texts(0))[0] == seq  # nothing changed, so nothing to re-index


async def test_an_anonymous_submission_links_nobody_and_a_bare_one_records_the_state_only(store, redis):
    anonymous, bare = str(uuid.uuid4()), str(uuid.uuid4())
    await store.record_submitted(anonymous, AT, title="Fler bänkar", description="", submitter=None)
    record = await store.idea(anonymous)
    assert record is not None and record.submitter == ANONYMOUS and record.challenge_id is None
    assert await redis.hget(store._key("idea", anonymous), "challenge") is None
    assert [k async for k in redis.scan_iter(match=store._key("submitted-by", "*"))] == []

    await store.record_submitted(bare, AT)  # no text: the state alone (the rebuild's stale records)
    assert await redis.hgetall(store._key("idea", bare)) == {"state": "submitted", "state_time": AT}

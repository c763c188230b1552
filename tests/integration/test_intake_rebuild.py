"""``python -m services.intake.rebuild`` on the real Kafka and Redis: intake's idea records (state, owners,
supporters; and issue 18's text, submitter, challenge, assignees, merged supports) and the challenges come back from
the topics it follows, stale ones go, and what no topic holds stays; the people's keys come back from
people.keys.v1, and an erased person stays erased."""

from __future__ import annotations

import io
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.intake.rebuild import rebuild
from services.intake.settings import IntakeSettings
from services.intake.similar import SimilarIdeas
from services.intake.store import IntakeStore
from shared.events import (
    ChallengeAudience,
    ChallengeOpened,
    EngagementKind,
    Envelope,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    PersonErasureRequested,
    RoutingTarget,
)
from shared.keyring import Keyring
from tests.fakes.intake import FakeSimilarityIndex
from tests.support.kafka import raw_producer

pytestmark = pytest.mark.kafka


def wrap(data) -> Envelope:
    return Envelope.wrap(data, source="/tests")


def submitted(idea_id: str) -> Envelope:
    return wrap(IdeaSubmitted(idea_id=idea_id, title="Värme i busskuren", description="Beskrivning.", language="sv"))


def routed(idea_id: str, organisation: str) -> Envelope:
    return wrap(IdeaRouted(idea_id=idea_id, organisations=(RoutingTarget(organisation=organisation),), reason="test"))


def acknowledge(idea_id: str) -> Envelope:
    return wrap(IdeaStatusChanged(idea_id=idea_id, to_state=IdeaState.ACKNOWLEDGED, changed_by="erik.lindberg"))


async def test_rebuild_brings_back_each_ideas_state_owners_and_supporters(service_settings, topics, kafka_settings):
    settings: IntakeSettings = service_settings(IntakeSettings)
    acknowledged, fresh, stale = (str(uuid.uuid4()) for _ in range(3))
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    store = IntakeStore(redis, settings.redis_prefix)
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)
    try:
        lisa, _ = await keyring.person_ref("lisa@kiruna.se", "Lisa Kurak")
        bo, bo_key = await keyring.person_ref("bo@kiruna.se", "Bo Ek")
        erik, _ = await keyring.person_ref("erik@kiruna.se", "Erik Lindberg")
        engagement = (
            IdeaEngagement(idea_id=fresh, kind=EngagementKind.SUPPORT, person=lisa),
            IdeaEngagement(idea_id=fresh, kind=EngagementKind.COMMENT, person=bo, text=bo_key.seal("Ja")),
            IdeaEngagement(idea_id=fresh, kind=EngagementKind.SUPPORT, person=erik),  # erased below
        )
        events = [
            (topics.submitted, submitted(acknowledged)),
            (topics.routed, routed(acknowledged, "tekniskaverken")),
            (topics.status_changed, acknowledge(acknowledged)),
            (topics.routed, routed(acknowledged, "kirunabostader")),  # re-routed: the later routing owns it
            (topics.submitted, submitted(fresh)),
            *((topics.engagement, wrap(event)) for event in engagement),
        ]
        async with raw_producer(kafka_settings) as producer:
            for topic, event in events:
                await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode())
            await producer.send_and_wait(topics.routed, b"{not json", key=fresh.encode())
            # Erik is erased: his key tombstoned (as intake's subscriber does), the request in the log
            await keyring.erase(erik.pseudonym)
            request = wrap(PersonErasureRequested(pseudonym=erik.pseudonym, requested_by="person"))
            await producer.send_and_wait(topics.people_erasures, request.to_bytes(), key=erik.pseudonym.encode())

        await store.record_submitted(stale, "2026-01-01T00:00:00.000000Z")  # no topic knows this idea
        await store.reserve("kept-key", "fingerprint", ttl_s=600)
        await store.reserve("eriks-key", "fingerprint", ttl_s=600, answer={"idea_id": fresh}, person=erik.pseudonym)
        await store.add_support(fresh, erik.pseudonym)  # a marker the erasure did not reach
        await redis.delete(f"{settings.redis_prefix}:people:key:{lisa.pseudonym}")  # Redis lost Lisa's key

        progress = io.StringIO()
        result = await rebuild(settings, stream=progress)

        assert "rebuilding intake's ideas" in progress.getvalue()
        assert result.events == {topics.submitted: 2, topics.routed: 2, topics.status_changed: 1, topics.engagement: 3}
        assert sum(result.malformed.values()) == 1 and result.ideas == 2 and result.forgotten_keys >= 1
        assert (result.keys_restored, result.erasures, result.erased_supports) == (2, 1, 1)
        assert "2 live" in result.describe() and "1 supports of erased people not marked" in result.describe()
        first = await store.idea(acknowledged)
        assert first is not None and first.state is IdeaState.ACKNOWLEDGED
        assert first.organisations == {"kirunabostader"}
        second = await store.idea(fresh)
        assert second is not None and second.state is IdeaState.SUBMITTED and not second.organisations
        keyring.forget_cached(lisa.pseudonym)
        assert await keyring.key(lisa.sealed.key) is not None  # her key came back from people.keys.v1
        assert await store.add_support(fresh, lisa.pseudonym) is False  # her support came back
        assert await store.add_support(fresh, bo.pseudonym) is True  # a comment is no support
        assert await store.add_support(fresh, erik.pseudonym) is True  # the erased person's support marks no one
        assert await keyring.current(erik.pseudonym) is None
        assert await store.idea(stale) is None
        records = [key async for key in redis.scan_iter(match=f"{store.prefix}:idempotency:*")]
        assert len(records) == 1  # no topic holds the kept key; the erased person's is forgotten
    finally:
        await keyring.close()
        await redis.aclose()


async def test_without_kafka_the_rebuild_forgets_nothing(service_settings, kafka_settings):
    settings: IntakeSettings = service_settings(IntakeSettings)
    unreachable = settings.model_copy(
        update={"kafka": kafka_settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})}
    )
    idea = str(uuid.uuid4())
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    store = IntakeStore(redis, settings.redis_prefix)
    try:
        await store.record_submitted(idea, "2026-01-01T00:00:00.000000Z")
        with pytest.raises(Exception, match="Unable to bootstrap"):
            await rebuild(unreachable, progress=False)
        assert await store.idea(idea) is not None
    finally:
        await redis.aclose()


async def test_rebuild_brings_back_texts_submitters_challenges_assignees_and_merged_supports(
    service_settings, topics, kafka_settings
):
    """Issue 18's events: an idea's text (its last edit), its submitter (for their edits and withdrawal), the
    challenge it answers, who has it per organisation, the challenges, and the supports a merge carried over."""
    settings: IntakeSettings = service_settings(IntakeSettings)
    idea, duplicate, challenge_id = (str(uuid.uuid4()) for _ in range(3))
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    store = IntakeStore(redis, settings.redis_prefix)
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)
    now = datetime.now(UTC)
    try:
        lisa, _ = await keyring.person_ref("lisa@kiruna.se", "Lisa Kurak")
        bo, _ = await keyring.person_ref("bo@kiruna.se", "Bo Ek")
        challenge = ChallengeOpened(
            challenge_id=challenge_id,
            question="Hur minskar vi energianvändningen i våra lokaler?",
            organisation="tekniska-verken",
            audience=(ChallengeAudience(organisation="tekniska-verken"),),
            opens_at=now,
            closes_at=now + timedelta(days=30),
            opened_by="erik.lindberg",
        )
        events = [
            (topics.challenges, wrap(challenge)),
            (
                topics.submitted,
                wrap(
                    IdeaSubmitted(
                        idea_id=idea,
                        title="Värme i busskuren",
                        description="Text",
                        submitter=lisa,
                        challenge_id=challenge_id,
                    )
                ),
            ),
            (topics.submitted, submitted(duplicate)),
            (topics.routed, routed(idea, "tekniska-verken")),
            (
                topics.edited,
                wrap(IdeaEdited(idea_id=idea, title="Värme i busskurerna", description="Ny", edited_by="x")),
            ),
            (
                topics.assignments,
                wrap(
                    IdeaAssigned(idea_id=idea, organisation="tekniska-verken", assignee="karin.heikki", assigned_by="e")
                ),
            ),
            (
                topics.assignments,
                wrap(
                    IdeaAssigned(
                        idea_id=idea, organisation="tekniska-verken", assignee="erik.lindberg", assigned_by="e"
                    )
                ),
            ),
            # the merge is read before the support it carries over (the topics' order is not the events' order)
            (
                topics.status_changed,
                wrap(
                    IdeaStatusChanged(
                        idea_id=duplicate, to_state=IdeaState.MERGED, merged_into=idea, reason="Samma", changed_by="e"
                    )
                ),
            ),
            (topics.engagement, wrap(IdeaEngagement(idea_id=duplicate, kind=EngagementKind.SUPPORT, person=bo))),
        ]
        async with raw_producer(kafka_settings) as producer:
            for topic, event in events:
                await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode())

        result = await rebuild(settings, progress=False)

        assert result.events[topics.challenges] == 1 and result.events[topics.edited] == 1
        assert result.events[topics.assignments] == 2
        record = await store.idea(idea)
        assert (record.title, record.description, record.state) == ("Värme i busskurerna", "Ny", IdeaState.ROUTED)
        assert record.submitter == lisa.pseudonym and record.challenge_id == challenge_id
        assert record.assignees == {"tekniska-verken": "erik.lindberg"}
        assert await store.challenge(challenge_id) == challenge
        assert await store.add_support(idea, bo.pseudonym) is False  # Bo's support of the duplicate carried over
        assert (await store.idea(duplicate)).merged_into == idea

        index = FakeSimilarityIndex()
        await SimilarIdeas(store, index=index, logger=logging.getLogger("test")).catch_up()  # a replica after it
        assert index.ideas == {idea: ("Värme i busskurerna", "Ny")}  # the merged one is not pointed to
    finally:
        await keyring.close()
        await redis.aclose()

"""``python -m shared.migration`` on a .v1 history written as the code before issue 13 wrote it: every event moves
to its .v2 topic sealed, under the same id and on the same partition; a re-run copies nothing twice; the .v1
topics are deleted only when asked, and only once all is copied."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from redis.asyncio import Redis

from shared.events import Envelope
from shared.events_v1 import (
    V1_TYPES,
    IdeaEngagementV1,
    IdeaSubmittedV1,
    NotificationSentV1,
    PreferencesChangedV1,
    Submitter,
)
from shared.kafka import client_options
from shared.keyring import Keyring
from shared.migration import HISTORY_BEGINS, migrate
from shared.replay import read_topics
from shared.settings import ServiceSettings
from shared.topics import FOREVER, TopicSpec, ensure_topics
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.asyncio(loop_scope="function")

ANNA, PER = "anna.svensson@kiruna.se", "per.niemi@kiruna.se"
PERSONAL = (b"anna", b"svensson", b"per.niemi", b"Niemi", "Snöröjningen borde".encode(), b"kiruna.se")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def v1(payload, subject: str, n: int) -> Envelope:
    return Envelope[type(payload)](
        id=f"00000000-0000-4000-8000-{n:012d}",
        source="/services/intake",
        type=V1_TYPES[type(payload)],
        time=T0 + timedelta(minutes=n),
        subject=subject,
        data=payload,
    )


def history() -> dict[str, list[Envelope]]:
    ideas = [f"1dea0000-0000-4000-8000-00000000000{i}" for i in range(3)]
    return {
        "ideas.submitted.v1": [
            v1(
                IdeaSubmittedV1(
                    idea_id=ideas[0],
                    title="Snöröjning av gångbanor",
                    description="Gångbanorna vid skolan plogas sent.",
                    submitter=Submitter(name="Anna Svensson", email=ANNA, organisation="kiruna-kommun"),
                ),
                ideas[0],
                1,
            ),
            v1(
                IdeaSubmittedV1(
                    idea_id=ideas[1],
                    title="Fjärrvärme i garaget",
                    description="...",
                    submitter=Submitter(name="Per Niemi", email=PER, organisation="tekniska-verken", unit="energi"),
                ),
                ideas[1],
                2,
            ),
            v1(IdeaSubmittedV1(idea_id=ideas[2], title="Anonym idé", description="...", anonymous=True), ideas[2], 3),
        ],
        "ideas.engagement.v1": [
            v1(
                IdeaEngagementV1(idea_id=ideas[0], kind="comment", person=PER, text="Snöröjningen borde börja 05"),
                ideas[0],
                4,
            ),
            v1(IdeaEngagementV1(idea_id=ideas[0], kind="support", person=PER), ideas[0], 5),
            v1(IdeaEngagementV1(idea_id=ideas[1], kind="follow", person=ANNA), ideas[1], 6),
        ],
        "notifications.preferences.v1": [
            v1(PreferencesChangedV1(person=ANNA, frequency="daily", areas=("boende",)), ANNA, 7),
        ],
        "notifications.sent.v1": [
            v1(
                NotificationSentV1(
                    idea_id=ideas[0], cause_event_id="c1", recipient=ANNA, channel="email", outcome="delivered"
                ),
                ideas[0],
                8,
            ),
            v1(
                NotificationSentV1(
                    idea_id=ideas[0],
                    cause_event_id="c1",
                    recipient="tekniska-verken",
                    channel="webhook",
                    outcome="delivered",
                ),
                ideas[0],
                9,
            ),
        ],
    }


@pytest.fixture
def settings(kafka_settings, redis_prefix) -> ServiceSettings:
    return ServiceSettings(kafka=kafka_settings, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=redis_prefix)


async def write_v1(kafka_settings, events: dict[str, list[Envelope]]) -> None:
    prefix = kafka_settings.topic_prefix
    specs = [TopicSpec(prefix + name, 2, {"retention.ms": FOREVER}) for name in events]
    specs += [TopicSpec(prefix + name + ".dlq", 1, {"retention.ms": FOREVER}) for name in events]
    await ensure_topics(kafka_settings, specs, wait_s=30)
    producer = AIOKafkaProducer(**client_options(kafka_settings), acks="all")
    await producer.start()
    try:
        for name, envelopes in events.items():
            for envelope in envelopes:
                await producer.send_and_wait(prefix + name, envelope.to_bytes(), key=envelope.subject.encode())
            # a record that never parsed (dead-lettered when it came) is copied as it was, keeping the offsets
            await producer.send_and_wait(prefix + name, b"not json", key=b"x")
    finally:
        await producer.stop()


async def records(kafka_settings, topic: str) -> list:
    return [r async for r in read_topics(kafka_settings, [topic], progress=False)]


async def test_a_v1_history_moves_to_v2_sealed_and_the_v1_topics_go_when_asked(settings, kafka_settings, topics):
    events = history()
    await write_v1(kafka_settings, events)
    organisations = ("kiruna-kommun", "tekniska-verken", "kirunabostader", "innovationsplattformen")

    report = await migrate(settings, progress=False, organisation_ids=organisations)
    text = report.describe()
    print("\n" + text)
    assert [t.copied for t in report.topics] == [3, 3, 1, 2]
    assert [t.unreadable for t in report.topics] == [1, 1, 1, 1]
    assert report.keys_made == 2
    assert f"{topics.intake_raw} (retention.ms=604800000)" not in text or "intake.raw.v1" in text

    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)
    try:
        old = {n: {e.id: e for e in es} for n, es in events.items()}
        for v1_name, v2_topic in (
            ("ideas.submitted.v1", topics.submitted),
            ("ideas.engagement.v1", topics.engagement),
            ("notifications.preferences.v1", topics.preferences),
            ("notifications.sent.v1", topics.notifications_sent),
        ):
            copied = await records(kafka_settings, v2_topic)
            for record in copied:
                for word in PERSONAL:
                    assert word not in record.value, f"{word!r} in the clear on {v2_topic}: {record.value[:200]!r}"
            parsed = [json.loads(r.value) for r in copied if r.value != b"not json"]
            assert {p["id"] for p in parsed} == set(old[v1_name])
            assert all(p["type"].endswith(".v2") for p in parsed)
        submitted = {
            json.loads(r.value)["id"]: r
            for r in await records(kafka_settings, topics.submitted)
            if r.value != b"not json"
        }
        originals = {
            json.loads(r.value)["id"]: r
            for r in await records(kafka_settings, topics.submitted_v1)
            if r.value != b"not json"
        }
        assert {i: (r.partition, r.offset) for i, r in submitted.items()} == {
            i: (r.partition, r.offset) for i, r in originals.items()
        }  # same partition, same offset: consumer positions carry over

        anna_idea = json.loads(submitted[events["ideas.submitted.v1"][0].id].value)["data"]
        from shared.events import Sealed

        assert await keyring.open_json(Sealed(**anna_idea["submitter"]["sealed"])) == {
            "name": "Anna Svensson",
            "email": ANNA,
        }
        comment = next(
            json.loads(r.value)["data"]
            for r in await records(kafka_settings, topics.engagement)
            if b'"comment"' in r.value
        )
        assert await keyring.open(Sealed(**comment["text"])) == "Snöröjningen borde börja 05"
        # a key made by the move counts from the beginning: all of the .v1 history is the person's (their export)
        assert (await keyring.current(keyring.pseudonym(ANNA))).created == HISTORY_BEGINS
        prefs = [r for r in await records(kafka_settings, topics.preferences) if r.value != b"not json"]
        assert prefs[0].key.decode() == keyring.pseudonym(ANNA)  # keyed by the pseudonym now
        sent = [
            json.loads(r.value)["data"]["recipient"]
            for r in await records(kafka_settings, topics.notifications_sent)
            if r.value != b"not json"
        ]
        assert sent == [keyring.pseudonym(ANNA), "webhook:tekniska-verken"]
    finally:
        await keyring.close()
        await redis.aclose()

    # a service had read the .v1 topic (its group <service group>.<topic>): its .v2 group starts at the end
    old_group = AIOKafkaConsumer(**client_options(kafka_settings), group_id=f"svc.{topics.submitted_v1}")
    await old_group.start()
    try:
        v1_partition = TopicPartition(topics.submitted_v1, 0)
        old_group.assign([v1_partition])
        await old_group.commit({v1_partition: OffsetAndMetadata(1, "")})
    finally:
        await old_group.stop()
    again = await migrate(
        settings, progress=False, organisation_ids=organisations, delete_v1=True, groups_to_end=True, group_ids=("svc",)
    )
    assert again.groups_moved == [f"svc.{topics.submitted}"]
    new_group = AIOKafkaConsumer(**client_options(kafka_settings), group_id=f"svc.{topics.submitted}")
    await new_group.start()
    try:
        partitions = [TopicPartition(topics.submitted, p) for p in (0, 1)]
        new_group.assign(partitions)
        ends = await new_group.end_offsets(partitions)
        assert {tp: await new_group.committed(tp) for tp in partitions} == ends
    finally:
        await new_group.stop()
    assert [t.copied for t in again.topics] == [0, 0, 0, 0]
    assert [t.already_there for t in again.topics] == [3, 3, 1, 2]
    assert again.keys_made == 0
    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        left = {t for t in await admin.list_topics() if t.startswith(kafka_settings.topic_prefix)}
    finally:
        await admin.close()
    assert not {t for t in left if ".v1" in t and any(n in t for n in events)}, sorted(left)
    assert topics.submitted in left


async def test_mails_sent_before_the_move_are_not_sent_again_after_the_rebuild(
    service_settings, settings, kafka_settings, topics
):
    """A .v1 outcome's id was derived from the recipient's address; after the move the same notification's id
    derives from the pseudonym. The notifications rebuild must still see that Anna's mail about her idea's routing
    went out, and queue nothing of hers again."""
    from services.notifications.domain import notification_id
    from services.notifications.rebuild import rebuild
    from services.notifications.settings import NotificationsSettings
    from shared.events import IdeaRouted, RoutingTarget

    idea = "1dea0000-0000-4000-8000-0000000000aa"
    submitted = v1(
        IdeaSubmittedV1(
            idea_id=idea,
            title="Laddplatser vid stadshuset",
            description="...",
            submitter=Submitter(name="Anna Svensson", email=ANNA, organisation="kiruna-kommun"),
        ),
        idea,
        1,
    )
    routed = Envelope.wrap(
        IdeaRouted(
            idea_id=idea,
            title="Laddplatser",
            organisations=(RoutingTarget(organisation="kiruna-kommun"),),
            reason="test",
        ),
        source="/services/routing",
        time=T0 + timedelta(minutes=2),
    )
    told = [
        Envelope[NotificationSentV1](
            id=notification_id(routed.id, "routed", ANNA, channel),  # as the code before the move named it
            source="/services/notifications",
            type=V1_TYPES[NotificationSentV1],
            time=T0 + timedelta(minutes=3),
            subject=idea,
            data=NotificationSentV1(
                idea_id=idea, cause_event_id=routed.id, recipient=ANNA, channel=channel, outcome="delivered"
            ),
        )
        for channel in ("email", "in-app")
    ]
    await write_v1(kafka_settings, {"ideas.submitted.v1": [submitted], "notifications.sent.v1": told})
    producer = AIOKafkaProducer(**client_options(kafka_settings), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.routed, routed.to_bytes(), key=idea.encode())
    finally:
        await producer.stop()
    organisations = ("kiruna-kommun", "tekniska-verken", "kirunabostader", "innovationsplattformen")
    await migrate(settings, progress=False, organisation_ids=organisations)

    notifications = service_settings(NotificationsSettings)
    await rebuild(notifications, progress=False)

    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        anna = Keyring.from_settings(redis, settings, topics.people_keys).pseudonym(ANNA)
        queued = [
            json.loads(v)
            for v in (await redis.hgetall(f"{notifications.redis_prefix}:notifications:deliveries")).values()
        ]
        assert queued, "the officers' mails (no outcome on record) are queued again: the rebuild did replay"
        assert [d for d in queued if d["recipient"] == anna] == []

        # one left in the queue by an earlier rebuild that did not know better: the next rebuild drops it
        from services.notifications.delivery.model import Delivery
        from services.notifications.delivery.queue import DeliveryQueue

        leftover = Delivery(
            notification_id(routed.id, "routed", anna, "email"),
            "email",
            anna,
            idea,
            routed.id,
            "routed",
            message={"subject": "x", "text": "x", "html": "x"},
        )
        queue = DeliveryQueue(redis, notifications.redis_prefix)
        await redis.hset(queue.jobs, leftover.id, leftover.to_json())
        await redis.zadd(queue.due, {leftover.id: 0})
        await rebuild(notifications, progress=False)
        assert not await redis.hexists(queue.jobs, leftover.id) and not await redis.zscore(queue.due, leftover.id)
    finally:
        await redis.aclose()

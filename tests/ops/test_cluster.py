"""On the local three-broker KRaft cluster (deploy/kafka/cluster.sh; started here if it is not running, and
stopped at the end if it was started here), secured with SASL/SCRAM and ACLs: topics with replication factor 3
and min.insync.replicas=2, two replicas of routing sharing the work of one group, and the whole slice, every
service as its own principal."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from services.analytics.settings import AnalyticsSettings
from services.intake.settings import IntakeSettings
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared import kafka_access
from shared.catalogue import load_catalogue
from shared.events import Envelope, IdeaSubmitted
from shared.kafka import client_options, event_headers
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.integration import test_slice as slice_tests
from tests.ops.conftest import cluster_settings
from tests.support.apps import running
from tests.support.kafka import eventually, group_done, probe, raw_producer

pytestmark = [pytest.mark.kafka, pytest.mark.ops, pytest.mark.cluster]

SETTINGS = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "notifications": NotificationsSettings,
    "analytics": AnalyticsSettings,
}


@pytest.fixture
async def kafka_settings(cluster: str, cluster_admin_env: dict[str, str], test_id: str):
    """Overrides the suite's single-broker settings: this module's topics live on the cluster, created and
    probed by its superuser; the services themselves run as their own principals (``service_settings``)."""
    settings = cluster_settings(
        cluster_admin_env,
        topic_prefix=f"c{test_id}.",
        partitions=6,
        handler_attempts=3,
        retry_backoff_s=0.05,
        publish_timeout_s=15,
    )
    yield settings
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        doomed = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        await admin.close()


@pytest.fixture
async def service_settings(service_settings, kafka_settings: KafkaSettings, test_id: str):
    """Each service as its own SCRAM user, with only the ACLs ``shared.kafka_access`` gives it on this test's
    topics and consumer groups: the slice working here shows that the ACLs are enough."""
    groups = {name: f"{cls.__name__.lower()}-{test_id}" for name, cls in SETTINGS.items()}  # as the suite names them
    principals = kafka_access.plan(Topics(kafka_settings.topic_prefix), load_catalogue(), groups)
    secrets = kafka_access.passwords(principals)
    await kafka_access.apply(kafka_settings, principals, secrets)

    def build(cls, **overrides):
        service = next(name for name, known in SETTINGS.items() if known is cls)
        own = kafka_settings.model_copy(update={"sasl_username": service, "sasl_password": SecretStr(secrets[service])})
        return service_settings(cls, kafka=own, group_id=groups[service], **overrides)

    return build


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> Topics:
    topics = Topics(kafka_settings.topic_prefix)
    await ensure_topics(kafka_settings, topics.specs(kafka_settings, load_catalogue().organisation_ids), wait_s=60)
    return topics


async def test_topics_have_three_replicas_and_need_two_in_sync(kafka_settings, topics):
    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        [description] = await admin.describe_topics([topics.submitted])
        assert len(description["partitions"]) == 6
        assert all(len(p["replicas"]) == 3 for p in description["partitions"])

        async def all_in_sync() -> bool:  # a follower of a topic just created may need a moment to join
            [described] = await admin.describe_topics([topics.submitted])
            return all(len(p["isr"]) == 3 for p in described["partitions"])

        await eventually(all_in_sync, timeout=30, interval=0.5)
        [config] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.submitted)])
        values = {entry[0]: entry[1] for entry in config.resources[0][4]}
        assert values["min.insync.replicas"] == "2" and values["retention.ms"] == "-1"
        # the people's keys: compacted (a tombstone erases a person), as safe as the ideas
        [keys] = await admin.describe_topics([topics.people_keys])
        assert all(len(p["replicas"]) == 3 for p in keys["partitions"])
        [config] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.people_keys)])
        values = {entry[0]: entry[1] for entry in config.resources[0][4]}
        assert values["cleanup.policy"] == "compact" and values["min.insync.replicas"] == "2"
    finally:
        await admin.close()


def assigned(app) -> set[int]:
    """Partitions of ideas.submitted.v2 that this replica's consumer holds now."""
    topic = app.state.runtime.topics.submitted
    held = set()
    for subscriber in app.state.runtime.broker.subscribers:
        if topic in subscriber.topic_names and subscriber.consumer is not None:
            held |= {tp.partition for tp in subscriber.consumer.assignment() if tp.topic == topic}
    return held


async def test_two_replicas_of_routing_share_the_partitions_and_route_every_idea_once(
    service_settings, topics, kafka_settings
):
    settings = service_settings(RoutingSettings)  # one group for both replicas, as in a deployment
    first, second = (routing_app(settings.model_copy(update={"instance": f"routing-{n}"})) for n in (1, 2))
    ideas = [
        Envelope.wrap(
            IdeaSubmitted(idea_id=str(uuid.uuid4()), title=f"Fjärrvärme i kvarter {i}", description="", anonymous=True),
            source="/tests",
        )
        for i in range(40)
    ]
    async with running(first), running(second), probe(kafka_settings, topics.routed) as routed:
        await eventually(lambda: assigned(first) and assigned(second), timeout=60, interval=0.2)
        shares = assigned(first), assigned(second)
        assert not shares[0] & shares[1] and shares[0] | shares[1] == set(range(6)), shares
        async with raw_producer(kafka_settings) as producer:
            for idea in ideas:
                headers = [(k, v.encode()) for k, v in event_headers(idea).items()]
                await producer.send_and_wait(
                    topics.submitted, idea.to_bytes(), key=idea.subject.encode(), headers=headers
                )
        sent = {idea.subject for idea in ideas}
        await routed.wait_for(lambda rs: sent <= {r.key.decode() for r in rs}, timeout=60)
        # every submission handled and what it caused committed, and all of that read: a second routing would be here
        group = f"{settings.group_id}.{topics.submitted}"
        await eventually(lambda: group_done(kafka_settings, group, topics.submitted), timeout=60, interval=0.5)
        await eventually(routed.caught_up, timeout=30)
        handled = [handled_count(app, topics.submitted) for app in (first, second)]
        retried = [transactions_retried(app) for app in (first, second)]
    ids_by_idea: dict[str, list[str]] = defaultdict(list)
    for record in routed.records:
        ids_by_idea[record.key.decode()].append(json.loads(record.value)["id"])
    assert set(ids_by_idea) == sent
    assert all(len(ids) == 1 for ids in ids_by_idea.values()), "an idea was routed twice"
    assert all(count > 0 for count in handled) and sum(handled) == len(ideas), handled
    assert retried == [0, 0], "a replica's transaction failed (two replicas with one transactional.id fence each other)"


def transactions_retried(app) -> float:
    registry = app.state.runtime.metrics.registry
    return registry.get_sample_value("kiruna_kafka_transactions_total", {"service": "routing", "outcome": "retried"})


def handled_count(app, topic: str) -> float:
    registry = app.state.runtime.metrics.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "faststream_received_processed_messages"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("handler") == topic
    )


async def test_the_whole_slice_works_on_the_cluster(service_settings, topics, kafka_settings):
    await slice_tests.test_an_idea_travels_from_intake_to_every_service(service_settings, topics, kafka_settings)

"""Topic creation is explicit and idempotent: every topic of the design, with its partitions and retention."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.catalogue import load_catalogue
from shared.kafka import client_options
from shared.topics import Topics, ensure_topics

pytestmark = pytest.mark.kafka


async def test_topics_are_created_once_with_their_configuration(kafka_settings):
    topics = Topics(kafka_settings.topic_prefix)
    specs = topics.specs(kafka_settings, load_catalogue().organisation_ids)
    names = {spec.name for spec in specs}
    assert {
        topics.submitted,
        topics.routed,
        topics.organisation("kirunabostader"),
        topics.dlq(topics.submitted),
        topics.intake_raw,
        topics.dlq(topics.intake_raw),
    } <= names

    assert set(await ensure_topics(kafka_settings, specs)) == names
    assert await ensure_topics(kafka_settings, specs) == []  # a second run changes nothing

    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([topics.submitted, topics.routed])}
        assert len(described[topics.submitted]["partitions"]) == kafka_settings.partitions
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.routed, {"retention.ms": None})]
        )
        config = {entry[0]: entry[1] for resource in response.resources for entry in resource[4]}
        assert config["retention.ms"] == "-1"  # ideas are kept forever: Kafka is the system of record
    finally:
        await admin.close()

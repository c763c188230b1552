"""Topic creation is explicit and idempotent: every topic of the design, with its partitions and retention, as
``python -m shared.topics create`` makes them (the people's topics of issue 13 included)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.catalogue import load_catalogue
from shared.kafka import client_options
from shared.topics import (
    DEAD_LETTER_RETENTION_MS,
    PEOPLE_KEYS_SEGMENT_MS,
    RAW_RETENTION_MS,
    SENT_RETENTION_MS,
    Topics,
    ensure_topics,
)

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 24 * 3600 * 1000


async def configs(settings, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the broker reports it (its defaults included)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        return {
            resource[3]: {entry[0]: entry[1] for entry in resource[4]}
            for response in responses
            for resource in response.resources
        }
    finally:
        await admin.close()


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
        topics.people_keys,
        topics.people_erasures,
        topics.dlq(topics.people_erasures),
    } <= names
    assert not names & set(topics.migrated())  # the .v1 topics with personal data are no longer made

    assert set(await ensure_topics(kafka_settings, specs)) == names
    assert await ensure_topics(kafka_settings, specs) == []  # a second run changes nothing

    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([topics.submitted, topics.routed])}
        assert len(described[topics.submitted]["partitions"]) == kafka_settings.partitions
    finally:
        await admin.close()
    config = (await configs(kafka_settings, [topics.routed]))[topics.routed]
    assert config["retention.ms"] == "-1"  # ideas are kept forever: Kafka is the system of record


async def test_the_topics_command_creates_the_retention_and_compaction_of_the_design(kafka_settings):
    """``python -m shared.topics create`` as an operator runs it (a fresh prefix), then what the broker holds:
    the .v2 idea topics kept forever, people.keys.v1 and the preferences compacted with the bound that makes a
    tombstoned key go (README, "Topics and how long they keep what"), the raw input a week, the sent
    notifications 90 days, the dead letters 30 days, and the erasures (pseudonyms only) kept."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "KAFKA_PARTITIONS": "2",
    }
    command = [sys.executable, "-m", "shared.topics", "create"]
    first = await run(command, env)
    topics = Topics(kafka_settings.topic_prefix)
    declared = topics.specs(kafka_settings, load_catalogue().organisation_ids)
    assert f"topics: {len(declared)} declared, {len(declared)} created, 0 already there" in first, first
    assert f"{len(declared)} declared, 0 created, {len(declared)} already there" in await run(command, env)

    compacted = {
        "cleanup.policy": "compact",
        "segment.ms": str(PEOPLE_KEYS_SEGMENT_MS),
        "max.compaction.lag.ms": str(PEOPLE_KEYS_SEGMENT_MS),
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(DAY_MS),
    }
    expected = {
        topics.submitted: {"retention.ms": "-1", "cleanup.policy": "delete"},
        topics.engagement: {"retention.ms": "-1", "cleanup.policy": "delete"},
        topics.routed: {"retention.ms": "-1"},
        topics.status_changed: {"retention.ms": "-1"},
        topics.people_keys: compacted,
        topics.preferences: compacted,
        topics.people_erasures: {"retention.ms": "-1", "cleanup.policy": "delete"},
        topics.intake_raw: {"retention.ms": str(RAW_RETENTION_MS)},
        topics.notifications_sent: {"retention.ms": str(SENT_RETENTION_MS)},
        topics.dlq(topics.people_erasures): {"retention.ms": str(DEAD_LETTER_RETENTION_MS)},
        topics.dlq(topics.submitted): {"retention.ms": str(DEAD_LETTER_RETENTION_MS)},
        topics.notifications_dlq: {"retention.ms": str(DEAD_LETTER_RETENTION_MS)},
    }
    held = await configs(kafka_settings, list(expected))
    for topic, config in expected.items():
        assert {name: held[topic].get(name) for name in config} == config, topic
    assert RAW_RETENTION_MS == 7 * DAY_MS and SENT_RETENTION_MS == 90 * DAY_MS
    assert PEOPLE_KEYS_SEGMENT_MS <= 10 * 60 * 1000  # the bound on a tombstoned key stays within half an hour


async def run(command: list[str], env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    return output.decode()

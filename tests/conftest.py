"""Fixtures shared by every tier. Tests that need Kafka and Redis get a fresh topic prefix, consumer groups
and Redis key prefix each, so they never see each other's data."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from redis.asyncio import Redis

from shared.catalogue import load_catalogue
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

pytest_plugins = ["tests.support.deadline"]  # a test that hangs fails alone, with its stacks


@pytest.fixture
def test_id() -> str:
    return uuid.uuid4().hex[:10]


_PREFIXES: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _delete_test_topics_at_the_end():
    """Leave the broker as we found it: delete every topic this session created."""
    yield
    if _PREFIXES:
        asyncio.run(_delete_topics(tuple(_PREFIXES)))


async def _delete_topics(prefixes: tuple[str, ...]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        await admin.start()
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start : start + 100], timeout_ms=30_000)
    except Exception as exc:  # cleanup must not hide the tests' own result
        print(f"could not delete the test topics: {exc!r}")
    finally:
        await admin.close()


@pytest.fixture
def kafka_settings(test_id: str) -> KafkaSettings:
    _PREFIXES.append(f"t{test_id}.")
    return KafkaSettings(
        bootstrap_servers=BOOTSTRAP,
        topic_prefix=f"t{test_id}.",
        partitions=2,
        handler_attempts=3,
        retry_backoff_s=0.05,
        publish_timeout_s=10,
    )


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> Topics:
    topics = Topics(kafka_settings.topic_prefix)
    specs = topics.specs(kafka_settings, load_catalogue().organisation_ids)
    await ensure_topics(kafka_settings, specs, wait_s=30)
    return topics


@pytest.fixture
async def redis_prefix(test_id: str):
    prefix = f"test{test_id}"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
def service_settings(kafka_settings: KafkaSettings, redis_prefix: str, test_id: str):
    """Build a service's settings for this test: ``service_settings(RoutingSettings)``."""

    def build(cls, **overrides):
        values = dict(
            kafka=kafka_settings,
            redis_url=REDIS_URL,
            redis_prefix=redis_prefix,
            group_id=f"{cls.__name__.lower()}-{test_id}",
        )
        if "smtp_port" in cls.model_fields:
            values["smtp_port"] = 0  # intake's mail door on any free port: tests never fight over 2525
        values.update(overrides)
        return cls(**values)

    return build

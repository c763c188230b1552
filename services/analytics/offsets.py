"""Where the projected topics end: partitions of topics, read with the admin client (a plain consumer's
``partitions_for_topic`` knows only the topics it subscribed to)."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

UNKNOWN_TOPIC = 3


async def topic_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, list[TopicPartition]]:
    """Every partition of each existing topic; topics that do not exist are left out."""
    found: dict[str, list[TopicPartition]] = {}
    for description in await admin.describe_topics(topics):
        if description["error_code"] == UNKNOWN_TOPIC or not description["partitions"]:
            continue
        if description["error_code"]:
            raise RuntimeError(f"cannot describe topic {description['topic']}: error {description['error_code']}")
        found[description["topic"]] = sorted(
            TopicPartition(description["topic"], p["partition"]) for p in description["partitions"]
        )
    return found

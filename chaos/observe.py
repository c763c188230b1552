"""What the invariants are checked against, read from the running system: the committed records of the routed and
organisation topics (``isolation_level="read_committed"``, as an organisation's own reader would), the dead-letter
topics, the consumer groups' lag, analytics' answers and the mail sink's .eml files."""

from __future__ import annotations

import asyncio
import json
from email.parser import BytesHeaderParser
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.stack import Space, admin_client
from chaos.invariants import Mail, RoutedRecord
from shared.kafka import client_options, describe_partitions
from shared.settings import KafkaSettings


async def topics_of(kafka: KafkaSettings, prefix: str) -> list[str]:
    async with admin_client(kafka) as admin:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))


def routed_topics(topics: list[str], prefix: str) -> list[str]:
    """``ideas.routed.v1`` (or a later major version) and every ``org.<id>.ideas.v1`` of the prefix."""
    names = []
    for topic in topics:
        rest = topic.removeprefix(prefix)
        if rest.endswith(".dlq"):
            continue
        if rest.startswith("ideas.routed.v") or (rest.startswith("org.") and rest.endswith(".ideas.v1")):
            names.append(topic)
    return names


async def _partitions(kafka: KafkaSettings, topics: list[str]) -> list[TopicPartition]:
    async with admin_client(kafka) as admin:
        found = await describe_partitions(admin, topics)
    return [tp for tps in found.values() for tp in tps]


async def read_committed(kafka: KafkaSettings, topics: list[str], timeout_s: float = 120) -> list:
    """Every committed record of ``topics`` from the beginning up to their last stable offset at the start."""
    partitions = await _partitions(kafka, topics)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    records = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(timeout_s):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batches = await consumer.getmany(*partitions, timeout_ms=500, max_records=5000)
                for batch in batches.values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def as_routed(record) -> RoutedRecord:
    event = json.loads(record.value)
    data = event.get("data") or {}
    return RoutedRecord(
        topic=record.topic,
        event_id=str(event.get("id")),
        idea_id=str(data.get("idea_id") or event.get("subject")),
        decision=str(data.get("rerouted_by") or ""),
    )


async def end_offsets(kafka: KafkaSettings, topics: list[str]) -> dict[TopicPartition, int]:
    partitions = await _partitions(kafka, topics)
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def dead_letters(kafka: KafkaSettings, prefix: str) -> dict[str, int]:
    """Records on each ``.dlq`` topic of the prefix (their producers are not transactional: end offset = count)."""
    dlq = [t for t in await topics_of(kafka, prefix) if t.endswith(".dlq")]
    counts = dict.fromkeys(dlq, 0)
    for tp, end in (await end_offsets(kafka, dlq)).items():
        counts[tp.topic] += end
    return {topic: n for topic, n in counts.items() if n}


async def consumer_lag(kafka: KafkaSettings, space: Space, services: tuple[str, ...]) -> dict[str, int]:
    """Records not yet committed, per consumer group of the scenario's services. A group is named
    ``<service group>.<topic>`` (shared/kafka.py subscriber_options), so every partition of its topic counts, those
    where it never committed included."""
    async with admin_client(kafka) as admin:
        groups = [str(g[0]) for g in await admin.list_consumer_groups()]
        committed: dict[str, dict[TopicPartition, int]] = {}
        topic_of: dict[str, str] = {}
        for service in services:
            base = space.group_id(service) + "."
            for group in groups:
                if group.startswith(base):
                    topic_of[group] = group.removeprefix(base)
                    offsets = await admin.list_consumer_group_offsets(group)
                    committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
    ends = await end_offsets(kafka, sorted(set(topic_of.values())))
    lag = {}
    for group, topic in topic_of.items():
        behind = sum(max(0, end - committed[group].get(tp, 0)) for tp, end in ends.items() if tp.topic == topic)
        if behind:
            lag[group] = behind
    return lag


async def committed_total(kafka: KafkaSettings, space: Space, services: tuple[str, ...]) -> int:
    """Sum of every committed offset of the scenario's groups: when it grows, the consumers are draining."""
    total = 0
    async with admin_client(kafka) as admin:
        for group in [str(g[0]) for g in await admin.list_consumer_groups()]:
            if any(group.startswith(space.group_id(s) + ".") for s in services):
                offsets = await admin.list_consumer_group_offsets(group)
                total += sum(max(0, meta.offset) for meta in offsets.values())
    return total


async def missing_from_analytics(url: str, idea_ids: set[str], concurrency: int = 16) -> set[str]:
    """The ideas analytics does not know (404: not projected, or never will be). Another answer is an error."""
    missing: set[str] = set()
    queue = list(idea_ids)
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:

        async def worker() -> None:
            while queue:
                idea_id = queue.pop()
                answer = await http.get(f"/api/v1/ideas/{idea_id}")
                if answer.status_code == 404:
                    missing.add(idea_id)
                elif answer.status_code != 200:
                    raise RuntimeError(f"analytics answered {answer.status_code} for idea {idea_id}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return missing


def read_mails(directory: Path) -> list[Mail]:
    """The headers of every .eml the sink wrote (the sink adds the envelope recipient as a header)."""
    parser = BytesHeaderParser()
    mails = []
    for path in sorted(directory.glob("*.eml")):
        with path.open("rb") as f:
            headers = parser.parse(f)
        mails.append(
            Mail(
                message_id=str(headers.get("Message-ID", "")).strip(),
                recipient=str(headers.get("X-Mailsink-Envelope-To", "")).strip().lower(),
                kind=str(headers.get("X-Kiruna-Kind", "")).strip(),
                idea_id=str(headers.get("X-Kiruna-Idea", "")).strip(),
            )
        )
    return mails

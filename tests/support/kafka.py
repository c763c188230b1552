"""Test helpers against the real Kafka: isolated topics per test, and probes that read what services wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import client_options
from shared.settings import KafkaSettings


class TopicProbe:
    """Reads one topic from the beginning (no consumer group) and keeps every record it saw. It reads as the
    platform tells every reader to (``read_committed``: records of aborted transactions are not seen);
    ``isolation_level="read_uncommitted"`` sees them too."""

    def __init__(self, settings: KafkaSettings, topic: str, isolation_level: str = "read_committed") -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation_level,
        )
        self._task: asyncio.Task | None = None

    async def start(self) -> TopicProbe:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic)
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic)
        assert partitions, f"topic {self.topic} does not exist"
        assignment = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(assignment)
        await self._consumer.seek_to_beginning(*assignment)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                self.records.extend(records)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records]

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 20.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: condition not met in {timeout}s; saw {len(self.records)} records")
            await asyncio.sleep(0.05)
        return self.records

    async def caught_up(self) -> bool:
        """Whether it has read everything the topic holds now (read_committed: every committed record). With
        :func:`group_done` of the writer's input, "nothing more will come" without sleeping."""
        partitions = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(partitions)
        return all([await self._consumer.position(tp) >= end for tp, end in ends.items()])

    async def wait_count(self, count: int, timeout: float = 20.0) -> list[Any]:
        return await self.wait_for(lambda records: len(records) >= count, timeout)


@contextlib.asynccontextmanager
async def probe(
    settings: KafkaSettings, topic: str, isolation_level: str = "read_committed"
) -> AsyncIterator[TopicProbe]:
    reader = await TopicProbe(settings, topic, isolation_level).start()
    try:
        yield reader
    finally:
        await reader.stop()


@contextlib.asynccontextmanager
async def raw_producer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer, as a foreign system would use: no FastStream, no contracts."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def group_done(settings: KafkaSettings, group: str, topic: str) -> bool:
    """Whether consumer group ``group`` has committed the end of every partition of ``topic`` (all handled; for a
    transactional writer, everything it wrote for them is committed too)."""
    from shared.replay import topic_partitions

    partitions = await topic_partitions(settings, [topic])
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return all([(await consumer.committed(tp) or 0) >= ends[tp] for tp in partitions])
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Await ``check()`` until it returns something truthy (it may be sync or async)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")

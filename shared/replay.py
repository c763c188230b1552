"""Read topics from the beginning up to where they end now: the basis of every rebuild of Redis state from
Kafka, with a progress line on stderr for the operator."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import client_options
from shared.settings import KafkaSettings


class Progress:
    """``label  12345/20000 (61.7%)  3456/s`` on one line, redrawn at most 10 times a second."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.done = 0
        self._start = self._drawn = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self.draw()

    def draw(self, end: str = "") -> None:
        rate = self.done / max(time.monotonic() - self._start, 1e-6)
        share = 100.0 * self.done / self.total if self.total else 100.0
        width = 30
        filled = int(width * share / 100)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.label:<28} [{bar}] {self.done}/{self.total} ({share:5.1f}%) {rate:8.0f}/s{end}")
        self.stream.flush()

    def finish(self) -> None:
        self.draw(end="\n")


async def topic_partitions(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist (missing topics are left out)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(entry["topic"], partition["partition"])
        for entry in described
        if entry.get("error_code", 0) == 0
        for partition in sorted(entry["partitions"], key=lambda p: p["partition"])
    ]


async def read_topics(
    settings: KafkaSettings, topics: Sequence[str], *, label: str = "replaying", progress: bool = True
) -> AsyncIterator[Any]:
    """Every record of ``topics`` from offset 0 to the end offsets seen at the start (records written meanwhile
    are left for the live consumers). Order is kept within each partition."""
    partitions = await topic_partitions(settings, topics)
    if not partitions:
        return
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        bar = Progress(label, sum(ends[tp] - starts[tp] for tp in partitions)) if progress else None
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
                if bar:
                    bar.advance(len(records))
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        if bar:
            bar.finish()
    finally:
        await asyncio.sleep(0)  # let aiokafka's internal tasks start, or stopping them raises CancelledError
        await consumer.stop()

"""Read topics from the beginning up to where they end now: the basis of every rebuild of Redis state from
Kafka (``python -m services.analytics.rebuild``, ``python -m services.routing.rebuild``), with a progress bar on
stderr for the operator."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tqdm import tqdm

from shared.deadletter import MALFORMED
from shared.kafka import client_options, describe_partitions
from shared.settings import KafkaSettings, ServiceSettings

if TYPE_CHECKING:
    from shared.events import Envelope


async def topic_partitions(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist (missing topics are left out)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        found = await describe_partitions(admin, topics)
    finally:
        await admin.close()
    return [tp for topic in topics for tp in found.get(topic, [])]


async def read_batches(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    label: str = "replaying events",
    progress: bool = True,
    stream: TextIO | None = None,
) -> AsyncIterator[list[Any]]:
    """Every record of ``topics`` from their beginning to the end offsets seen at the start (records written
    meanwhile are left for the live consumers), in batches as Kafka returns them. Order is kept within each
    partition."""
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
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        with tqdm(total=total, desc=label, unit="event", file=stream or sys.stderr, disable=not progress) as bar:
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
                batch = [record for tp, records in batches.items() for record in records if record.offset < ends[tp]]
                bar.update(sum(len(records) for records in batches.values()))
                if batch:
                    yield batch
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await asyncio.sleep(0)  # let aiokafka's internal tasks start, or stopping them raises CancelledError
        await consumer.stop()


async def read_event_batches(
    settings: KafkaSettings,
    models: dict[str, type[Envelope[Any]]],
    *,
    malformed: Counter[str],
    **options: Any,
) -> AsyncIterator[list[tuple[str, Envelope[Any]]]]:
    """Like :func:`read_batches`, each record parsed as its topic's event: (topic, event) pairs. A record that
    cannot be parsed was dead-lettered when it first arrived: it is counted in ``malformed`` and skipped."""
    async for batch in read_batches(settings, list(models), **options):
        parsed = []
        for record in batch:
            try:
                parsed.append((record.topic, models[record.topic].parse(record.value or b"")))
            except MALFORMED:
                malformed[record.topic] += 1
        yield parsed


async def read_topics(settings: KafkaSettings, topics: Sequence[str], **options: Any) -> AsyncIterator[Any]:
    """Like :func:`read_batches`, one record at a time."""
    async for batch in read_batches(settings, topics, **options):
        for record in batch:
            yield record


class Described(Protocol):
    def describe(self) -> str: ...


def rebuild_command(
    argv: list[str] | None,
    *,
    service: str,
    description: str,
    settings: ServiceSettings,
    rebuild: Callable[..., Awaitable[Described]],
) -> int:
    """The command line of a service's rebuild: what it reads and writes, the progress on stderr (unless
    ``--no-progress``), and what it did on stdout."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}.{rebuild.__name__}", description=description)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    print(
        f"{service} {rebuild.__name__}: Kafka {settings.kafka.bootstrap_servers} "
        f"(topic prefix '{settings.kafka.topic_prefix}'), Redis {settings.redis_url} "
        f"(key prefix '{settings.redis_prefix}:{service}')",
        file=sys.stderr,
    )
    try:
        result = asyncio.run(rebuild(settings, progress=not args.no_progress))
    except Exception as exc:  # Kafka or Redis not reachable, refused credentials: one readable line, no traceback
        print(f"{service} {rebuild.__name__} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0

"""Consumer lag of a service's own consumer groups, per topic and partition, as a gauge on its registry.

Every subscriber has its own group ``<service group>.<topic>`` (see :func:`shared.kafka.subscriber_options`).
A background task asks Kafka every ``CONSUMER_LAG_INTERVAL_S`` for the groups' committed offsets and the
partitions' end offsets; lag = end - committed (a group that has not committed yet counts from the start of
the partition, where it would begin). Measured off the scrape path: a scrape never waits for Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from shared.kafka import client_options, describe_partitions


def subscriptions(broker: Any) -> list[tuple[str, str]]:
    """``(group, topic)`` of every subscriber of the broker that consumes in a group."""
    found = []
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "group_id", None)
        for topic in getattr(subscriber, "topic_names", ()) or ():
            if group:
                found.append((group, topic))
    return found


def lag_of(end: int, committed: int | None, start: int) -> int:
    """Pure: the records a group still has to handle on one partition."""
    position = committed if committed is not None and committed >= 0 else start
    return max(end - max(position, start), 0)


class LagMonitor:
    def __init__(self, *, service: str, kafka: Any, broker: Any, gauge: Gauge, logger: Any) -> None:
        self.service = service
        self.kafka = kafka
        self.broker = broker
        self.gauge = gauge
        self.logger = logger
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.latest: dict[tuple[str, str, int], int] = {}
        """The last measurement, for services that derive figures of their own from it (analytics)."""

    async def measure(self) -> dict[tuple[str, str, int], int]:
        """``{(group, topic, partition): lag}`` of every subscription, and the gauge set to it."""
        options = client_options(self.kafka)
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000)
            await self._admin.start()
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
            await self._consumer.start()
        wanted = subscriptions(self.broker)
        partitions = await describe_partitions(self._admin, sorted({topic for _, topic in wanted}))
        every = [tp for tps in partitions.values() for tp in tps]
        if not every:
            return {}
        end = await self._consumer.end_offsets(every)
        start = await self._consumer.beginning_offsets(every)
        lags = {}
        for group, topic in wanted:
            tps = partitions.get(topic, [])
            committed = await self._admin.list_consumer_group_offsets(group, partitions=tps) if tps else {}
            for tp in tps:
                meta = committed.get(tp)
                lags[(group, topic, tp.partition)] = lag_of(end[tp], meta.offset if meta else None, start[tp])
        for (group, topic, partition), value in lags.items():
            self.gauge.labels(self.service, group, topic, str(partition)).set(value)
        self.latest = lags
        return lags

    async def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
        self._admin = self._consumer = None

    async def run(self, connected: asyncio.Event, interval_s: float) -> None:
        """Measure every ``interval_s`` once Kafka is connected, until cancelled; a failed round is logged and
        the clients are made anew next round."""
        await connected.wait()
        try:
            while True:
                try:
                    await self.measure()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.logger.warning("consumer lag not measured", extra={"error": repr(exc)})
                    await self.close()
                await asyncio.sleep(interval_s)
        finally:
            await self.close()

"""Business metrics on the service's registry: ideas by state and organisation, response-time targets missed,
and how far the projection lags behind the topics. Labels are bounded (organisations, states, targets,
topics from the catalogue and the design), never idea ids or people.

The gauges are refreshed by a background loop (``ANALYTICS_METRICS_INTERVAL_S``), not at scrape time, so a
scrape never waits for Redis or Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge

from services.analytics import figures
from services.analytics.offsets import topic_partitions
from services.analytics.store import ProjectionStore
from shared.catalogue import Catalogue
from shared.kafka import client_options
from shared.service import Runtime


@dataclass(frozen=True)
class BusinessMetrics:
    ideas: Gauge
    targets_missed: Gauge
    lag: Gauge
    refreshed: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BusinessMetrics:
        return cls(
            ideas=Gauge(
                "kiruna_analytics_ideas",
                "Ideas by current state and responsible organisation (an idea routed to two counts in both)",
                ["organisation", "state"],
                registry=registry,
            ),
            targets_missed=Gauge(
                "kiruna_analytics_response_targets_missed",
                "Ideas that missed a response-time target (answered late, or still waiting past it)",
                ["target", "status"],
                registry=registry,
            ),
            lag=Gauge(
                "kiruna_analytics_projection_lag_messages",
                "Messages on a topic not yet projected (end offset minus the analytics group's committed offset)",
                ["topic"],
                registry=registry,
            ),
            refreshed=Gauge(
                "kiruna_analytics_metrics_refreshed_timestamp_seconds",
                "When the business gauges were last refreshed",
                registry=registry,
            ),
        )

    def set_figures(self, ideas_by: dict[tuple[str, str], int], missed: dict[tuple[str, str], int]) -> None:
        """Replace the gauges' values at once (no await in between: a scrape sees all old or all new)."""
        self.ideas.clear()
        for (organisation, state), count in ideas_by.items():
            self.ideas.labels(organisation, state).set(count)
        self.targets_missed.clear()
        for (target, status), count in missed.items():
            self.targets_missed.labels(target, status).set(count)
        self.refreshed.set(datetime.now(UTC).timestamp())


def business_figures(
    summaries: list[Any], catalogue: Catalogue, *, now: datetime, tz: ZoneInfo
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """Pure: the gauges' values from the idea summaries."""
    ideas_by: Counter[tuple[str, str]] = Counter()
    for idea in summaries:
        for organisation in idea.organisations:
            if idea.state:
                ideas_by[(organisation, idea.state)] += 1
    responses = figures.response_times(summaries, catalogue.targets, now=now, tz=tz)
    missed = {}
    for target in responses["targets"]:
        missed[(target["target"], "late")] = target["late"]
        missed[(target["target"], "overdue")] = target["overdue"]
    return dict(ideas_by), missed


class LagProbe:
    """End offsets of the projected topics against the committed offsets of analytics' consumer groups."""

    def __init__(self, runtime: Runtime, topics: list[str]) -> None:
        self.runtime = runtime
        self.topics = topics
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def measure(self) -> dict[str, int]:
        options = client_options(self.runtime.settings.kafka)
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000)
            await self._admin.start()
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
            await self._consumer.start()
        lag = {}
        for topic, partitions in (await topic_partitions(self._admin, self.topics)).items():
            end = await self._consumer.end_offsets(partitions)
            committed = await self._admin.list_consumer_group_offsets(
                f"{self.runtime.settings.group_id}.{topic}", partitions=partitions
            )
            lag[topic] = sum(
                max(end[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0), 0)
                for tp in partitions
            )
        return lag

    async def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
        self._admin = self._consumer = None


async def refresh_loop(
    runtime: Runtime,
    store: ProjectionStore,
    catalogue: Catalogue,
    metrics: BusinessMetrics,
    *,
    topics: list[str],
    interval_s: float,
    tz: ZoneInfo,
) -> None:
    """Refresh the business gauges every ``interval_s`` until cancelled. A failing refresh is logged and tried
    again next time (it only concerns gauges; no event is lost)."""
    probe = LagProbe(runtime, topics)
    try:
        while True:
            try:
                summaries = await store.summaries()
                ideas_by, missed = business_figures(summaries, catalogue, now=datetime.now(UTC), tz=tz)
                metrics.set_figures(ideas_by, missed)
                if runtime.kafka_connected.is_set():
                    for topic, value in (await probe.measure()).items():
                        metrics.lag.labels(topic.removeprefix(runtime.topics.prefix)).set(value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                runtime.logger.warning("business metrics refresh failed", extra={"error": repr(exc)})
                await probe.close()
            await asyncio.sleep(interval_s)
    finally:
        await probe.close()

"""Business metrics on the service's registry: ideas by state and organisation, response-time targets missed,
and how far the projection lags behind the topics. Labels are bounded (organisations, states, targets,
topics from the catalogue and the design), never idea ids or people.

The gauges are refreshed by a background loop (``ANALYTICS_METRICS_INTERVAL_S``), not at scrape time, so a
scrape never waits for Redis or Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Gauge

from services.analytics import figures
from services.analytics.store import Projections
from shared.catalogue import Catalogue
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


def projection_lag(runtime: Runtime) -> dict[str, int]:
    """Messages not yet projected, per topic (without the topic prefix): the consumer lag of analytics' own
    groups, as the shared lag monitor last measured it."""
    per_topic: Counter[str] = Counter()
    for (_, topic, _), value in (runtime.lag.latest if runtime.lag else {}).items():
        per_topic[topic.removeprefix(runtime.topics.prefix)] += value
    return dict(per_topic)


UNCHANGED_S = 300.0
"""While no idea changes, the gauges are computed again only this often (what is overdue moves with the working
days, not by the second); each computation reads every idea (O(ideas)), so a quiet projection costs nothing."""


async def refresh_loop(
    runtime: Runtime,
    store: Projections,
    catalogue_in_use: Callable[[], Catalogue],
    metrics: BusinessMetrics,
    *,
    interval_s: float,
    tz: ZoneInfo,
) -> None:
    """Refresh the business gauges every ``interval_s`` until cancelled. A failing refresh is logged and tried
    again next time (it only concerns gauges; no event is lost)."""
    computed: tuple[str, Catalogue, float] | None = None  # (version, catalogue, monotonic time) of the last one
    while True:
        try:
            version, catalogue = await store.version(), catalogue_in_use()
            if (
                computed is None
                or computed[0] != version
                or computed[1] is not catalogue
                or time.monotonic() - computed[2] > UNCHANGED_S
            ):
                summaries = await store.summaries()
                ideas_by, missed = await asyncio.to_thread(  # O(ideas): off the event loop, requests go on
                    business_figures, summaries, catalogue, now=datetime.now(UTC), tz=tz
                )
                metrics.set_figures(ideas_by, missed)
                computed = (version, catalogue, time.monotonic())
            else:  # nothing changed: the gauges are as current as a recomputation would make them
                metrics.refreshed.set(datetime.now(UTC).timestamp())
            for topic, value in projection_lag(runtime).items():
                metrics.lag.labels(topic).set(value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            runtime.logger.warning("business metrics refresh failed", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def refreshing(
    runtime: Runtime,
    store: Projections,
    catalogue_in_use: Callable[[], Catalogue],
    metrics: BusinessMetrics,
    *,
    interval_s: float,
    tz: ZoneInfo,
) -> AsyncIterator[None]:
    """The refresh loop as a background task of the service (``service_app(background=...)``): started with the
    service, stopped before it stops."""
    task = asyncio.create_task(
        refresh_loop(runtime, store, catalogue_in_use, metrics, interval_s=interval_s, tz=tz),
        name="analytics-business-metrics",
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

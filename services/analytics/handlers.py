"""Analytics' effects: every event lands once in its idea's timeline, and the idea's projection follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.analytics.domain import timeline_entry
from services.analytics.store import Projections
from shared.events import Envelope
from shared.metrics import ServiceMetrics

SERVICE = "analytics"


class AnalyticsHandlers:
    """Takes only what it uses: the projections (Redis in the service, an in-memory fake in the unit tests) and
    the service's metrics, where a redelivered event is counted as skipped."""

    def __init__(self, store: Projections, metrics: ServiceMetrics) -> None:
        self.store = store
        self.metrics = metrics

    async def record(self, topic: str, events: Sequence[Envelope[Any]]) -> None:
        """Events of one idea from one topic (a batch subscriber gives them together)."""
        entries = [timeline_entry(event.model_dump(mode="json")) for event in events]
        added = await self.store.record(events[0].subject, entries)
        if duplicates := len(entries) - added:
            self.metrics.idempotent_skips.labels(SERVICE, topic).inc(duplicates)

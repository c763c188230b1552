"""Analytics' effects: every event lands once in its idea's timeline, and the idea's projection follows."""

from __future__ import annotations

from typing import Any

from services.analytics.domain import timeline_entry
from services.analytics.store import ProjectionStore
from shared.service import Runtime


class AnalyticsHandlers:
    def __init__(self, runtime: Runtime, store: ProjectionStore) -> None:
        self.runtime = runtime
        self.store = store

    async def record(self, topic: str, envelope: dict[str, Any]) -> None:
        added = await self.store.record(envelope["subject"], timeline_entry(envelope))
        if not added:
            self.runtime.metrics.idempotent_skips.labels(self.runtime.service, topic).inc()

"""Analytics' effects: every event lands once in its idea's timeline, and the idea's projection follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.analytics.domain import timeline_entry
from services.analytics.store import ProjectionStore
from shared.events import Envelope
from shared.service import Runtime


class AnalyticsHandlers:
    def __init__(self, runtime: Runtime, store: ProjectionStore) -> None:
        self.runtime = runtime
        self.store = store

    async def record(self, topic: str, events: Sequence[Envelope[Any]]) -> None:
        """Events of one idea from one topic (a batch subscriber gives them together)."""
        entries = [timeline_entry(event.model_dump(mode="json")) for event in events]
        added = await self.store.record(events[0].subject, entries)
        if duplicates := len(entries) - added:
            self.runtime.metrics.idempotent_skips.labels(self.runtime.service, topic).inc(duplicates)

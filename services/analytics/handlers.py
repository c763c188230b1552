"""Analytics' effects: every event lands once in its idea's timeline, and the idea's projection follows; an erasure
drops what analytics holds of the person (their sealed name and address, their comments' texts, their "my ideas")
and leaves every count as it was."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from services.analytics.domain import sealed_keys, timeline_entry
from services.analytics.store import Projections
from shared.events import Envelope, ErasureRequestedEvent
from shared.metrics import ServiceMetrics

SERVICE = "analytics"


class Keys(Protocol):
    """What the handlers use of the people's keyring (``shared/keyring.py``; ``FakeKeyring`` in unit tests)."""

    async def key(self, key_id: str) -> Any: ...

    async def current(self, pseudonym: str) -> Any: ...

    def forget_cached(self, pseudonym: str) -> None: ...


async def live_keys(keyring: Keys, events: Iterable[dict[str, Any]]) -> set[str]:
    """The data keys named by these events (as JSON) that exist now: values under any other key read as erased."""
    named = set().union(*(sealed_keys(event) for event in events))
    return {key_id for key_id in named if await keyring.key(key_id) is not None}


class AnalyticsHandlers:
    """Takes only what it uses: the projections (Redis in the service, an in-memory fake in the unit tests), the
    people's keyring (which sealed values are still readable) and the service's metrics, where a redelivered event
    is counted as skipped."""

    def __init__(
        self, store: Projections, metrics: ServiceMetrics, keyring: Keys, logger: logging.Logger | None = None
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.keyring = keyring
        self.logger = logger or logging.getLogger(SERVICE)

    async def record(self, topic: str, events: Sequence[Envelope[Any]]) -> None:
        """Events of one idea from one topic (a batch subscriber gives them together)."""
        dumped = [event.model_dump(mode="json") for event in events]
        live = await live_keys(self.keyring, dumped)
        entries = [timeline_entry(event, live) for event in dumped]
        added = await self.store.record(events[0].subject, entries)
        if duplicates := len(entries) - added:
            self.metrics.idempotent_skips.labels(SERVICE, topic).inc(duplicates)

    async def erased(self, event: ErasureRequestedEvent) -> None:
        """A person is to be forgotten: their sealed values and "my ideas" go, counts stay. A person who came back
        after the request (a key made after it) keeps what they did since."""
        pseudonym = event.data.pseudonym
        self.keyring.forget_cached(pseudonym)
        current = await self.keyring.current(pseudonym)
        keep = current.key_id if current is not None and current.created > event.time else None
        changed = await self.store.forget_person(pseudonym, keep_key=keep)
        self.keyring.forget_cached(pseudonym)
        self.logger.info(
            "person erased from the projection",
            extra={"pseudonym": pseudonym, "event_id": event.id, "ideas_changed": changed},
        )

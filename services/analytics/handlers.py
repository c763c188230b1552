"""Analytics' effects: every event lands once in its idea's timeline, and the idea's projection follows; a merged
idea's supporters and followers are carried over to the idea it went into; a challenge is kept as opened; an
erasure drops what analytics holds of the person (their sealed name and address, their comments' texts and
names, their "my ideas") and leaves every count as it was."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from services.analytics.challenges import challenge_record
from services.analytics.domain import carried_entries, timeline_entry
from services.analytics.people import Keys, live_keys
from services.analytics.store import Projections
from shared.events import ChallengeOpenedEvent, Envelope, ErasureRequestedEvent, IdeaState
from shared.metrics import ServiceMetrics

SERVICE = "analytics"


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
        """Events of one idea from one topic."""
        dumped = [event.model_dump(mode="json") for event in events]
        live = await live_keys(self.keyring, dumped)
        entries = [timeline_entry(event, live) for event in dumped]
        added = await self.store.record(events[0].subject, entries)
        if duplicates := len(entries) - added:
            self.metrics.idempotent_skips.labels(SERVICE, topic).inc(duplicates)
        if any(may_carry(entry) for entry in entries):
            await carry_merged(self.store, events[0].subject)

    async def record_batch(self, topic: str, events: Sequence[Envelope[Any]]) -> None:
        """Events of any ideas from one topic (a whole consumed batch, each idea's in the topic's order): what
        :meth:`record` does for each idea, with every idea's state read in one round trip and written in another
        (``Projections.record_ideas``)."""
        dumped = [event.model_dump(mode="json") for event in events]
        live = await live_keys(self.keyring, dumped)
        ideas: dict[str, list[dict[str, Any]]] = {}
        for event, document in zip(events, dumped, strict=True):
            ideas.setdefault(event.subject, []).append(timeline_entry(document, live))
        added = await self.store.record_ideas(ideas)
        if duplicates := len(dumped) - sum(added.values()):
            self.metrics.idempotent_skips.labels(SERVICE, topic).inc(duplicates)
        for idea_id, entries in ideas.items():
            if any(may_carry(entry) for entry in entries):
                await carry_merged(self.store, idea_id)

    async def challenge_opened(self, topic: str, event: ChallengeOpenedEvent) -> None:
        """A challenge as opened (the newest event of a challenge wins; a repeat changes nothing)."""
        if not await self.store.record_challenge(challenge_record(event.model_dump(mode="json"))):
            self.metrics.idempotent_skips.labels(SERVICE, topic).inc()

    async def erased(self, event: ErasureRequestedEvent) -> None:
        """A person is to be forgotten (:func:`forget`). A repeated request changes nothing."""
        changed = await forget(self.store, self.keyring, event)
        self.logger.info(
            "person erased from the projection",
            extra={"pseudonym": event.data.pseudonym, "event_id": event.id, "ideas_changed": changed},
        )


def may_carry(entry: dict[str, Any]) -> bool:
    """Whether this entry may give a merged idea something to carry over: the merge itself, or a supporter or
    follower (who may have come to the merged idea before the merge was projected)."""
    data = entry["data"]
    if entry["kind"] == "status-changed":
        return data.get("to_state") == IdeaState.MERGED.value
    return entry["kind"] == "engagement" and data.get("kind") in ("support", "follow")


async def carry_merged(store: Projections, idea_id: str) -> int:
    """If the idea is merged, its supporters and followers count on the idea it went into too (one per person, by
    pseudonym), which shows the merge in its timeline; along a chain of merges (a into b, b into c) to the end.
    Idempotent: the carried entries' ids derive from the merged idea and the person. Returns the entries added."""
    added, seen = 0, set()
    while idea_id not in seen:
        seen.add(idea_id)
        summary = await store.summary(idea_id)
        if summary is None or summary.state != IdeaState.MERGED.value or not summary.merged_into:
            break
        supporters, followers = await store.people_of(idea_id)
        added += await store.record(summary.merged_into, carried_entries(summary, supporters, followers))
        idea_id = summary.merged_into
    return added


async def forget(store: Projections, keyring: Keys, event: ErasureRequestedEvent) -> int:
    """What an erasure does to the projection (live, and again in the rebuild): the person's sealed values (their
    name and address as submitter, their comments' texts) and their "my ideas" go; their ideas stay, by "en
    tidigare medarbetare", and every count stays. A person who came back after the request (their current key
    made after it) keeps what they did since. Returns the ideas changed."""
    pseudonym = event.data.pseudonym
    keyring.forget_cached(pseudonym)
    current = await keyring.current(pseudonym)
    keep = current.key_id if current is not None and current.created > event.time else None
    changed = await store.forget_person(pseudonym, keep_key=keep)
    keyring.forget_cached(pseudonym)
    return changed

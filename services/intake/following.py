"""What intake learns from the topics it follows (``Topics.idea_events()``): each idea's state, the organisations
that own it and who supports it, which is what it needs to judge a write. The same code serves the live subscribers
and the rebuild (``python -m services.intake.rebuild``). Applying an event again, or the topics' events in any
order between topics, gives the same state (the store's scripts compare times). It also heals what a request
could not record after Kafka had acknowledged its idea: the idea's record, and its Idempotency-Key's.

A support marks its person (by pseudonym) only while the person's key is live: after an erasure neither the live
follower nor a rebuild brings the person's support markers back."""

from __future__ import annotations

from typing import Any, Protocol

from services.intake.store import IntakeStore, iso
from shared.events import EngagementKind, Envelope, IdeaEngagement, IdeaRouted, IdeaStatusChanged, IdeaSubmitted
from shared.sealing import DataKey


class LiveKeys(Protocol):
    async def key(self, key_id: str) -> DataKey | None: ...


async def follow(store: IntakeStore, keyring: LiveKeys, envelope: Envelope[Any]) -> None:
    """Record what one followed event says about its idea."""
    at = iso(envelope.time)
    match envelope.data:
        case IdeaSubmitted():
            await store.record_submitted(envelope.subject, at)
            # An Idempotency-Key whose attempt Kafka acknowledged but Redis did not record: it answers now.
            await store.settle(envelope.subject)
        case IdeaRouted(organisations=targets):
            await store.record_routed(envelope.subject, [t.organisation for t in targets], at)
        case IdeaStatusChanged(to_state=state):
            await store.record_state(envelope.subject, state, at)
        case IdeaEngagement(kind=EngagementKind.SUPPORT, person=person):
            if await keyring.key(person.sealed.key) is not None:  # an erased person's support marks no one
                await store.add_support(envelope.subject, person.pseudonym)

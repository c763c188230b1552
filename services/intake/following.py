"""What intake learns from the topics it follows (``Topics.idea_events()`` and ``challenges.v1``): each idea's
state, the organisations that own it, its text, its submitter (by pseudonym), the challenge it answers, who has it
per organisation and who supports it; and each challenge. That is what it needs to judge a write and to suggest
similar ideas. The same code serves the live subscribers and the rebuild (``python -m services.intake.rebuild``).
Applying an event again, or the topics' events in any order between topics, gives the same state (the store's
scripts compare times; a merge carries supports over whichever of the two arrives first). It also heals what a
request could not record after Kafka had acknowledged its event: the idea's record, and its Idempotency-Key's.

A person is linked (a support's marker, a submitter's idea) only while the person's key is live: after an erasure
neither the live follower nor a rebuild links them again."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from services.intake.store import ANONYMOUS, IntakeStore, iso
from shared.events import (
    ChallengeOpened,
    ChallengeOpenedEvent,
    EngagementKind,
    Envelope,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    PersonRef,
)
from shared.sealing import DataKey
from shared.topics import Topics


class LiveKeys(Protocol):
    async def key(self, key_id: str) -> DataKey | None: ...


def followed(topics: Topics) -> dict[str, type[Envelope[Any]]]:
    """The topics intake follows (and its rebuild replays), with the event each carries."""
    return {**topics.idea_events(), topics.challenges: ChallengeOpenedEvent}


async def follow(store: IntakeStore, keyring: LiveKeys, envelope: Envelope[Any]) -> None:
    """Record what one followed event says about its idea (or challenge)."""
    at = iso(envelope.time)
    match envelope.data:
        case IdeaSubmitted() as idea:
            submitter = await _linked(keyring, idea.submitter)
            # The record, and an Idempotency-Key whose attempt Kafka acknowledged but Redis did not record (it
            # answers now): independent, so both go in one round trip; either failing fails the event (retried).
            outcomes = await asyncio.gather(
                store.record_submitted(
                    envelope.subject,
                    at,
                    title=idea.title,
                    description=idea.description,
                    submitter=submitter,
                    challenge_id=idea.challenge_id,
                ),
                store.settle(envelope.subject),
                return_exceptions=True,  # both finish before the handler does
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        case IdeaRouted(organisations=targets):
            await store.record_routed(envelope.subject, [t.organisation for t in targets], at)
        case IdeaStatusChanged(to_state=state, merged_into=target):
            await store.record_state(envelope.subject, state, at)
            if state is IdeaState.MERGED and target:
                await store.record_merge(envelope.subject, target)
        case IdeaEngagement(kind=EngagementKind.SUPPORT, person=person):
            if await keyring.key(person.sealed.key) is not None:  # an erased person's support marks no one
                await store.add_support(envelope.subject, person.pseudonym)
                record = await store.idea(envelope.subject)
                if record is not None and record.merged_into:  # a support of a merged idea counts for its target
                    await store.add_support(record.merged_into, person.pseudonym)
        case IdeaEdited(title=title, description=description):
            await store.record_text(envelope.subject, title, description, at)
        case IdeaAssigned(organisation=organisation, assignee=assignee):
            await store.record_assignment(envelope.subject, organisation, assignee, at)
        case ChallengeOpened() as challenge:
            await store.record_challenge(challenge)


async def _linked(keyring: LiveKeys, submitter: PersonRef | None) -> str:
    """The submitter's pseudonym while their key is live; :data:`ANONYMOUS` for nobody (or an erased person)."""
    if submitter is None or await keyring.key(submitter.sealed.key) is None:
        return ANONYMOUS
    return submitter.pseudonym

"""Rebuild notifications' Redis state from Kafka: ``python -m services.notifications.rebuild``.

Stop notifications first, run this, start it again. It fills the people's keyring from ``people.keys.v1`` first
(``Keyring.restore``: a key tombstoned there is gone here too), forgets what it rebuilds (everything of
notifications in Redis except the queue of deliveries still to make), then reads from the beginning of the topics
up to where they end at start:

0. ``people.erasures.v1``: who was erased, and when. Person-state (contacts, follows, preferences, a submitter) is
   made only from values sealed under a live key made after the person's last erasure, so an erased person stays
   erased; a person who came back (a fresh key) has what they did since. Whatever else the replay brought back of
   someone still erased (an officer's feed) is forgotten at the end, as the live erasure forgets it;
1. ``notifications.preferences.v2``: everyone's preferences and the areas and organisations they follow;
2. ``notifications.sent.v2``: the outcome of every notification ever decided (its event id is the notification
   id), so that nothing reported there is sent again: its e-mail or webhook is marked settled, and an in-app
   item is put back in its feed only if it had been delivered;
3. the idea topics (submissions, routings, status changes, engagement, edits, assignments) and ``challenges.v1``,
   through the live handlers in the order things happened (every submission first, so that no event has to wait
   for its own): each idea's facts, followers (those a merge carried over too), assignees and response-time
   clock, where people work, the challenges still open, people's feeds and the daily digests come back as they
   were. A challenge's audience is the people known by the time it opened, as when it was told. A delivery that
   no outcome mentions was still on its way when the state was lost: it is queued again and the service sends it
   when it starts.

Nothing is published and no e-mail is sent by the rebuild itself. Events that could not be handled when they
arrived (an unknown person, a broken template) were dead-lettered then; the rebuild counts and skips them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

from tqdm import tqdm

from services.notifications import domain
from services.notifications.contacts import Contacts
from services.notifications.delivery.queue import DeliveryQueue
from services.notifications.domain import DIGEST_SUBJECT_PREFIX, KINDS
from services.notifications.handlers import NotificationHandlers
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.waiting import RedisWaitingRoom, Waiting
from shared.catalogue import load_catalogue
from shared.deadletter import PermanentError
from shared.events import (
    ChallengeOpened,
    ChallengeOpenedEvent,
    DeliveryOutcome,
    Envelope,
    ErasureRequestedEvent,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaStatusChanged,
    IdeaSubmitted,
    NotificationSentEvent,
    PreferencesChangedEvent,
    utc_now,
)
from shared.idempotency import Idempotency
from shared.redis_keys import delete_matching
from shared.replay import read_event_batches, rebuild_command, topic_partitions
from shared.service import Runtime


@dataclass(frozen=True)
class Outcome:
    channel: str
    outcome: DeliveryOutcome
    idea_id: str
    cause_event_id: str


@dataclass
class RebuildResult:
    forgotten_keys: int = 0
    erasures: int = 0
    erased_people: int = 0
    preferences: int = 0
    outcomes: int = 0
    events: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    feed_items: int = 0
    queued_again: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        per_topic = ", ".join(f"{topic}: {n}" for topic, n in sorted(self.events.items())) or "none"
        return "\n".join(
            (
                f"notifications rebuild: {self.erasures} erasures, {self.preferences} preference changes, "
                f"{self.outcomes} notification outcomes, {sum(self.events.values())} idea events ({per_topic})",
                f"still erased: {self.erased_people} of them (nothing of theirs kept; the others came back since)",
                f"{self.feed_items} in-app items back in people's feeds; {self.queued_again} deliveries that no "
                "outcome mentions queued again (sent when notifications starts)",
                f"{sum(self.refused.values())} events refused as when they arrived and "
                f"{sum(self.malformed.values())} unparseable records skipped (they are in the .dlq topics)",
                f"forgot {self.forgotten_keys} keys first; took {self.seconds:.1f} s",
            )
        )


class Unreported:
    """The rebuild's ``Outcomes``: tells nobody, for every outcome the rebuild meets is on notifications.sent.v2
    already, or is reported by the delivery worker once the delivery it queued again is made. It counts the
    in-app items put back in people's feeds."""

    def __init__(self) -> None:
        self.in_app_delivered = 0

    async def outcome(
        self,
        *,
        notification_id: str,
        idea_id: str,
        cause_event_id: str,
        recipient: str,
        channel: str,
        outcome: DeliveryOutcome,
        detail: str | None = None,
        count: bool = True,
    ) -> None:
        if channel == "in-app" and outcome is DeliveryOutcome.DELIVERED and count:
            self.in_app_delivered += 1


async def rebuild(
    settings: NotificationsSettings, *, progress: bool = True, stream: TextIO | None = None
) -> RebuildResult:
    started = time.monotonic()
    result = RebuildResult()
    runtime = Runtime.create("notifications", settings)
    ttl = settings.effect_key_ttl_s  # the marks it sets expire as the service's do
    store = NotificationStore(runtime.redis, settings.redis_prefix, settings.feed_length, effect_ttl_s=ttl)
    queue = DeliveryQueue(runtime.redis, settings.redis_prefix, effect_ttl_s=ttl)
    done = Idempotency(runtime.redis, prefix=settings.redis_prefix, scope="notifications", ttl_s=ttl)
    room = RedisWaitingRoom(runtime.redis, settings.redis_prefix)
    reporter = Unreported()
    catalogue = load_catalogue(settings.catalogue_path)
    assert runtime.keyring is not None
    contacts = Contacts(store, runtime.keyring, lambda: catalogue)
    handlers = NotificationHandlers(
        store=store,
        waiting=Waiting.of_idea_events(room, runtime.dead_letters, runtime.topics),
        deliveries=queue,
        outcomes=reporter,
        renderer=Renderer(settings.templates_dir),
        catalogue=catalogue,
        contacts=contacts,
        settings=settings,
        done=done,
        clock=utc_now,
        repeats=runtime.metrics.idempotent_skips,
    )
    handle = {
        IdeaSubmitted: handlers.submitted,
        IdeaRouted: handlers.routed,
        IdeaStatusChanged: handlers.status_changed,
        IdeaEngagement: handlers.engagement,
        IdeaEdited: handlers.edited,
        IdeaAssigned: handlers.assigned,
        ChallengeOpened: handlers.challenge_opened,
    }
    topics = runtime.topics
    stream = stream or sys.stderr

    async def events_of(models: dict[str, type[Envelope[Any]]]) -> AsyncIterator[tuple[str, Envelope[Any]]]:
        """Every event of the topics from their beginning; unparseable records counted and skipped."""
        names = ", ".join(topic.removeprefix(settings.kafka.topic_prefix) for topic in models)
        reading = {"label": f"reading {names}", "progress": progress, "stream": stream}
        async for batch in read_event_batches(settings.kafka, models, malformed=result.malformed, **reading):
            for pair in batch:
                yield pair

    try:
        await topic_partitions(settings.kafka, [topics.submitted])  # Kafka answers before anything is forgotten
        await runtime.keyring.restore()  # the keys of people.keys.v1, and none that was tombstoned there
        result.forgotten_keys = await _forget(store, queue, done)
        secret = settings.unsubscribe_secret.get_secret_value()
        await queue.remove_addresses(runtime.keyring.pseudonym, secret)  # deliveries queued before pseudonyms

        erased: dict[str, float] = {}
        async for _, envelope in events_of({topics.people_erasures: ErasureRequestedEvent}):
            person, at = envelope.data.pseudonym, envelope.time.timestamp()
            erased[person] = max(at, erased.get(person, at))
            result.erasures += 1
        await _in_chunks(store.mark_erased(person, at) for person, at in erased.items())

        async for _, envelope in events_of({topics.preferences: PreferencesChangedEvent}):
            await handlers.preferences_changed(envelope)  # only those of people not erased since
            result.preferences += 1

        outcomes: dict[str, Outcome] = {}
        async for _, envelope in events_of({topics.notifications_sent: NotificationSentEvent}):
            sent = envelope.data
            outcome = Outcome(sent.channel, sent.outcome, sent.idea_id, sent.cause_event_id)
            outcomes[envelope.id] = outcome
            result.outcomes += 1
            # An outcome copied from .v1 by shared.migration keeps its id, which was derived from the address: the
            # notification it reports has another id now (from the pseudonym). Settle that one too, or its mail
            # would be sent a second time.
            now_named = {domain.notification_id(sent.cause_event_id, k, sent.recipient, sent.channel) for k in KINDS}
            if (day := _digest_day(outcome)) is not None:
                now_named.add(domain.digest_id(day, sent.recipient))
            if envelope.id not in now_named:
                outcomes.update(dict.fromkeys(now_named, outcome))
        await _in_chunks(_settle(notification_id, outcome, queue) for notification_id, outcome in outcomes.items())
        await queue.drop_settled()  # queued before, told since (or by an earlier rebuild): not again

        events = []
        async for topic, envelope in events_of({**topics.idea_events(), topics.challenges: ChallengeOpenedEvent}):
            result.events[topic] += 1
            events.append(envelope)
        events.sort(key=lambda e: (not isinstance(e.data, IdeaSubmitted), e.time))
        queued_before = await queue.size()
        label = "notifying again, silently"
        with tqdm(total=len(events), desc=label, unit="event", file=stream, disable=not progress) as bar:
            for envelope in events:
                try:
                    await handle[type(envelope.data)](envelope)
                except PermanentError:
                    result.refused[type(envelope.data).__name__] += 1
                bar.update(1)
        result.queued_again = await queue.size() - queued_before
        result.feed_items = reporter.in_app_delivered

        # What the periodic tasks did: deadline notices (their cause is derived, not an idea event) and digests.
        await _in_chunks(done.mark(cause) for cause in {o.cause_event_id for o in outcomes.values()})
        days = {day for o in outcomes.values() if (day := _digest_day(o)) is not None}
        await _in_chunks(store.mark_digest_done(day) for day in days)

        # Someone still erased keeps nothing: what the replay made of them without a key of theirs (an officer's
        # feed, their pending deliveries) goes, as the live erasure makes it go.
        for person in await contacts.erased(list(erased)):
            await store.forget_person(person, erased[person])
            await queue.drop_to(person)
            result.erased_people += 1
    finally:
        await runtime.redis.aclose()
    result.seconds = time.monotonic() - started
    return result


async def _forget(store: NotificationStore, queue: DeliveryQueue, done: Idempotency) -> int:
    """Delete what the rebuild brings back (the waiting room's keys are under the store's prefix too); the queue
    of deliveries still to make stays."""
    kept = {queue.jobs, queue.due}
    forgotten = await delete_matching(store.redis, store.key("*"), keep=kept.__contains__)
    return forgotten + await delete_matching(store.redis, done.key("*"))


async def _settle(notification_id: str, outcome: Outcome, queue: DeliveryQueue) -> None:
    """Mark what must not happen again: an e-mail or webhook with an outcome (delivered, given up or skipped by
    preference), and an in-app item that was not delivered (it must not appear in a feed now)."""
    if outcome.channel != "in-app":
        await queue.mark_given_up(notification_id)
    elif outcome.outcome is not DeliveryOutcome.DELIVERED:
        await queue.mark_delivered(notification_id)


def _digest_day(outcome: Outcome) -> date | None:
    """The day of a daily digest's outcome (its idea id is ``digest-<day>``), or None for any other."""
    if not outcome.idea_id.startswith(DIGEST_SUBJECT_PREFIX):
        return None
    try:
        return date.fromisoformat(outcome.idea_id.removeprefix(DIGEST_SUBJECT_PREFIX))
    except ValueError:
        return None


async def _in_chunks(calls: Iterable[Awaitable[Any]], size: int = 1000) -> None:
    """Await the calls, ``size`` at a time (their Redis commands share round trips)."""
    chunk: list[Awaitable[Any]] = []
    for call in calls:
        chunk.append(call)
        if len(chunk) >= size:
            await asyncio.gather(*chunk)
            chunk = []
    await asyncio.gather(*chunk)


def main(argv: list[str] | None = None) -> int:
    description = "Rebuild notifications' Redis state from the topics, sending nothing. Stop notifications first."
    return rebuild_command(
        argv, service="notifications", description=description, settings=NotificationsSettings(), rebuild=rebuild
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""In-memory fakes of notifications' ports (services/notifications/handlers.py and waiting.py): a publisher that
records what it was given per topic, notifications' store and waiting room over dicts with the same async
interface and the same rules as the Redis ones (store.py and waiting.py, with their Lua scripts), a delivery
queue that keeps what it was given, the idempotency marks, a dead-letter writer that records, and a clock that
stands still until told to move.

Every method yields to the event loop once before it reads or writes, as a Redis round trip would; each is atomic
after that yield, as each Lua script and command is.

``notifications()`` wires the real handlers to these fakes (and the real reporter, renderer, catalogue and
contacts, with the in-memory keyring of ``tests/fakes/common.py``), as the app's factory wires them to Redis and
Kafka. A person is their pseudonym everywhere in these fakes, as in Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from services.notifications.challenges import Place
from services.notifications.contacts import Contacts
from services.notifications.delivery.model import Delivery, DeliveryMetrics
from services.notifications.delivery.outcomes import Reporter
from services.notifications.domain import Contact, DeadlineClock, FeedItem, IdeaFacts, Preferences, current_state
from services.notifications.handlers import NotificationHandlers
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.store import TARGETS_RUNNING
from services.notifications.waiting import RELEASER_LEASE_S, Admission, Waiting
from shared.catalogue import Catalogue, load_catalogue
from shared.deadletter import DeadLetters
from shared.events import ChallengeOpened, Envelope, IdeaRouted, PreferencesChanged, RoutingTarget, Sealed
from shared.metrics import ServiceMetrics
from shared.topics import Topics
from tests.fakes.common import FakeKeyring, FakePublisher, FixedClock
from tests.support.notifications import People


async def _round_trip() -> None:
    await asyncio.sleep(0)


class FakeDone:
    """Idempotency marks by event id (``shared.idempotency.Idempotency``)."""

    def __init__(self) -> None:
        self.marked: set[str] = set()

    async def seen(self, event_id: str) -> bool:
        await _round_trip()
        return event_id in self.marked

    async def mark(self, event_id: str) -> None:
        await _round_trip()
        self.marked.add(event_id)


class RecordingDeadLetters:
    """Where waiting events that can never be handled go: (topic, value, key, error) in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None, BaseException]] = []

    async def dead_letter_value(self, topic: str, value: bytes, key: bytes | None, exc: BaseException) -> None:
        await _round_trip()
        self.records.append((topic, value, key, exc))


class FakeDeliveryQueue:
    """The retry queue's front: a delivery is queued once, unless it was delivered or given up before."""

    def __init__(self) -> None:
        self.queued: dict[str, Delivery] = {}
        self.delivered: set[str] = set()
        self.given_up: set[str] = set()

    async def enqueue(self, delivery: Delivery, *, at: float | None = None) -> bool:
        await _round_trip()
        if delivery.id in self.delivered or delivery.id in self.given_up or delivery.id in self.queued:
            return False
        self.queued[delivery.id] = delivery
        return True

    async def drop_to(self, person: str) -> int:
        await _round_trip()
        dropped = [d.id for d in self.queued.values() if d.recipient == person]
        for delivery_id in dropped:
            del self.queued[delivery_id]
        return len(dropped)

    async def redact_by(self, person: str) -> int:
        await _round_trip()
        quoting = [d for d in self.queued.values() if d.by == person]
        for delivery in quoting:
            self.queued[delivery.id] = delivery.redacted()
        return len(quoting)

    @property
    def deliveries(self) -> list[Delivery]:
        """Everything queued, in order."""
        return list(self.queued.values())

    def emails(self, kind: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if d.channel == "email" and (kind is None or d.kind == kind)]

    def webhooks(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.channel == "webhook"]


@dataclass
class _Idea:
    fields: dict[str, str] = field(default_factory=dict)
    followers: set[str] = field(default_factory=set)
    assignees: dict[str, str] = field(default_factory=dict)


class InMemoryNotificationStore:
    """services/notifications/store.py over dicts: the same methods, the same rules."""

    def __init__(self, feed_length: int = 500) -> None:
        self.feed_length = feed_length
        self.ideas: dict[str, _Idea] = defaultdict(_Idea)
        self.submitters: dict[str, Contact | None] = {}
        """The ideas whose submission has been seen (the waiting room asks), and their submitter if any."""
        self.open: dict[str, float] = {}
        self.prefs: dict[str, tuple[float, PreferencesChanged]] = {}
        self.subs: dict[str, set[str]] = defaultdict(set)
        self.delivered: set[str] = set()
        self.feeds: dict[str, list[dict]] = defaultdict(list)
        self.digests: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
        self.digests_done: set[str] = set()
        self.contacts: dict[str, Sealed] = {}
        self.erased: dict[str, float] = {}
        self.ideas_of: dict[str, set[str]] = defaultdict(set)
        self.where: dict[str, tuple[str, str | None, float]] = {}
        """person -> (organisation, unit, the time of the newest event that said so)"""
        self.places: dict[str, dict[str, float]] = defaultdict(dict)
        """'org:<org>' or 'unit:<org>:<unit>' -> person -> since when they are known there"""
        self.challenges: dict[str, tuple[ChallengeOpened, str]] = {}

    # --- ideas --------------------------------------------------------------------------------------

    async def remember_submission(
        self,
        idea_id: str,
        contact: Contact | None,
        *,
        title: str = "",
        language: str = "sv",
        at: datetime | None = None,
    ) -> None:
        await _round_trip()
        self.ideas[idea_id].fields.update(title=title, language=language)
        if at is not None:
            self.ideas[idea_id].fields["submitted_at"] = str(at.timestamp())
        self.submitters[idea_id] = contact
        if contact is not None:
            self.ideas_of[contact.person].add(idea_id)

    async def record_routing(self, idea_id: str, routed: IdeaRouted, event_id: str, at: datetime) -> None:
        await _round_trip()
        idea = self.ideas[idea_id].fields
        idea["organisations"] = json.dumps([t.model_dump(mode="json") for t in routed.organisations])
        idea["areas"] = json.dumps([a.area for a in routed.areas])
        if routed.title:
            idea["title"] = routed.title
        idea.setdefault("routed_at", str(at.timestamp()))
        idea.setdefault("routed_event_id", event_id)
        state = idea.get("state")
        if state is None or state in TARGETS_RUNNING:
            self.open.setdefault(idea_id, at.timestamp())

    async def record_state(self, idea_id: str, state: str) -> None:
        await _round_trip()
        self.ideas[idea_id].fields["state"] = state
        if state not in TARGETS_RUNNING:
            self.open.pop(idea_id, None)

    async def record_edit(self, idea_id: str, title: str, language: str) -> None:
        await _round_trip()
        self.ideas[idea_id].fields.update(title=title, language=language)

    async def record_assignment(self, idea_id: str, organisation: str, assignee: str | None) -> None:
        await _round_trip()
        if assignee is None:
            self.ideas[idea_id].assignees.pop(organisation, None)
        else:
            self.ideas[idea_id].assignees[organisation] = assignee

    async def add_follower(self, idea_id: str, person: str) -> None:
        await _round_trip()
        self.ideas[idea_id].followers.add(person)
        self.ideas_of[person].add(idea_id)

    async def facts(self, idea_id: str) -> IdeaFacts:
        await _round_trip()
        idea = self.ideas.get(idea_id, _Idea())
        return IdeaFacts(
            idea_id=idea_id,
            title=idea.fields.get("title", ""),
            language=idea.fields.get("language", "sv"),
            submitter=self.submitters.get(idea_id),
            organisations=tuple(RoutingTarget(**t) for t in json.loads(idea.fields.get("organisations", "[]"))),
            areas=tuple(json.loads(idea.fields.get("areas", "[]"))),
            followers=frozenset(idea.followers),
            state=idea.fields.get("state"),
            assignees=dict(idea.assignees),
        )

    async def deadline_clock(self, idea_id: str) -> DeadlineClock | None:
        await _round_trip()
        idea = self.ideas.get(idea_id, _Idea()).fields
        start = idea.get("submitted_at") or idea.get("routed_at")
        event_id = idea.get("routed_event_id")
        return DeadlineClock(float(start), event_id, current_state(idea.get("state"))) if start and event_id else None

    async def open_ideas(self, limit: int = 10_000) -> list[str]:
        await _round_trip()
        return [idea for idea, _ in sorted(self.open.items(), key=lambda item: (item[1], item[0]))][:limit]

    # --- challenges -------------------------------------------------------------------------------------

    async def remember_challenge(self, challenge: ChallengeOpened, event_id: str) -> None:
        await _round_trip()
        self.challenges[challenge.challenge_id] = (challenge, event_id)

    async def open_challenges(self) -> list[tuple[ChallengeOpened, str]]:
        await _round_trip()
        return sorted(self.challenges.values(), key=lambda c: (c[0].closes_at, c[0].challenge_id))

    async def challenge_closed(self, challenge_id: str) -> None:
        await _round_trip()
        self.challenges.pop(challenge_id, None)

    # --- where people work ---------------------------------------------------------------------------------

    @staticmethod
    def _place_keys(organisation: str, unit: str | None) -> list[str]:
        return [f"org:{organisation}", *([f"unit:{organisation}:{unit}"] if unit else [])]

    async def remember_where(self, person: str, organisation: str, unit: str | None, at: datetime) -> None:
        await _round_trip()
        when = float(f"{at.timestamp():.6f}")
        old = self.where.get(person)
        same = old is not None and old[:2] == (organisation, unit or None)
        if old is not None and old[2] > when and not same:
            return
        if old is not None and not same:
            for key in self._place_keys(old[0], old[1]):
                self.places[key].pop(person, None)
        for key in self._place_keys(organisation, unit):
            self.places[key][person] = min(self.places[key].get(person, when), when)
        if old is None or old[2] <= when:
            self.where[person] = (organisation, unit or None, when)

    async def known_people(self, places: tuple[Place, ...], until: datetime) -> set[str]:
        await _round_trip()
        keys = [f"unit:{p.organisation}:{p.unit}" if p.unit else f"org:{p.organisation}" for p in places]
        at = until.timestamp()
        return {person for key in keys for person, since in self.places.get(key, {}).items() if since <= at}

    # --- people: contacts and erasures -----------------------------------------------------------------

    async def remember_contact(self, person: str, sealed: Sealed) -> None:
        await _round_trip()
        self.contacts[person] = sealed

    async def contact(self, person: str) -> Sealed | None:
        await _round_trip()
        return self.contacts.get(person)

    async def erased_at(self, people: list[str]) -> dict[str, float]:
        await _round_trip()
        return {person: self.erased[person] for person in people if person in self.erased}

    async def mark_erased(self, person: str, at: float) -> None:
        await _round_trip()
        self.erased[person] = at

    async def forget_person(self, person: str, at: float) -> int:
        await _round_trip()
        self.erased[person] = max(at, self.erased.get(person, at))
        forgotten = sum(
            1 for found in (self.feeds.pop(person, None), self.contacts.pop(person, None)) if found is not None
        )
        if (current := self.prefs.pop(person, None)) is not None:
            forgotten += 1
            for key in self._subscriptions(current[1]):
                self.subs[key].discard(person)
        for idea_id in self.ideas_of.pop(person, set()):
            self.ideas[idea_id].followers.discard(person)
            if (submitter := self.submitters.get(idea_id)) is not None and submitter.person == person:
                self.submitters[idea_id] = None
            forgotten += 1
        for people in self.digests.values():
            forgotten += people.pop(person, None) is not None
        if (where := self.where.pop(person, None)) is not None:
            forgotten += 1
            for key in self._place_keys(where[0], where[1]):
                self.places[key].pop(person, None)
        # their words quoted in other people's feeds and digests read as removed
        quoting = [
            *self.feeds.values(),
            *(items.values() for people in self.digests.values() for items in people.values()),
        ]
        for items in quoting:
            for item in items:
                if item.get("by") == person:
                    item.update(text=item["removed"], by=None, removed=None)
                    forgotten += 1
        return forgotten

    # --- preferences ----------------------------------------------------------------------------------

    async def apply_preferences(self, changed: PreferencesChanged, at: datetime) -> bool:
        await _round_trip()
        version = float(f"{at.timestamp():.6f}")
        current = self.prefs.get(changed.person)
        if current is not None and current[0] > version:
            return False
        if current is not None:
            for key in self._subscriptions(current[1]):
                self.subs[key].discard(changed.person)
        for key in self._subscriptions(changed):
            self.subs[key].add(changed.person)
        self.prefs[changed.person] = (version, changed)
        self.contacts[changed.person] = changed.contact
        return True

    @staticmethod
    def _subscriptions(changed: PreferencesChanged) -> list[str]:
        return [f"area:{a}" for a in changed.areas] + [f"org:{o}" for o in changed.organisations]

    async def preferences(self, person: str) -> Preferences:
        return (await self.preferences_of([person]))[person]

    async def preferences_of(self, people: list[str]) -> dict[str, Preferences]:
        await _round_trip()
        return {
            person: Preferences.of(self.prefs[person][1]) if person in self.prefs else Preferences()
            for person in people
        }

    async def subscribers(self, areas: tuple[str, ...], organisations: tuple[str, ...]) -> set[str]:
        await _round_trip()
        keys = [f"area:{a}" for a in areas] + [f"org:{o}" for o in organisations]
        return set().union(*(self.subs.get(key, set()) for key in keys))

    # --- in-app feed ----------------------------------------------------------------------------------

    async def deliver_in_app(self, item: FeedItem) -> bool:
        await _round_trip()
        if item.notification_id in self.delivered:
            return False
        self.delivered.add(item.notification_id)
        feed = self.feeds[item.recipient]
        feed.insert(0, asdict(item))
        del feed[self.feed_length :]
        return True

    async def feed(self, person: str, limit: int) -> list[dict]:
        await _round_trip()
        shown = [{k: v for k, v in item.items() if k not in FeedItem.PRIVATE} for item in self.feeds.get(person, ())]
        return shown[:limit]

    # --- daily digests --------------------------------------------------------------------------------

    async def add_to_digest(self, day: date, item: FeedItem, language: str) -> None:
        await _round_trip()
        self.digests[day.isoformat()][item.recipient][item.notification_id] = {**asdict(item), "language": language}

    async def digest_people(self, day: date) -> list[str]:
        await _round_trip()
        return sorted(self.digests.get(day.isoformat(), {}))

    async def digest_items(self, day: date, person: str) -> list[dict]:
        await _round_trip()
        items = self.digests.get(day.isoformat(), {}).get(person, {}).values()
        return sorted(items, key=lambda item: (item["time"], item["notification_id"]))

    async def digest_done(self, day: date) -> bool:
        await _round_trip()
        return day.isoformat() in self.digests_done

    async def mark_digest_done(self, day: date) -> None:
        await _round_trip()
        self.digests_done.add(day.isoformat())


class InMemoryWaitingRoom:
    """services/notifications/waiting.py's ``RedisWaitingRoom`` over dicts. The submission counts as seen once the
    store knows the idea's submitter, as in Redis; the releaser's lease runs on ``clock`` (seconds)."""

    def __init__(self, store: InMemoryNotificationStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.waiting: dict[str, dict[str, str]] = {}
        self.since: dict[str, float] = {}
        self.releasers: dict[str, tuple[str, float]] = {}

    def releaser(self, idea_id: str) -> str | None:
        owner, until = self.releasers.get(idea_id, ("", 0.0))
        return owner if owner and until > self.clock() else None

    def _become_releaser(self, idea_id: str, owner: str) -> Admission:
        if (releaser := self.releaser(idea_id)) and releaser != owner:
            return Admission.WAIT
        self.releasers[idea_id] = (owner, self.clock() + RELEASER_LEASE_S)
        return Admission.RELEASE

    async def admit(self, idea_id: str, event_id: str, raw_event: Callable[[], str]) -> Admission:
        await _round_trip()
        seen = idea_id in self.store.submitters
        if seen and not self.waiting.get(idea_id):
            return Admission.HANDLE
        self.waiting.setdefault(idea_id, {})[event_id] = raw_event()
        self.since.setdefault(idea_id, self.clock())
        return self._become_releaser(idea_id, event_id) if seen else Admission.WAIT

    async def start_release(self, idea_id: str, *, owner: str) -> bool:
        await _round_trip()
        return bool(self.waiting.get(idea_id)) and self._become_releaser(idea_id, owner) == Admission.RELEASE

    async def held(self, idea_id: str) -> dict[str, str]:
        await _round_trip()
        return dict(self.waiting.get(idea_id, {}))

    async def let_go(self, idea_id: str, event_id: str) -> None:
        await _round_trip()
        self.waiting.get(idea_id, {}).pop(event_id, None)

    async def end_release(self, idea_id: str, *, owner: str) -> bool:
        await _round_trip()
        releaser = self.releaser(idea_id)
        if self.waiting.get(idea_id):
            if releaser and releaser != owner:
                return True
            self.releasers[idea_id] = (owner, self.clock() + RELEASER_LEASE_S)
            return False
        if releaser == owner:
            del self.releasers[idea_id]
        self.waiting.pop(idea_id, None)
        self.since.pop(idea_id, None)
        return True

    async def waiting_ideas(self) -> tuple[int, float | None]:
        await _round_trip()
        return len(self.since), min(self.since.values(), default=None)


# --- everything wired -------------------------------------------------------------------------------


@dataclass
class Notifications:
    """The real handlers on fakes, and the fakes to look at."""

    handlers: NotificationHandlers
    store: InMemoryNotificationStore
    room: InMemoryWaitingRoom
    queue: FakeDeliveryQueue
    publisher: FakePublisher
    dead_letters: RecordingDeadLetters
    done: FakeDone
    clock: FixedClock
    topics: Topics
    metrics: ServiceMetrics
    keyring: FakeKeyring
    contacts: Contacts
    people: People
    """Events naming people, sealed with ``keyring``."""

    def sent(self) -> list[Envelope[Any]]:
        """The NotificationSent events published, in order."""
        return self.publisher.on(self.topics.notifications_sent)

    def p(self, person: str) -> str:
        """The pseudonym of a person named by their address (a pseudonym stays itself)."""
        return self.keyring.pseudonym(person) if "@" in person else person

    def feed(self, person: str) -> list[dict]:
        """A person's in-app feed (by address or pseudonym), newest first."""
        return list(self.store.feeds.get(self.p(person), ()))


def notifications(
    *,
    now: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    catalogue: Catalogue | None = None,
    **settings: Any,
) -> Notifications:
    """Notifications' handlers as the app wires them, on in-memory fakes; ``settings`` override the defaults."""
    config = NotificationsSettings(**settings)
    clock = FixedClock(now)
    metrics = ServiceMetrics.create("notifications")
    topics = Topics()
    store = InMemoryNotificationStore(config.feed_length)
    room = InMemoryWaitingRoom(store, lambda: clock().timestamp())
    queue, publisher, dead_letters, done = FakeDeliveryQueue(), FakePublisher(), RecordingDeadLetters(), FakeDone()
    keyring = FakeKeyring()
    current = catalogue or load_catalogue(config.catalogue_path)
    contacts = Contacts(store, keyring, lambda: handlers.catalogue)  # type: ignore[arg-type]
    reporter = Reporter(
        publisher,
        sent_topic=topics.notifications_sent,
        dead_letter_topic=topics.notifications_dlq,
        dead_letters=DeadLetters(
            service="notifications", attempts=1, backoff_s=0, metrics=metrics, logger=logging.getLogger("notifications")
        ),
        metrics=DeliveryMetrics.create(metrics.registry),
        publish_timeout_s=1.0,
    )
    handlers = NotificationHandlers(
        store=store,  # type: ignore[arg-type]
        waiting=Waiting.of_idea_events(room, dead_letters, topics),
        deliveries=queue,
        outcomes=reporter,
        renderer=Renderer(config.templates_dir),
        catalogue=current,
        contacts=contacts,
        settings=config,
        done=done,
        clock=clock,
        repeats=metrics.idempotent_skips,
    )
    return Notifications(
        handlers,
        store,
        room,
        queue,
        publisher,
        dead_letters,
        done,
        clock,
        topics,
        metrics,
        keyring,
        contacts,
        People(keyring),
    )

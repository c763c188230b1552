"""People's rights at intake (issue 13): erasure (GDPR Art. 17) and the export of everything the platform holds
about a person (Art. 15 and 20). Intake is the door where people are sealed, so it is also where they are erased.

- ``POST /api/v1/people/me/erasure`` (the signed-in person) and ``POST /api/v1/people/{person}/erasure`` (an admin,
  for the person with that e-mail address) publish a :class:`PersonErasureRequested` on ``people.erasures.v1``
  (keyed by the pseudonym) and answer 202. An unknown person gets the same answer (nothing to tell an attacker) and
  nothing is erased; a repeat changes nothing.
- :meth:`People.forget` (intake's subscriber of ``people.erasures.v1``) tombstones the person's data key in
  ``people.keys.v1`` - every value sealed under it, in the whole history of every topic, can no longer be read -
  and forgets intake's own state about the pseudonym (support markers, Idempotency-Key records, the link from
  their ideas to them). Every other service forgets its own on its own subscription.
- ``GET /api/v1/people/me/export`` and ``GET /api/v1/people/{person}/export`` (admin) read the topics from their
  beginning (no consumer group) and give one JSON document: the person's ideas (with their edits and
  withdrawals), comments (decrypted), supports, follows, preferences (decrypted) and the notifications sent to
  them. Only what is sealed under the person's current key counts (a person who was erased and came back starts
  from nothing; an edit or withdrawal counts only with its idea), and of what is not sealed (the notifications)
  only what happened since that key was made. The scan is bounded (``INTAKE_EXPORT_TIMEOUT_S``);
  Kafka away is a 503 with Retry-After.
- :func:`closing_key_segments` writes a tombstone of the key ``-`` to ``people.keys.v1`` every half
  ``PEOPLE_KEYS_SEGMENT_MS``, so that the topic's active segment closes (and a tombstoned key is compacted away)
  within a bounded time even when nobody is given a key (``shared/topics.py`` states the bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, Field

from services.intake.errors import Forbidden
from services.intake.handlers import SOURCE, PeopleKeys
from services.intake.store import IntakeStore
from shared.deadletter import MALFORMED
from shared.events import (
    EditedEvent,
    EngagementEvent,
    EngagementKind,
    Envelope,
    ErasureRequestedEvent,
    IdeaState,
    NotificationSentEvent,
    PersonErasureRequested,
    PersonRef,
    PreferencesChangedEvent,
    StatusChangedEvent,
    SubmittedEvent,
    utc_now,
)
from shared.identity import Identity
from shared.keyring import KeyWriter
from shared.principal import Principal, Role
from shared.publishing import Publisher
from shared.sealing import DataKey, normalise_person
from shared.topics import PEOPLE_KEYS_SEGMENT_MS, Topics

KEYS_TICK_S = PEOPLE_KEYS_SEGMENT_MS / 2 / 1000
"""How often intake writes the tombstone of the key ``-`` to people.keys.v1 (half its segment.ms: 5 minutes)."""
TICK_KEY = "-"


class Record(Protocol):
    """A Kafka record as the export reads it (aiokafka's ConsumerRecord)."""

    topic: str
    key: bytes | None
    value: bytes | None


History = Callable[[Sequence[str]], AsyncIterator[list[Any]]]
"""Reads topics from their beginning to their end, in batches of records (``shared/replay.py read_batches``)."""


class ExportUnavailable(Exception):
    """Kafka could not be read (away, or slower than ``INTAKE_EXPORT_TIMEOUT_S``): 503 with Retry-After."""


# --- what the API answers -----------------------------------------------------------------------------------------


class ErasureAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_id: str = Field(description="Id of the PersonErasureRequested event on people.erasures.v1")
    detail: str = Field(description="What happens now")


class ExportedPerson(BaseModel):
    pseudonym: str = Field(description="How the platform's events name the person (HMAC of the e-mail address)")
    email: str = Field(description="The person's e-mail address")
    name: str | None = Field(default=None, description="The name the platform holds (sealed in their events)")
    key_created: datetime = Field(description="When the person's current data key was made")


class ExportedEdit(BaseModel):
    title: str = Field(description="The title after the person's edit")
    description: str = Field(description="The description after the person's edit")
    time: datetime


class ExportedWithdrawal(BaseModel):
    reason: str | None = Field(default=None, description="The reason the person gave, if any")
    time: datetime


class ExportedIdea(BaseModel):
    idea_id: str
    title: str = Field(description="The title as submitted (the edits follow)")
    description: str = Field(description="The description as submitted (the edits follow)")
    time: datetime
    channel: str
    organisation: str | None = None
    unit: str | None = None
    edits: list[ExportedEdit] = Field(default_factory=list, description="The person's corrections, oldest first")
    withdrawn: ExportedWithdrawal | None = Field(default=None, description="When the person withdrew it")


class ExportedComment(BaseModel):
    idea_id: str
    event_id: str
    text: str | None = Field(description="The comment, decrypted with the person's key")
    time: datetime


class ExportedEngagement(BaseModel):
    idea_id: str
    time: datetime


class ExportedPreferences(BaseModel):
    contact: dict[str, Any] | None = Field(description="The contact details, decrypted with the person's key")
    channels: list[str]
    frequency: str
    areas: list[str]
    organisations: list[str]
    language: str | None = None
    via: str
    time: datetime


class ExportedNotification(BaseModel):
    idea_id: str
    channel: str
    outcome: str
    time: datetime


class PersonExport(BaseModel):
    """Everything the platform holds about one person, read from Kafka (the record) and decrypted with the
    person's current key. Empty when the person has no key: never seen, or erased."""

    about: str = Field(
        default=(
            "Everything the Kiruna innovation platform holds about the person: their ideas (with their edits and "
            "withdrawals), comments, supports, follows, notification preferences and the notifications sent to "
            "them, read from the event log and "
            "decrypted with the person's current data key. Empty when the platform holds nothing (or the person "
            "was erased)."
        )
    )
    exported_at: datetime
    person: ExportedPerson | None = None
    ideas: list[ExportedIdea] = Field(default_factory=list)
    comments: list[ExportedComment] = Field(default_factory=list)
    supports: list[ExportedEngagement] = Field(default_factory=list)
    follows: list[ExportedEngagement] = Field(default_factory=list)
    preferences: ExportedPreferences | None = None
    notifications: list[ExportedNotification] = Field(default_factory=list)


# --- the export, from the records (pure) --------------------------------------------------------------------------


class Export:
    """Collects one person's records, fed in topic order (``add``), into a :class:`PersonExport`. Only values sealed
    under ``key`` (the person's current key) count; of the unsealed notifications only those since it was made."""

    def __init__(self, topics: Topics, key: DataKey, email: str) -> None:
        self.key = key
        self.email = email
        self.pseudonym = key.pseudonym
        self.parsers: dict[str, Callable[[Envelope[Any]], None]] = {
            topics.submitted: self._idea,
            topics.engagement: self._engagement,
            topics.preferences: self._preferences,
            topics.notifications_sent: self._notification,
            topics.edited: self._edit,
            topics.status_changed: self._withdrawal,
        }
        self.models: dict[str, type[Envelope[Any]]] = {
            topics.submitted: SubmittedEvent,
            topics.engagement: EngagementEvent,
            topics.preferences: PreferencesChangedEvent,
            topics.notifications_sent: NotificationSentEvent,
            topics.edited: EditedEvent,
            topics.status_changed: StatusChangedEvent,
        }
        self.preferences_topic = topics.preferences
        self.ideas: dict[str, ExportedIdea] = {}
        self.comments: dict[str, ExportedComment] = {}
        self.supports: dict[str, ExportedEngagement] = {}
        self.follows: dict[str, ExportedEngagement] = {}
        self.preferences: ExportedPreferences | None = None
        self.notifications: list[ExportedNotification] = []
        self.name: tuple[datetime, str] | None = None
        self.edits: dict[str, dict[str, ExportedEdit]] = {}
        """idea id -> the person's edits of it (by event id); kept for the ideas of theirs the export holds."""
        self.withdrawals: dict[str, ExportedWithdrawal] = {}

    @property
    def topics(self) -> list[str]:
        return list(self.parsers)

    def add(self, record: Record) -> None:
        if record.topic not in self.parsers:
            return
        if record.value is None:  # a tombstone: on the preferences, the person's preferences are forgotten
            if record.topic == self.preferences_topic and record.key == self.pseudonym.encode():
                self.preferences = None
            return
        try:
            envelope = self.models[record.topic].parse(record.value)
        except MALFORMED:
            return  # dead-lettered when it first arrived
        self.parsers[record.topic](envelope)

    def _mine(self, ref: PersonRef | None) -> bool:
        return ref is not None and ref.pseudonym == self.pseudonym and ref.sealed.key == self.key.key_id

    def _saw_name(self, ref: PersonRef, at: datetime) -> None:
        opened = self.key.open(ref.sealed)
        if opened is None:
            return
        try:
            name = json.loads(opened).get("name")
        except (ValueError, AttributeError):
            return
        if isinstance(name, str) and (self.name is None or at >= self.name[0]):
            self.name = (at, name)

    def _idea(self, envelope: Envelope[Any]) -> None:
        idea = envelope.data
        if not self._mine(idea.submitter):
            return
        self._saw_name(idea.submitter, envelope.time)
        self.ideas.setdefault(
            idea.idea_id,
            ExportedIdea(
                idea_id=idea.idea_id,
                title=idea.title,
                description=idea.description,
                time=envelope.time,
                channel=idea.channel,
                organisation=idea.submitter.organisation,
                unit=idea.submitter.unit,
            ),
        )

    def _engagement(self, envelope: Envelope[Any]) -> None:
        engagement = envelope.data
        if not self._mine(engagement.person):
            return
        self._saw_name(engagement.person, envelope.time)
        if engagement.kind is EngagementKind.COMMENT:
            text = self.key.open(engagement.text) if engagement.text is not None else None
            self.comments.setdefault(
                envelope.id,
                ExportedComment(idea_id=engagement.idea_id, event_id=envelope.id, text=text, time=envelope.time),
            )
        else:
            kept = self.supports if engagement.kind is EngagementKind.SUPPORT else self.follows
            kept.setdefault(envelope.id, ExportedEngagement(idea_id=engagement.idea_id, time=envelope.time))

    def _preferences(self, envelope: Envelope[Any]) -> None:
        preferences = envelope.data
        if preferences.person != self.pseudonym or preferences.contact.key != self.key.key_id:
            return
        contact = None
        opened = self.key.open(preferences.contact)
        if opened is not None:
            with contextlib.suppress(ValueError):
                contact = json.loads(opened)
        if isinstance(contact, dict) and isinstance(contact.get("name"), str):
            if self.name is None or envelope.time >= self.name[0]:
                self.name = (envelope.time, contact["name"])
        self.preferences = ExportedPreferences(
            contact=contact if isinstance(contact, dict) else None,
            channels=list(preferences.channels),
            frequency=preferences.frequency,
            areas=list(preferences.areas),
            organisations=list(preferences.organisations),
            language=preferences.language,
            via=preferences.via,
            time=envelope.time,
        )

    def _notification(self, envelope: Envelope[Any]) -> None:
        sent = envelope.data
        if sent.recipient != self.pseudonym or envelope.time < self.key.created:
            return
        self.notifications.append(
            ExportedNotification(
                idea_id=sent.idea_id, channel=sent.channel, outcome=sent.outcome.value, time=envelope.time
            )
        )

    def _edit(self, envelope: Envelope[Any]) -> None:
        edit = envelope.data
        if edit.edited_by == self.pseudonym:  # (of an idea under their current key: document() keeps only those)
            self.edits.setdefault(edit.idea_id, {})[envelope.id] = ExportedEdit(
                title=edit.title, description=edit.description, time=envelope.time
            )

    def _withdrawal(self, envelope: Envelope[Any]) -> None:
        change = envelope.data
        if change.to_state is IdeaState.WITHDRAWN and change.changed_by == self.pseudonym:
            self.withdrawals[change.idea_id] = ExportedWithdrawal(reason=change.reason, time=envelope.time)

    def _ideas(self) -> list[ExportedIdea]:
        return [
            idea.model_copy(
                update={
                    "edits": sorted(self.edits.get(idea.idea_id, {}).values(), key=lambda edit: edit.time),
                    "withdrawn": self.withdrawals.get(idea.idea_id),
                }
            )
            for idea in self.ideas.values()
        ]

    def document(self, exported_at: datetime) -> PersonExport:
        def by_time(items: Any) -> list[Any]:
            return sorted(items, key=lambda item: item.time)

        return PersonExport(
            exported_at=exported_at,
            person=ExportedPerson(
                pseudonym=self.pseudonym,
                email=self.email,
                name=self.name[1] if self.name else None,
                key_created=self.key.created,
            ),
            ideas=by_time(self._ideas()),
            comments=by_time(self.comments.values()),
            supports=by_time(self.supports.values()),
            follows=by_time(self.follows.values()),
            preferences=self.preferences,
            notifications=by_time(self.notifications),
        )


# --- the use cases --------------------------------------------------------------------------------------------------


class People:
    """Erasure and export over narrow ports: the publisher, intake's store, the keyring, and the history (the
    topics read from their beginning)."""

    def __init__(
        self,
        publisher: Publisher,
        store: IntakeStore,
        keyring: PeopleKeys,
        *,
        topics: Topics,
        history: History,
        export_timeout_s: float,
        exports_at_once: int = 2,
        clock: Callable[[], datetime] = utc_now,
        logger: logging.Logger | None = None,
    ) -> None:
        self.publisher = publisher
        self.store = store
        self.keyring = keyring
        self.topics = topics
        self.history = history
        self.export_timeout_s = export_timeout_s
        self.exports = asyncio.Semaphore(exports_at_once)
        self.clock = clock
        self.logger = logger or logging.getLogger("intake")

    async def request_erasure(
        self, email: str, *, admin: Principal | None = None, correlation_id: str | None = None
    ) -> str:
        """Publish the erasure of the person with this address (known or not: the same answer either way)."""
        pseudonym = self.keyring.pseudonym(email)
        event = PersonErasureRequested(
            pseudonym=pseudonym,
            requested_by="admin" if admin is not None else "person",
            admin=admin.id if admin is not None else None,
        )
        envelope = Envelope.wrap(event, source=SOURCE, correlation_id=correlation_id, time=self.clock())
        await self.publisher.publish(self.topics.people_erasures, envelope)
        self.logger.info(
            "erasure requested",
            extra={"pseudonym": pseudonym, "requested_by": event.requested_by, "event_id": envelope.id},
        )
        return envelope.id

    async def forget(self, envelope: ErasureRequestedEvent) -> None:
        """Handle one erasure: tombstone the person's key (unless the person came back after the request: their
        new key is not the one asked to be erased), forget intake's state about them. A repeat changes nothing."""
        pseudonym = envelope.data.pseudonym
        current = await self.keyring.current(pseudonym)
        if current is not None and current.created > envelope.time:
            self.logger.info(
                "erasure older than the person's current key: they came back since; their new key stays",
                extra={"pseudonym": pseudonym, "event_id": envelope.id},
            )
            return
        had_key = await self.keyring.erase(pseudonym)
        forgotten = await self.store.forget_person(pseudonym)
        self.keyring.forget_cached(pseudonym)
        self.logger.info(
            "person erased",
            extra={
                "pseudonym": pseudonym,
                "had_key": had_key,
                "forgotten": forgotten,
                "requested_by": envelope.data.requested_by,
                "event_id": envelope.id,
            },
        )

    async def export(self, email: str) -> PersonExport:
        """Everything the platform holds about the person with this address (see :class:`Export`)."""
        email = normalise_person(email)
        key = await self.keyring.current(self.keyring.pseudonym(email))
        if key is None:
            return PersonExport(exported_at=self.clock())
        collected = Export(self.topics, key, email)
        try:
            async with asyncio.timeout(self.export_timeout_s), self.exports:
                async with contextlib.aclosing(self.history(collected.topics)) as batches:
                    async for batch in batches:
                        for record in batch:
                            collected.add(record)
        except TimeoutError as exc:
            raise ExportUnavailable(
                f"reading the event log took longer than {self.export_timeout_s:g} s (INTAKE_EXPORT_TIMEOUT_S)"
            ) from exc
        except (KafkaError, OSError) as exc:
            raise ExportUnavailable(f"Kafka could not be read: {type(exc).__name__}") from exc
        return collected.document(self.clock())


# --- people.keys.v1 kept compacting ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def closing_key_segments(
    writer: KeyWriter,
    *,
    connected: asyncio.Event | None = None,
    interval_s: float = KEYS_TICK_S,
    timeout_s: float = 30.0,
    logger: logging.Logger | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """While the block runs, write a tombstone of the key ``-`` to people.keys.v1 (once Kafka is ``connected``,
    then every ``interval_s``): a write closes the topic's active segment once it is ``segment.ms`` old, so the
    cleaner can compact a tombstoned key away. A failure is logged and tried again at the next tick."""
    log = logger or logging.getLogger("intake")

    async def tick() -> None:
        if connected is not None:
            await connected.wait()
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    await writer.tombstone(TICK_KEY)
            except Exception as exc:
                log.warning(
                    "could not write the people.keys.v1 tick; compaction of erased keys waits for the next one",
                    extra={"error": repr(exc), "retry_in_s": interval_s},
                )
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(tick(), name="intake-people-keys-tick")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the HTTP side ----------------------------------------------------------------------------------------------------

PersonAddress = Annotated[
    str,
    Path(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s/]+@[^@\s/]+\.[^@\s/]+$",
        description="The person's e-mail address (how the platform keys a person)",
        examples=["anna.svensson@kiruna.se"],
    ),
]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=100)]
ERASURE_DETAIL = (
    "The erasure is requested. The person's data key is destroyed, so their name, e-mail address and comments can "
    "no longer be read anywhere in the platform's history, and every service forgets what it holds about them "
    "(feeds, preferences, follows, support markers) and stops sending to them. Their ideas stay as the "
    "organisation's record, shown as by a former employee; their comments are shown as removed; counts stay. "
    "If the platform holds nothing about the person, nothing is erased."
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token (or session)"},
    403: {"description": "Signed in, but not allowed: another person's data needs the role admin"},
    422: {"description": "The address is not an e-mail address"},
    503: {"description": "Kafka (or Redis) is unavailable; nothing was done. See Retry-After"},
}


def address_of(principal: Principal) -> str:
    if not principal.email:
        raise Forbidden("your sign-in carries no e-mail address, which the platform names people by")
    return principal.email


def people_router(people: People, identity: Identity) -> APIRouter:
    router = APIRouter(prefix="/api/v1/people", tags=["people"], responses=RESPONSES)
    admin = identity.role(Role.ADMIN)

    @router.post(
        "/me/erasure",
        status_code=202,
        response_model=ErasureAccepted,
        summary="Erase me: forget the signed-in person everywhere (GDPR Art. 17)",
    )
    async def erase_me(
        principal: Principal = Depends(identity.required), correlation_id: CorrelationId = None
    ) -> ErasureAccepted:
        """Answers 202 once the request is stored in Kafka (`people.erasures.v1`); every service then forgets the
        person. Their ideas stay, as by a former employee. Asking again changes nothing."""
        event_id = await people.request_erasure(address_of(principal), correlation_id=correlation_id)
        return ErasureAccepted(event_id=event_id, detail=ERASURE_DETAIL)

    @router.post(
        "/{person}/erasure",
        status_code=202,
        response_model=ErasureAccepted,
        summary="Erase a person on their request (admins): forget them everywhere",
    )
    async def erase_person(
        person: PersonAddress, principal: Principal = Depends(admin), correlation_id: CorrelationId = None
    ) -> ErasureAccepted:
        """The same as `POST /api/v1/people/me/erasure`, by an admin acting on a person's request; the event
        names the admin. A person the platform does not know gets the same 202, and nothing is erased."""
        event_id = await people.request_erasure(person, admin=principal, correlation_id=correlation_id)
        return ErasureAccepted(event_id=event_id, detail=ERASURE_DETAIL)

    @router.get(
        "/me/export",
        response_model=PersonExport,
        summary="My data: everything the platform holds about the signed-in person (GDPR Art. 15 and 20)",
    )
    async def export_me(principal: Principal = Depends(identity.required)) -> PersonExport:
        """One JSON document, read from the event log and decrypted with the person's key: their ideas, comments,
        supports, follows, preferences and the notifications sent to them. Empty after an erasure."""
        return await people.export(address_of(principal))

    @router.get(
        "/{person}/export",
        response_model=PersonExport,
        summary="A person's data, on their request (admins)",
    )
    async def export_person(person: PersonAddress, principal: Principal = Depends(admin)) -> PersonExport:
        """The same document as `GET /api/v1/people/me/export`, for the person with this e-mail address."""
        return await people.export(person)

    return router

"""Event contracts: one frozen pydantic model per event type, wrapped in a CloudEvents 1.0 envelope.

Events are serialised as structured-mode CloudEvents JSON, so any Kafka client can read them.
Consumers tolerate unknown fields (``extra="ignore"``): additive changes never break them. A breaking change makes
a ``.v2`` type and topic; the ``.v1`` contracts stay readable in ``shared/events_v1.py`` (what ``python -m
shared.migration`` copies from). Personal fields are :class:`Sealed` under their person's data key.
An event produced in reaction to another gets a deterministic id from :func:`derived_event_id`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

EVENT_NAMESPACE = uuid.UUID("6f1d3c52-2a55-4c39-9a8e-6f3b0e7d9a11")
"""UUIDv5 namespace of the platform: derived ids are uuid5(EVENT_NAMESPACE, '<cause id>:<handler>')."""

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


def derived_event_id(cause_id: str, handler: str) -> str:
    """The id of an effect caused by event ``cause_id`` in ``handler``: the same cause always yields the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{cause_id}:{handler}"))


def utc_now() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every payload: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    subject_field: ClassVar[str] = "idea_id"
    """The payload field that becomes the envelope's ``subject`` and the Kafka key (an idea id unless said)."""


class IdeaState(StrEnum):
    """The lifecycle of an idea (DESIGN.md, 'Idea lifecycle')."""

    SUBMITTED = "submitted"
    ROUTED = "routed"
    ACKNOWLEDGED = "acknowledged"
    IN_ASSESSMENT = "in-assessment"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PILOT = "in-pilot"
    IMPLEMENTED = "implemented"
    SPREAD = "spread"
    MERGED = "merged"
    WITHDRAWN = "withdrawn"


class Sealed(Contract):
    """A personal value encrypted (AES-256-GCM) under its person's data key (``shared/sealing.py``). Readable only
    while the key exists in ``people.keys.v1``: erasing the key erases the value from the whole history."""

    key: str = Field(description="Id of the person's data key: '<pseudonym>.<12 hex digits>'")
    box: str = Field(description="base64url of the 12-byte nonce followed by the ciphertext and its tag")


class PersonRef(Contract):
    """A person in an event: their pseudonym in the clear (counts, "once per person", ordering need only that) and
    who they are (``{"name", "email"}`` as JSON) sealed under their data key."""

    pseudonym: str = Field(description="HMAC-SHA256 of the e-mail address with the platform's secret pepper (hex)")
    sealed: Sealed = Field(description='{"name": ..., "email": ...} sealed under the person\'s data key')
    organisation: str | None = Field(default=None, description="Organisation id from the catalogue")
    unit: str | None = Field(default=None, description="Unit id within the organisation")


class IdeaSubmitted(Contract):
    """A new idea has been accepted by intake and stored in Kafka."""

    idea_id: str = Field(description="Id of the idea (UUID); also the Kafka key and the envelope subject")
    title: str = Field(description="Short title written by the submitter (intake accepts 3-200 characters)")
    description: str = Field(description="The idea in the submitter's words (intake accepts up to 10,000 characters)")
    language: Literal["sv", "en"] = Field(default="sv", description="Language of the text")
    area_hints: tuple[str, ...] = Field(default=(), description="Areas the submitter suggested")
    organisation_hints: tuple[str, ...] = Field(default=(), description="Organisations the submitter suggested")
    anonymous: bool = Field(default=False, description="True when no personal data is kept")
    submitter: PersonRef | None = Field(default=None, description="The submitter; null for anonymous ideas")
    channel: str = Field(default="api", description="Front end the idea came through: api, web, email, kafka")
    challenge_id: str | None = Field(
        default=None, description="The challenge (ChallengeOpened.challenge_id) this idea answers, if any"
    )


class RoutingTarget(Contract):
    """One organisation (and optionally unit) an idea was routed to."""

    organisation: str = Field(description="Organisation id from the catalogue")
    unit: str | None = Field(default=None, description="Unit id within the organisation, when known")
    score: float = Field(default=0.0, description="Strength of the match (higher is stronger)")


class AreaMatch(Contract):
    """One thematic area an idea was placed in."""

    area: str = Field(description="Area id from the catalogue")
    score: float = Field(default=0.0, description="Strength of the match (higher is stronger)")


class IdeaRouted(Contract):
    """Routing has placed the idea with one or more organisations and areas (or sent it to triage)."""

    idea_id: str = Field(description="Id of the idea")
    title: str = Field(default="", description="Title of the idea, so an organisation's system need not look it up")
    organisations: tuple[RoutingTarget, ...] = Field(description="Organisations (and units) responsible")
    areas: tuple[AreaMatch, ...] = Field(default=(), description="Thematic areas of the idea")
    reason: str = Field(description="Human-readable reason, e.g. \"'fjärrvärmen' -> klimat-och-energi -> ...\"")
    triage: bool = Field(default=False, description="True when no rule matched and the innovation office must place it")
    catalogue_version: str = Field(default="", description="Version of the catalogue the decision used")
    rerouted_by: str | None = Field(default=None, description="Person who re-routed the idea, if this is a re-route")


class IdeaStatusChanged(Contract):
    """An officer moved the idea through its lifecycle."""

    idea_id: str = Field(description="Id of the idea")
    from_state: IdeaState | None = Field(default=None, description="State before the change, when known")
    to_state: IdeaState = Field(description="State after the change")
    reason: str | None = Field(
        default=None,
        description="Reason the submitter can read (required for declined and merged; optional for withdrawn)",
    )
    changed_by: str = Field(
        description="Who made the change: an officer's id, or for withdrawn the submitter's pseudonym"
    )
    organisation: str | None = Field(default=None, description="Organisation of the officer")
    merged_into: str | None = Field(default=None, description="Target idea id when to_state is merged")


class EngagementKind(StrEnum):
    COMMENT = "comment"
    SUPPORT = "support"
    FOLLOW = "follow"


class IdeaEngagement(Contract):
    """Someone commented on, supported or followed an idea."""

    idea_id: str = Field(description="Id of the idea")
    kind: EngagementKind = Field(description="comment, support or follow")
    person: PersonRef = Field(description="The person engaging")
    text: Sealed | None = Field(default=None, description="Comment text (for comments), sealed under the person's key")
    anonymous: bool = Field(
        default=False, description="The person chose to be shown as 'anonym' (their name is never shown with it)"
    )
    official: str | None = Field(
        default=None,
        description="A comment written as an officer of this organisation (one of the idea's, or the innovation "
        "office's): an officer's answer, shown as such",
    )


class IdeaEdited(Contract):
    """The submitter corrected the title or description of their idea before an officer acknowledged it. The
    history keeps both versions: the earlier one is in the idea's earlier events. Routing places the idea anew."""

    idea_id: str = Field(description="Id of the idea")
    title: str = Field(description="The new title (3-200 characters)")
    description: str = Field(description="The new description (up to 10,000 characters)")
    language: Literal["sv", "en"] = Field(default="sv", description="Language of the new text")
    edited_by: str = Field(description="Pseudonym of the submitter who edited it")


class IdeaAssigned(Contract):
    """An officer gave the idea to one named officer of an organisation that owns it (or took it back): "who has
    this?" has one answer per organisation. A reassignment is a new event; the timeline keeps each."""

    idea_id: str = Field(description="Id of the idea")
    organisation: str = Field(description="The organisation (of the idea's) the assignment is for")
    assignee: str | None = Field(description="Id of the officer (from the catalogue's officers) or null: unassigned")
    previous: str | None = Field(default=None, description="Who had it before, when known")
    assigned_by: str = Field(description="Id of the officer who assigned it")


class ChallengeAudience(Contract):
    """Who a challenge asks: an organisation, or one unit of it."""

    organisation: str = Field(description="Organisation id from the catalogue")
    unit: str | None = Field(default=None, description="Unit id within the organisation, or null for all of it")


class ChallengeOpened(Contract):
    """An officer (for their organisation) or the innovation office (for the group) asks the staff for ideas on a
    question. The challenge takes answers until ``closes_at`` and closes by itself then (no event: the time is the
    rule). Its ideas carry ``IdeaSubmitted.challenge_id``. Keyed by the challenge id."""

    subject_field: ClassVar[str] = "challenge_id"

    challenge_id: str = Field(description="Id of the challenge (UUID); also the Kafka key and the envelope subject")
    question: str = Field(description="The question asked (intake accepts 10-300 characters)")
    description: str = Field(default="", description="What the asking organisation wants to know (up to 5,000)")
    organisation: str = Field(description="The organisation that asks (innovationsplattformen for the group)")
    audience: tuple[ChallengeAudience, ...] = Field(
        default=(), description="Who is asked (organisations or units); empty: the whole group"
    )
    areas: tuple[str, ...] = Field(default=(), description="Areas from the catalogue the question is about")
    opens_at: datetime = Field(description="When it opened (UTC)")
    closes_at: datetime = Field(description="When it stops taking answers (UTC)")
    opened_by: str = Field(description="Id of the officer who opened it")
    language: Literal["sv", "en"] = Field(default="sv", description="Language of the question")


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


class NotificationSent(Contract):
    """A notification about an idea was delivered (or failed, or was skipped by preference)."""

    idea_id: str = Field(description="Id of the idea the notification is about")
    cause_event_id: str = Field(description="Id of the event that caused the notification")
    recipient: str = Field(
        description="Pseudonym of the person told (never their address); 'webhook:<organisation>' for a webhook"
    )
    channel: Literal["in-app", "email", "webhook"] = Field(description="Channel used")
    outcome: DeliveryOutcome = Field(description="delivered, failed or skipped")
    detail: str | None = Field(default=None, description="Why it failed or was skipped")


class RerouteIdea(Contract):
    """Command to routing: replace the routing of an idea."""

    idea_id: str = Field(description="Id of the idea")
    organisations: tuple[RoutingTarget, ...] = Field(description="New organisations (and units)", min_length=1)
    areas: tuple[AreaMatch, ...] = Field(default=(), description="New areas")
    requested_by: str = Field(description="Person who asked for the re-route")
    reason: str = Field(description="Why the idea is re-routed", min_length=1)


class PreferencesChanged(Contract):
    """A person changed how they want to hear about ideas. The whole new state, not a difference: the last
    event of a person is their preferences. The envelope's subject (and the Kafka key) is the person's pseudonym."""

    subject_field: ClassVar[str] = "person"

    person: str = Field(description="Pseudonym of the person (HMAC-SHA256 of the e-mail address with the pepper)")
    contact: Sealed = Field(description='{"email": ..., "name": ...} sealed under the person\'s data key')
    channels: tuple[Literal["email", "in-app"], ...] = Field(
        default=("email", "in-app"), description="Channels the person wants news on"
    )
    frequency: Literal["immediate", "daily"] = Field(
        default="immediate", description="E-mail at once, or one daily digest"
    )
    areas: tuple[str, ...] = Field(default=(), description="Areas whose new ideas and decisions the person follows")
    organisations: tuple[str, ...] = Field(default=(), description="Organisations the person follows")
    language: Literal["sv", "en"] | None = Field(default=None, description="Language of the news; null: Swedish")
    via: Literal["api", "unsubscribe"] = Field(default="api", description="How the change was made")


class PersonKey(Contract):
    """A person's data key, wrapped by the key-encryption key. ``people.keys.v1`` is compacted and keyed by the
    pseudonym: the last record of a person is their key; a tombstone (null value) erases it."""

    subject_field: ClassVar[str] = "pseudonym"

    pseudonym: str = Field(description="The person's pseudonym; also the Kafka key")
    key_id: str = Field(description="'<pseudonym>.<12 hex digits>', named by every value sealed under the key")
    wrapped: str = Field(description="base64url of the nonce and the AES-256-GCM-wrapped data key")
    kek_id: str = Field(description="Which key-encryption key wrapped it (an HMAC of a fixed label, 16 hex)")
    created: datetime = Field(description="When the key was made")


class PersonErasureRequested(Contract):
    """A person (or an admin for them) asked that the platform forget them (GDPR Art. 17). Every service forgets
    what it holds about the pseudonym; intake tombstones the data key. Nothing personal is in the event."""

    subject_field: ClassVar[str] = "pseudonym"

    pseudonym: str = Field(description="Pseudonym of the person to erase; also the Kafka key")
    requested_by: Literal["person", "admin"] = Field(description="The person themself, or an admin for them")
    admin: str | None = Field(default=None, description="Id of the admin who acted on the request, if one did")


PayloadT = TypeVar("PayloadT", bound=Contract)


class Envelope(BaseModel, Generic[PayloadT]):
    """CloudEvents 1.0 structured-mode envelope around one payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="Unique event id (UUID); consumers de-duplicate on it")
    source: str = Field(description="Service that produced the event, e.g. /services/intake")
    type: str = Field(description="Event type, e.g. se.kiruna.innovation.idea.submitted.v1")
    time: datetime = Field(description="When the event happened (UTC)")
    subject: str = Field(description="Idea id the event is about (a person's pseudonym for the people's events)")
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: str | None = Field(default=None, description="Id shared by every event of one request chain")
    data: PayloadT

    @classmethod
    def wrap(
        cls,
        payload: PayloadT,
        *,
        source: str,
        event_id: str | None = None,
        correlation_id: str | None = None,
        time: datetime | None = None,
    ) -> Envelope[PayloadT]:
        return Envelope[type(payload)](  # type: ignore[misc]
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=event_type(type(payload)),
            time=time or utc_now(),
            subject=getattr(payload, payload.subject_field),
            correlationid=correlation_id,
            data=payload,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def parse(cls, raw: bytes | str | dict[str, Any]) -> Self:
        if isinstance(raw, dict):
            return cls.model_validate(raw)
        return cls.model_validate_json(raw)


_TYPE_NAMES: dict[type[Contract], str] = {
    IdeaSubmitted: "se.kiruna.innovation.idea.submitted.v2",
    IdeaRouted: "se.kiruna.innovation.idea.routed.v1",
    IdeaStatusChanged: "se.kiruna.innovation.idea.status-changed.v1",
    IdeaEngagement: "se.kiruna.innovation.idea.engagement.v2",
    NotificationSent: "se.kiruna.innovation.notification.sent.v2",
    RerouteIdea: "se.kiruna.innovation.command.reroute-idea.v1",
    PreferencesChanged: "se.kiruna.innovation.notification.preferences-changed.v2",
    PersonKey: "se.kiruna.innovation.person.key.v1",
    PersonErasureRequested: "se.kiruna.innovation.person.erasure-requested.v1",
    IdeaEdited: "se.kiruna.innovation.idea.edited.v1",
    IdeaAssigned: "se.kiruna.innovation.idea.assigned.v1",
    ChallengeOpened: "se.kiruna.innovation.challenge.opened.v1",
}
PAYLOAD_BY_TYPE: dict[str, type[Contract]] = {name: model for model, name in _TYPE_NAMES.items()}


def event_type(model: type[Contract]) -> str:
    return _TYPE_NAMES[model]


SubmittedEvent = Envelope[IdeaSubmitted]
RoutedEvent = Envelope[IdeaRouted]
StatusChangedEvent = Envelope[IdeaStatusChanged]
EngagementEvent = Envelope[IdeaEngagement]
NotificationSentEvent = Envelope[NotificationSent]
RerouteCommand = Envelope[RerouteIdea]
PreferencesChangedEvent = Envelope[PreferencesChanged]
PersonKeyEvent = Envelope[PersonKey]
ErasureRequestedEvent = Envelope[PersonErasureRequested]
EditedEvent = Envelope[IdeaEdited]
AssignedEvent = Envelope[IdeaAssigned]
ChallengeOpenedEvent = Envelope[ChallengeOpened]

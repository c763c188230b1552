"""The ``.v1`` contracts of the events that became ``.v2`` when personal fields were sealed (issue 13). Kept so
that a ``.v1`` history stays readable during the move: ``python -m shared.migration`` reads these and writes the
``.v2`` events. New code neither writes nor reads them otherwise.

The events that did not change (routed, status-changed, the reroute command) stay ``.v1`` in ``shared/events.py``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.events import Contract, DeliveryOutcome, EngagementKind, Envelope


class Submitter(Contract):
    """Who submitted the idea, in the clear (v1). Absent on anonymous ideas."""

    name: str = Field(description="Full name of the employee", max_length=200)
    email: str | None = Field(default=None, description="E-mail address for replies", max_length=320)
    organisation: str | None = Field(default=None, description="Organisation id from the catalogue")
    unit: str | None = Field(default=None, description="Unit id within the organisation")


class IdeaSubmittedV1(Contract):
    idea_id: str
    title: str
    description: str
    language: Literal["sv", "en"] = "sv"
    area_hints: tuple[str, ...] = ()
    organisation_hints: tuple[str, ...] = ()
    anonymous: bool = False
    submitter: Submitter | None = None
    channel: str = "api"


class IdeaEngagementV1(Contract):
    idea_id: str
    kind: EngagementKind
    person: str = Field(description="The person's e-mail address (v1)")
    text: str | None = Field(default=None, max_length=5_000)


class NotificationSentV1(Contract):
    idea_id: str
    cause_event_id: str
    recipient: str = Field(description="The recipient's address or person id (v1)")
    channel: Literal["in-app", "email", "webhook"]
    outcome: DeliveryOutcome
    detail: str | None = None


class PreferencesChangedV1(Contract):
    subject_field: ClassVar[str] = "person"

    person: str = Field(description="The lower-cased e-mail address (v1)", max_length=320)
    channels: tuple[Literal["email", "in-app"], ...] = ("email", "in-app")
    frequency: Literal["immediate", "daily"] = "immediate"
    areas: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    language: Literal["sv", "en"] | None = None
    via: Literal["api", "unsubscribe"] = "api"


V1_TYPES: dict[type[Contract], str] = {
    IdeaSubmittedV1: "se.kiruna.innovation.idea.submitted.v1",
    IdeaEngagementV1: "se.kiruna.innovation.idea.engagement.v1",
    NotificationSentV1: "se.kiruna.innovation.notification.sent.v1",
    PreferencesChangedV1: "se.kiruna.innovation.notification.preferences-changed.v1",
}

SubmittedEventV1 = Envelope[IdeaSubmittedV1]
EngagementEventV1 = Envelope[IdeaEngagementV1]
NotificationSentEventV1 = Envelope[NotificationSentV1]
PreferencesChangedEventV1 = Envelope[PreferencesChangedV1]

"""What the JSON API accepts. Strict at the door: every refusal names the field and the rule."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from shared.events import IdeaState, Slug

UUID_PATTERN = r"^[0-9a-fA-F-]{36}$"
ChallengeId = Annotated[str, Field(pattern=UUID_PATTERN, examples=["7d3c1f0e-5b2a-4e8f-9c6d-2a1b0e9f8d7c"])]


class SubmitterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, description="Full name")
    email: EmailStr | None = Field(
        default=None,
        description="Where replies go; required for a named idea (intake keys the submitter by it and seals both "
        "name and address under the person's data key)",
    )
    organisation: Slug | None = Field(default=None, description="Organisation id, e.g. tekniska-verken")
    unit: Slug | None = Field(default=None, description="Unit id, e.g. energi")


class IdeaText(BaseModel):
    """What every new idea says, whichever door it comes through."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=3, max_length=200, description="Short title, 3-200 characters")
    description: str = Field(default="", max_length=10_000, description="The idea, up to 10,000 characters")
    language: Literal["sv", "en"] | None = Field(default=None, description="sv or en; detected when absent")
    area_hints: list[Slug] = Field(default_factory=list, max_length=10, description="Suggested area ids")
    organisation_hints: list[Slug] = Field(default_factory=list, max_length=10, description="Suggested organisations")
    anonymous: bool = Field(default=False, description="True: no personal data is kept")
    challenge_id: ChallengeId | None = Field(
        default=None, description="The open challenge this idea answers (its areas and organisation join the hints)"
    )


class IdeaIn(IdeaText):
    """A new idea with its submitter, as intake records it (the e-mail and Kafka doors give the submitter)."""

    submitter: SubmitterIn | None = Field(default=None, description="Required unless anonymous")
    channel: Literal["api", "web", "email", "kafka", "app"] = Field(default="api", description="Front end used")

    @model_validator(mode="after")
    def _submitter_matches_anonymity(self) -> IdeaIn:
        if self.anonymous and self.submitter is not None:
            raise ValueError("submitter: leave it out when anonymous is true (no personal data is kept)")
        if not self.anonymous and self.submitter is None:
            raise ValueError("submitter: required unless anonymous is true")
        return self


class NewIdeaIn(IdeaText):
    """A new idea through the JSON API or the web form. The submitter is the signed-in person (the bearer token or
    the session), never the body; an anonymous idea keeps nothing personal."""

    channel: Literal["api", "web", "app"] = Field(default="api", description="Front end used")
    submitter: None = Field(
        default=None,
        description="Not accepted: the submitter is the person of the bearer token",
        json_schema_extra={"deprecated": True},
    )

    @field_validator("submitter", mode="before")
    @classmethod
    def _no_submitter_in_body(cls, value: object) -> None:
        if value is not None:
            raise ValueError("leave it out: the submitter is the signed-in person of the bearer token")
        return None


class RoutingTargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: Slug = Field(description="Organisation id")
    unit: Slug | None = Field(default=None, description="Unit id")


class IdeaAccepted(BaseModel):
    idea_id: str = Field(description="Id of the new idea")
    event_id: str = Field(description="Id of the IdeaSubmitted event")
    status: Literal["submitted"] = "submitted"
    status_url: str = Field(description="Public page where the submitter follows the idea")


class StatusChangeIn(BaseModel):
    """An officer moves an idea through its lifecycle."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to_state: IdeaState = Field(description="The new state")
    reason: str | None = Field(
        default=None, max_length=2_000, description="Reason the submitter can read; required for declined and merged"
    )
    merged_into: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F-]{36}$", description="The idea this one duplicates (for merged)"
    )


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=5_000, description="The comment")
    anonymous: bool = Field(default=False, description="Show the comment as 'anonym', without the author's name")
    person: EmailStr | None = Field(
        default=None, description="Ignored: the comment is always the signed-in person's", deprecated=True
    )


class SupportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    person: EmailStr | None = Field(
        default=None, description="Ignored: the support is always the signed-in person's", deprecated=True
    )


class RerouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organisations: list[RoutingTargetIn] = Field(min_length=1, max_length=10, description="New organisations")
    areas: list[Slug] = Field(default_factory=list, max_length=10, description="New areas")
    reason: str = Field(min_length=3, max_length=2_000, description="Why the idea is re-routed")


class Accepted(BaseModel):
    idea_id: str
    event_id: str | None = Field(default=None, description="Id of the event recorded (none when nothing changed)")
    detail: str | None = None


class EditIn(BaseModel):
    """The submitter corrects their idea (until an officer acknowledges it); a field left out keeps its text."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=3, max_length=200, description="New title, 3-200 characters")
    description: str | None = Field(default=None, max_length=10_000, description="New description, up to 10,000")

    @model_validator(mode="after")
    def _something_to_change(self) -> EditIn:
        if self.title is None and self.description is None:
            raise ValueError("title: give the new title, the new description or both")
        return self


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(default=None, max_length=1_000, description="Why, for the officers (optional)")


class AssignmentIn(BaseModel):
    """Give an idea to one officer of an organisation that owns it, or take it back (``assignee`` null)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organisation: Slug | None = Field(
        default=None, description="For which of the idea's organisations (default: the signed-in officer's own)"
    )
    assignee: str | None = Field(
        max_length=100,
        description="The officer's id in the catalogue ('me' for yourself), or null to leave the idea unassigned",
    )


class AudienceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organisation: Slug = Field(description="Organisation id from the catalogue")
    unit: Slug | None = Field(default=None, description="Unit id within the organisation; null for all of it")


class ChallengeIn(BaseModel):
    """A question to the staff. ``closes_at`` is an ISO date (the end of that day in Europe/Stockholm) or date-time
    (without an offset: Europe/Stockholm)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    question: str = Field(min_length=10, max_length=300, description="The question asked, 10-300 characters")
    description: str = Field(default="", max_length=5_000, description="What you want to know, up to 5,000")
    audience: list[AudienceIn] = Field(
        default_factory=list,
        max_length=30,
        description="Who is asked; empty: an officer's whole organisation, the whole group for the innovation office",
    )
    areas: list[Slug] = Field(default_factory=list, max_length=10, description="Areas of the catalogue it is about")
    closes_at: datetime = Field(description="When it stops taking answers: 2025-06-30 or 2025-06-30T16:00")
    language: Literal["sv", "en"] | None = Field(default=None, description="sv or en; detected when absent")

    @field_validator("closes_at", mode="before")
    @classmethod
    def _stockholm_time(cls, value: object) -> object:
        return closing_time(value) if isinstance(value, str) else value

    @field_validator("closes_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return (value if value.tzinfo else value.replace(tzinfo=STOCKHOLM)).astimezone(UTC)


class ChallengeAccepted(BaseModel):
    challenge_id: str = Field(description="Id of the new challenge")
    event_id: str = Field(description="Id of the ChallengeOpened event")
    closes_at: datetime = Field(description="When it stops taking answers (UTC)")
    url: str = Field(description="The challenge's public page")


STOCKHOLM = ZoneInfo("Europe/Stockholm")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def closing_time(value: str) -> datetime:
    """An ISO date is the end of that day in Europe/Stockholm; a date-time without an offset is Stockholm time."""
    value = value.strip()
    try:
        if _DATE.match(value):
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max, tzinfo=STOCKHOLM).astimezone(UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value[:40]}' is not an ISO date (2025-06-30) or date-time (2025-06-30T16:00)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=STOCKHOLM)).astimezone(UTC)

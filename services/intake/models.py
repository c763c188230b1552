"""What the JSON API accepts. Strict at the door: every refusal names the field and the rule."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from shared.events import IdeaState, Slug


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

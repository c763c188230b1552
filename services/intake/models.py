"""What the JSON API accepts. Strict at the door: every refusal names the field and the rule."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from shared.events import Slug


class SubmitterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, description="Full name")
    email: EmailStr | None = Field(default=None, description="Where replies go")
    organisation: Slug | None = Field(default=None, description="Organisation id, e.g. tekniska-verken")
    unit: Slug | None = Field(default=None, description="Unit id, e.g. energi")


class IdeaIn(BaseModel):
    """A new idea, from any front end."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=3, max_length=200, description="Short title, 3-200 characters")
    description: str = Field(default="", max_length=10_000, description="The idea, up to 10,000 characters")
    language: Literal["sv", "en"] | None = Field(default=None, description="sv or en; detected when absent")
    area_hints: list[Slug] = Field(default_factory=list, max_length=10, description="Suggested area ids")
    organisation_hints: list[Slug] = Field(default_factory=list, max_length=10, description="Suggested organisations")
    anonymous: bool = Field(default=False, description="True: no personal data is kept")
    submitter: SubmitterIn | None = Field(default=None, description="Required unless anonymous")
    channel: Literal["api", "web", "email", "kafka", "app"] = Field(default="api", description="Front end used")

    @model_validator(mode="after")
    def _submitter_matches_anonymity(self) -> IdeaIn:
        if self.anonymous and self.submitter is not None:
            raise ValueError("submitter: leave it out when anonymous is true (no personal data is kept)")
        if not self.anonymous and self.submitter is None:
            raise ValueError("submitter: required unless anonymous is true")
        return self


class IdeaAccepted(BaseModel):
    idea_id: str = Field(description="Id of the new idea")
    event_id: str = Field(description="Id of the IdeaSubmitted event")
    status: Literal["submitted"] = "submitted"
    status_url: str = Field(description="Public page where the submitter follows the idea")

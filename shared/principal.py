"""Who is acting: the one ``Principal`` every service works with, and the access rules they share. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    EMPLOYEE = "employee"
    OFFICER = "officer"
    INNOVATION_OFFICE = "innovation-office"
    ADMIN = "admin"


GROUP_WIDE = frozenset({Role.INNOVATION_OFFICE, Role.ADMIN})


@dataclass(frozen=True)
class Principal:
    """A signed-in person, from a verified token: never from a request body.

    ``id`` is the person's user name at the identity provider (for officers, their catalogue id); ``email`` is
    how the platform's events name a person (comments, support, feeds)."""

    id: str
    email: str | None = None
    name: str | None = None
    organisation: str | None = None
    unit: str | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    subject: str | None = None

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def group_wide(self) -> bool:
        """The innovation office and admins act on every organisation's ideas."""
        return bool(self.roles & GROUP_WIDE)

    @property
    def is_officer(self) -> bool:
        """An officer of some organisation, or group-wide."""
        return self.group_wide or Role.OFFICER in self.roles

    def officer_of(self, organisation: str) -> bool:
        """May see an organisation's inbox, its ideas' comments and actors."""
        return self.group_wide or (Role.OFFICER in self.roles and self.organisation == organisation)

    def may_act_on(self, organisations: set[str] | frozenset[str]) -> bool:
        """May move an idea routed to these organisations through its lifecycle."""
        return self.group_wide or (Role.OFFICER in self.roles and self.organisation in organisations)

    @property
    def display_name(self) -> str:
        return self.name or self.email or self.id

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "organisation": self.organisation,
            "unit": self.unit,
            "roles": sorted(self.roles),
            "subject": self.subject,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Principal:
        return cls(
            id=str(data["id"]),
            email=data.get("email"),
            name=data.get("name"),
            organisation=data.get("organisation"),
            unit=data.get("unit"),
            roles=frozenset(Role(r) for r in data.get("roles", ()) if r in Role._value2member_map_),
            subject=data.get("subject"),
        )

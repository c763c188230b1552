"""Challenges: who is asked, and when they are reminded. Pure: no I/O, no clock (time is passed in).

A challenge (``ChallengeOpened`` on ``challenges.v1``) asks its *audience* for ideas: organisations, or units of
them; an empty audience is the whole group. Notifications tells the audience when the challenge opens
(``challenge-opened``) and once more ``CHALLENGE_REMINDER_DAYS`` (7) days before it closes (``challenge-closing``,
found by the periodic check, once per challenge).

**Who "the audience" is, and its limits.** Notifications has no staff register: it knows a person only from what
it has seen of them. The audience is

- the catalogue's officers of the audience's organisations (of the unit, for a unit), and
- everyone whose organisation (and unit) notifications has seen in their own events (``PersonRef.organisation``
  and ``.unit`` of a submission's submitter or of someone who commented, supported or followed), from the
  events it read up to the moment the challenge opened (a person keeps the organisation and unit of their
  newest event). A rebuild therefore finds the same people again.

So people the platform has never seen (who never submitted, commented, supported or followed with their
organisation known; people of an anonymous idea) are not told: they see the challenge on the form and the site.
Someone erased is not told (their place is forgotten with them), nor the officer who opened it. Everyone told
hears it by their own channels and preferences (e-mail at once or in the daily digest, the in-app feed); a
person who has turned e-mail off sees it in their feed only.

The notices link to the challenge's page, ``<public_base_url>/challenges/<id>``; their outcomes on
``notifications.sent.v2`` carry ``challenge-<id>`` where an idea id would be (as a digest's carry
``digest-<day>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from services.notifications.domain import Audience, Directory, News, Recipient, dedupe
from shared.catalogue import Officer
from shared.events import ChallengeAudience, ChallengeOpened, derived_event_id

SUBJECT_PREFIX = "challenge-"
"""A challenge's notices name ``challenge-<id>`` where an idea id would be (outcomes, deliveries, feed items)."""


@dataclass(frozen=True)
class Place:
    """Where people are asked: an organisation (``unit`` None: all of it) or one unit of it."""

    organisation: str
    unit: str | None = None


def subject(challenge_id: str) -> str:
    return f"{SUBJECT_PREFIX}{challenge_id}"


def places(challenge: ChallengeOpened, organisation_ids: tuple[str, ...]) -> tuple[Place, ...]:
    """The places a challenge asks: its audience, or every organisation of the catalogue when it is empty."""
    audience: tuple[ChallengeAudience, ...] = challenge.audience
    if not audience:
        return tuple(Place(org) for org in organisation_ids)
    return tuple(dict.fromkeys(Place(a.organisation, a.unit) for a in audience))


def officers_asked(directory: Directory, where: tuple[Place, ...]) -> list[Officer]:
    """The catalogue's officers in those places: of the organisation, or of the unit for a unit."""
    return [
        officer
        for officer in directory.catalogue.officers
        if any(officer.organisation == p.organisation and (p.unit is None or officer.unit == p.unit) for p in where)
    ]


def audience(challenge: ChallengeOpened, known: set[str], directory: Directory) -> Audience:
    """Who hears of the challenge: the officers of its places and the people known there (``known``, pseudonyms,
    found by the store for :func:`places`), once each; not the officer who opened it. No webhooks."""
    where = places(challenge, directory.catalogue.organisation_ids)
    officers = directory.recipients(officers_asked(directory, where), "asked")
    people = [Recipient(person, "asked") for person in sorted(known)]
    opener = directory.person(challenge.opened_by)
    return Audience(dedupe([*officers, *people], exclude=[opener] if opener else []))


def reminder_at(challenge: ChallengeOpened, days: int) -> datetime | None:
    """When the closing reminder is due: ``days`` before it closes; None when there is no reminder (``days`` 0,
    or the challenge opened with less than that left: its opening notice said when it closes)."""
    if days <= 0:
        return None
    at = challenge.closes_at - timedelta(days=days)
    return at if challenge.opens_at < at else None


def closing_state(challenge: ChallengeOpened, now: datetime, days: int) -> str:
    """'open' (nothing to say yet), 'closing' (remind now) or 'closed'."""
    if now >= challenge.closes_at:
        return "closed"
    at = reminder_at(challenge, days)
    return "closing" if at is not None and now >= at else "open"


def closing_cause(opened_event_id: str) -> str:
    """The cause id of a challenge's one closing reminder, derived from its opening event."""
    return derived_event_id(opened_event_id, "notifications.challenge-closing")


def news(
    challenge: ChallengeOpened,
    kind: str,
    cause_event_id: str,
    time: datetime,
    zone: tzinfo,
    *,
    opener: str | None = None,
) -> News:
    """The news of a challenge (``challenge-opened`` or ``challenge-closing``): the question, who asks (the
    organisation, and the name of the officer who opened it), when it closes (local date), linking to its page."""
    return News(
        kind=kind,
        cause_event_id=cause_event_id,
        idea_id=subject(challenge.challenge_id),
        time=time,
        title=challenge.question,
        asker=challenge.organisation,
        actor=opener,
        description=challenge.description or None,
        due=(challenge.closes_at - timedelta(microseconds=1)).astimezone(zone),  # its last day (closing at midnight)
        path=f"/challenges/{challenge.challenge_id}",
    )

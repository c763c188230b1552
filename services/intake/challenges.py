"""Challenges (issue 18): an organisation asks its staff for ideas on a question, until a closing time. Pure rules:
who may open one and for whom, which are open to a viewer, whether an idea may answer one, and what an answer
carries. Intake's use cases (handlers.py) and pages (challenge_pages.py, web.py) call these.

- An officer asks for their own organisation (the owner; the audience must lie inside it, and is all of it when
  left empty); the innovation office or an admin asks for the group (the owner is ``innovationsplattformen``; any
  audience, empty meaning everyone).
- A challenge is open from ``opens_at`` until ``closes_at``; there is no close event (the clock is the rule).
- An idea answering a challenge gets the challenge's areas and organisation added to its hints, so routing places
  it with the organisation that asked."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.intake.domain import detect_language
from services.intake.errors import ChallengeClosed, Forbidden, InvalidField
from services.intake.models import ChallengeIn, IdeaIn
from shared.catalogue import TRIAGE_ORGANISATION, Catalogue
from shared.events import ChallengeAudience, ChallengeOpened
from shared.principal import Principal


def challenge_of(
    request: ChallengeIn, principal: Principal, catalogue: Catalogue, *, challenge_id: str, now: datetime
) -> ChallengeOpened:
    """The challenge ``principal`` opens with ``request``; raises :class:`Forbidden` (not an officer) or
    :class:`InvalidField` naming the field (closing time in the past, an unknown or outside audience, an unknown
    area)."""
    if not principal.is_officer:
        raise Forbidden(
            "opening a challenge needs the role officer (for your organisation), innovation-office or admin "
            "(for the whole group)"
        )
    if principal.group_wide:
        owner = TRIAGE_ORGANISATION
    else:
        organisation = catalogue.organisation(principal.organisation or "")
        if organisation is None:
            raise Forbidden(
                f"your sign-in names no organisation of the catalogue ('{principal.organisation or ''}'): an officer "
                "opens a challenge for their own organisation"
            )
        owner = organisation.id
    if request.closes_at <= now:
        raise InvalidField(
            "closes_at", f"{request.closes_at.isoformat()} is in the past; a challenge must close after now"
        )
    audience = _audience(request, principal, owner, catalogue)
    areas = {a.id for a in catalogue.areas}
    for i, area in enumerate(request.areas):
        if area not in areas:
            raise InvalidField(f"areas.{i}", f"unknown area '{area}'; known: {', '.join(sorted(areas))}")
    return ChallengeOpened(
        challenge_id=challenge_id,
        question=request.question,
        description=request.description,
        organisation=owner,
        audience=audience,
        areas=tuple(dict.fromkeys(request.areas)),
        opens_at=now,
        closes_at=request.closes_at,
        opened_by=principal.id,
        language=request.language or detect_language(f"{request.question} {request.description}"),
    )


def _audience(
    request: ChallengeIn, principal: Principal, owner: str, catalogue: Catalogue
) -> tuple[ChallengeAudience, ...]:
    audience: dict[tuple[str, str | None], ChallengeAudience] = {}
    for i, wanted in enumerate(request.audience):
        organisation = catalogue.organisation(wanted.organisation)
        if organisation is None:
            known = ", ".join(catalogue.organisation_ids)
            raise InvalidField(
                f"audience.{i}.organisation", f"unknown organisation '{wanted.organisation}'; known: {known}"
            )
        if wanted.unit is not None and wanted.unit not in {u.id for u in organisation.units}:
            raise InvalidField(f"audience.{i}.unit", f"'{wanted.unit}' is not a unit of {organisation.id}")
        if not principal.group_wide and organisation.id != owner:
            raise InvalidField(
                f"audience.{i}.organisation",
                f"'{organisation.id}' is outside your organisation: an officer of {owner} asks only {owner} "
                "(the innovation office asks the whole group)",
            )
        audience[(organisation.id, wanted.unit)] = ChallengeAudience(organisation=organisation.id, unit=wanted.unit)
    if not audience and not principal.group_wide:
        return (ChallengeAudience(organisation=owner),)  # an officer's challenge never reaches beyond their own
    return tuple(audience.values())


def is_open(challenge: ChallengeOpened, now: datetime) -> bool:
    return challenge.opens_at <= now < challenge.closes_at


def addressed_to(challenge: ChallengeOpened, viewer: Principal | None) -> bool:
    """Whether the challenge asks ``viewer``: an empty audience asks everyone (anonymous viewers too), an
    organisation all its people, a unit the people of that unit."""
    if not challenge.audience:
        return True
    if viewer is None:
        return False
    return any(
        asked.organisation == viewer.organisation and asked.unit in (None, viewer.unit) for asked in challenge.audience
    )


def open_to(
    challenges: Iterable[ChallengeOpened], viewer: Principal | None, now: datetime, *, chosen: str | None = None
) -> list[ChallengeOpened]:
    """The open challenges that ask ``viewer``, closing soonest first; ``chosen`` (a link's ``?challenge=``) is
    listed too while it is open, even outside the viewer's audience."""
    shown = [c for c in challenges if is_open(c, now) and (addressed_to(c, viewer) or c.challenge_id == chosen)]
    return sorted(shown, key=lambda c: (c.closes_at, c.question))


def check_answerable(challenge: ChallengeOpened | None, challenge_id: str, now: datetime) -> ChallengeOpened:
    """The challenge an idea answers; :class:`InvalidField` (``challenge_id``) for an unknown one,
    :class:`ChallengeClosed` (409, saying when) for one that closed."""
    if challenge is None:
        raise InvalidField("challenge_id", f"no challenge with id {challenge_id}")
    if now >= challenge.closes_at:
        raise ChallengeClosed(challenge_id, challenge.closes_at)
    if now < challenge.opens_at:
        raise InvalidField("challenge_id", f"the challenge {challenge_id} opens at {challenge.opens_at.isoformat()}")
    return challenge


def answering(idea: IdeaIn, challenge: ChallengeOpened) -> IdeaIn:
    """The idea with the challenge's areas and organisation added to its hints (each once)."""
    return idea.model_copy(
        update={
            "challenge_id": challenge.challenge_id,
            "area_hints": list(dict.fromkeys([*idea.area_hints, *challenge.areas])),
            "organisation_hints": list(dict.fromkeys([*idea.organisation_hints, challenge.organisation])),
        }
    )

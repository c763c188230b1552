"""Intake's pure logic: turning what a front end sent into the event that records it."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass

from services.intake.errors import Forbidden, InvalidField
from services.intake.models import IdeaIn, NewIdeaIn, SubmitterIn
from shared.catalogue import Catalogue
from shared.events import IdeaSubmitted, PersonRef
from shared.principal import Principal

_SWEDISH = frozenset(
    "och att det som en på är för med till av inte den har de om ett vi kan så men jag vill skulle när "
    "eller från hur ska bara också mer alla våra vår man kunde blir efter".split()
)
_ENGLISH = frozenset(
    "the and to of a in is that for it with as on be are this would we could should can our from by "
    "not or have more when all".split()
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

ID_PREFIX = "kiruna-innovation"


def intake_id(*parts: str) -> str:
    """The id intake derives from ``parts``: ``uuid5(NAMESPACE_URL, ":".join(parts))``, the same parts always
    giving the same id. Intake's formulas are::

        idea of an Idempotency-Key    none: a uuid4 recorded with the key's reservation (handlers.Intake.submit);
                                      ideas answered before hardening kept intake_id(ID_PREFIX, "idempotency", key)
        idea of a raw-topic record    intake_id(ID_PREFIX, "raw", "<topic>:<partition>:<offset>")
        its IdeaSubmitted event       intake_id(idea_id, "submitted")
        a person's support, follow    intake_id(ID_PREFIX, "support" | "follow", idea_id, pseudonym)

    A support or follow is named by the person's pseudonym (``shared/sealing.py``: an HMAC of the e-mail address
    with the secret pepper), never by the address: a uuid5 of an address can be tested against a list of
    firstname.lastname addresses, and the id outlives an erasure in Kafka's history. One id per (idea, person)
    keeps "once per person" downstream; a person who was erased and comes back keeps the same pseudonym, so a
    support given again is the same event id (and is not counted twice). Events recorded before the pseudonyms
    (ideas.engagement.v1) were named by the address; the migration keeps their ids.

    Why not :func:`shared.events.derived_event_id` (the platform's namespace, ``<cause id>:<handler>``) like the
    other services: these ids predate it and are recorded in Kafka's history and in clients' hands (an idea id
    answered to an Idempotency-Key, a status URL, a Message-ID's idea). A retry or a replay must name the same idea
    and event as before, so the formulas stay as they are, written once here."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join(parts)))


def detect_language(text: str) -> str:
    """'sv' or 'en' from function words and å/ä/ö; Swedish when unsure (most ideas are Swedish)."""
    swedish = english = 0
    for word in _WORD.findall(text):  # one pass (a third of the time of three sums over the words)
        w = word.lower()
        if w in _SWEDISH:
            swedish += 1
        elif w in _ENGLISH:  # (the two lists share no word)
            english += 1
        if "å" in w or "ä" in w or "ö" in w:
            swedish += 2
    return "en" if english > swedish else "sv"


@dataclass(frozen=True)
class Person:
    """Who acts, as a door knows them: what their :class:`PersonRef` seals (address and name) and where they work.
    Only the handlers turn it into a PersonRef (sealed under the person's key); it is never logged or stored."""

    email: str
    name: str | None = None
    organisation: str | None = None
    unit: str | None = None


def workplace(principal: Principal, catalogue: Catalogue) -> tuple[str | None, str | None]:
    """The principal's organisation and unit, each only when the catalogue knows it."""
    org = catalogue.organisation(principal.organisation or "")
    unit = principal.unit if org is not None and principal.unit in {u.id for u in org.units} else None
    return (org.id if org is not None else None), unit


def person_of(principal: Principal, catalogue: Catalogue) -> Person:
    """The signed-in person as events name them (by their e-mail address, sealed); 403 without an address."""
    if not principal.email:
        raise Forbidden("your sign-in carries no e-mail address, which the platform names people by")
    organisation, unit = workplace(principal, catalogue)
    return Person(email=principal.email, name=principal.display_name[:200], organisation=organisation, unit=unit)


def submitter_of(idea: IdeaIn) -> Person | None:
    """The person a named idea is by (None for an anonymous one). Raises :class:`InvalidField` for a named idea
    without an e-mail address: a person is keyed by their address, and nothing personal is kept unsealed."""
    if idea.anonymous or idea.submitter is None:
        return None
    if not idea.submitter.email:
        raise InvalidField(
            "submitter.email",
            "required for a named idea: the platform keys (and encrypts) a submitter by their e-mail address; "
            "give it, or send the idea with anonymous true",
        )
    return Person(
        email=str(idea.submitter.email).strip().lower(),
        name=idea.submitter.name,
        organisation=idea.submitter.organisation,
        unit=idea.submitter.unit,
    )


def submitted_event(idea: IdeaIn, idea_id: str, submitter: PersonRef | None = None) -> IdeaSubmitted:
    """The event of a new idea; ``submitter`` is the sealed reference of :func:`submitter_of`'s person."""
    return IdeaSubmitted(
        idea_id=idea_id,
        title=idea.title,
        description=idea.description,
        language=idea.language or detect_language(f"{idea.title} {idea.description}"),
        area_hints=tuple(idea.area_hints),
        organisation_hints=tuple(idea.organisation_hints),
        anonymous=idea.anonymous,
        submitter=None if idea.anonymous else submitter,
        channel=idea.channel,
        challenge_id=idea.challenge_id,
    )


def idea_of(request: NewIdeaIn, principal: Principal | None, catalogue: Catalogue) -> IdeaIn:
    """The idea a signed-in person (or, anonymously, anyone) sent: the submitter is the principal, never the
    request; the organisation and unit only when the catalogue knows them."""
    fields = request.model_dump(exclude={"submitter"})
    if request.anonymous:
        return IdeaIn.model_validate(fields)
    assert principal is not None
    organisation, unit = workplace(principal, catalogue)
    # the validated submitter as it is (an instance is not validated again), the same person's from memory: the
    # e-mail address's validation was a third of a request's validation
    submitter = _submitter(principal.display_name[:200], principal.email, organisation, unit)
    return IdeaIn.model_validate({**fields, "submitter": submitter})


@functools.lru_cache(maxsize=4096)
def _submitter(name: str, email: str | None, organisation: str | None, unit: str | None) -> SubmitterIn:
    """The submitter of a signed-in person's idea, validated once per person (never changed afterwards)."""
    return SubmitterIn(name=name, email=email, organisation=organisation, unit=unit)

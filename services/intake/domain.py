"""Intake's pure logic: turning what a front end sent into the event that records it."""

from __future__ import annotations

import re
import uuid

from services.intake.models import IdeaIn, NewIdeaIn, SubmitterIn
from shared.catalogue import Catalogue
from shared.events import IdeaSubmitted, Submitter
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
        a person's support, follow    intake_id(ID_PREFIX, "support" | "follow", idea_id, person)

    Why not :func:`shared.events.derived_event_id` (the platform's namespace, ``<cause id>:<handler>``) like the
    other services: these ids predate it and are recorded in Kafka's history and in clients' hands (an idea id
    answered to an Idempotency-Key, a status URL, a Message-ID's idea). A retry or a replay must name the same idea
    and event as before, so the formulas stay as they are, written once here."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join(parts)))


def detect_language(text: str) -> str:
    """'sv' or 'en' from function words and å/ä/ö; Swedish when unsure (most ideas are Swedish)."""
    words = [w.lower() for w in _WORD.findall(text)]
    swedish = sum(w in _SWEDISH for w in words) + 2 * sum(any(c in "åäö" for c in w) for w in words)
    english = sum(w in _ENGLISH for w in words)
    return "en" if english > swedish else "sv"


def submitted_event(idea: IdeaIn, idea_id: str) -> IdeaSubmitted:
    submitter = None
    if not idea.anonymous and idea.submitter is not None:
        submitter = Submitter(
            name=idea.submitter.name,
            email=str(idea.submitter.email).lower() if idea.submitter.email else None,
            organisation=idea.submitter.organisation,
            unit=idea.submitter.unit,
        )
    return IdeaSubmitted(
        idea_id=idea_id,
        title=idea.title,
        description=idea.description,
        language=idea.language or detect_language(f"{idea.title} {idea.description}"),
        area_hints=tuple(idea.area_hints),
        organisation_hints=tuple(idea.organisation_hints),
        anonymous=idea.anonymous,
        submitter=submitter,
        channel=idea.channel,
    )


def idea_of(request: NewIdeaIn, principal: Principal | None, catalogue: Catalogue) -> IdeaIn:
    """The idea a signed-in person (or, anonymously, anyone) sent: the submitter is the principal, never the
    request; the organisation and unit only when the catalogue knows them."""
    fields = request.model_dump(exclude={"submitter"})
    if request.anonymous:
        return IdeaIn.model_validate(fields)
    assert principal is not None
    org = catalogue.organisation(principal.organisation or "")
    unit = principal.unit if org is not None and principal.unit in {u.id for u in org.units} else None
    submitter = SubmitterIn(
        name=principal.display_name[:200],
        email=principal.email,
        organisation=org.id if org is not None else None,
        unit=unit,
    )
    return IdeaIn.model_validate({**fields, "submitter": submitter.model_dump()})

"""Who may do what to an idea beyond the lifecycle's transitions (issue 18). Pure: each rule takes what intake
knows of the idea (:class:`IdeaRecord`), the signed-in principal and the catalogue, and raises the refusal that
says why (403 :class:`Forbidden`, 409 :class:`Conflict` / :class:`WrongState`, 422 :class:`InvalidField`).

- Its submitter (their pseudonym equals the one recorded from ``IdeaSubmitted``) edits the title and description
  while no officer has acknowledged it (``lifecycle.EDITABLE``) and withdraws it while it is open
  (``lifecycle.WITHDRAWABLE``). An anonymous idea (or one whose submitter was erased) is nobody's to change.
- An officer assigns an idea of their organisation (the innovation office and admins: of any organisation that
  owns it) to one officer of that organisation listed in the catalogue, themself included, or to nobody.
- A comment is an officer's answer (``official``) when its author is an officer of one of the idea's
  organisations (the innovation office's when group-wide)."""

from __future__ import annotations

from collections.abc import Iterable

from services.intake.errors import Conflict, Forbidden, InvalidField, WrongState
from services.intake.store import ANONYMOUS, IdeaRecord
from shared.catalogue import TRIAGE_ORGANISATION, Catalogue
from shared.lifecycle import EDITABLE, TERMINAL, WITHDRAWABLE
from shared.principal import Principal, Role

ME = "me"
"""An assignee meaning the signed-in officer."""


def check_submitter(record: IdeaRecord, pseudonym: str, action: str) -> None:
    """Only the idea's own submitter may ``action`` ("edit", "withdraw") it."""
    if record.submitter is None:
        raise Conflict(
            f"the idea's submission is not recorded here yet: try again in a moment to {action} it", code="not-yet"
        )
    if record.submitter == ANONYMOUS:
        raise Forbidden(
            "the idea is anonymous (or its submitter's data was erased): nothing links it to anyone, so nobody may "
            f"{action} it",
            code="anonymous",
        )
    if record.submitter != pseudonym:
        raise Forbidden(f"only the idea's submitter may {action} it, and it is someone else's idea", code="not-yours")


def check_editable(record: IdeaRecord) -> None:
    if record.state not in EDITABLE:
        raise WrongState(
            f"the idea is {record.state.value}: its title and description can be edited only until an officer "
            "acknowledges it (while submitted or routed)",
            record.state.value,
            code="not-editable",
        )


def check_withdrawable(record: IdeaRecord) -> None:
    if record.state not in WITHDRAWABLE:
        raise WrongState(
            f"the idea is {record.state.value}: it can be withdrawn only while it is open (submitted, routed, "
            "acknowledged or in assessment)",
            record.state.value,
            code="not-withdrawable",
        )


def assignment_of(
    principal: Principal, record: IdeaRecord, organisation: str | None, assignee: str | None, catalogue: Catalogue
) -> tuple[str, str | None]:
    """The organisation the assignment is for and the officer who gets the idea (None: nobody); refuses an
    assigner who is not an officer of that organisation (403), an organisation that does not own the idea or an
    assignee who is not one of its officers (409), a closed idea (409)."""
    if not principal.is_officer:
        raise Forbidden(
            "assigning an idea needs the role officer (of its organisation), innovation-office or admin",
            code="not-an-officer",
        )
    organisation = organisation or principal.organisation
    if not organisation:
        raise InvalidField("organisation", "your sign-in names no organisation: say which organisation assigns it")
    if catalogue.organisation(organisation) is None:
        raise InvalidField("organisation", f"unknown organisation '{organisation}'")
    if not principal.officer_of(organisation):
        raise Forbidden(
            f"an officer of {principal.organisation} may not assign ideas for {organisation}",
            code="other-organisation",
        )
    if organisation not in record.organisations:
        owners = ", ".join(sorted(record.organisations)) or "no organisation yet"
        raise Conflict(
            f"the idea is not routed to {organisation} (it is routed to {owners}): it is not theirs to assign",
            code="not-routed-there",
        )
    if record.state in TERMINAL:
        raise WrongState(
            f"the idea is {record.state.value} (closed): there is nothing left to assign",
            record.state.value,
            code="closed",
        )
    assignee = principal.id if assignee == ME else assignee
    if assignee is not None and assignee not in officers_of(catalogue, organisation):
        raise Conflict(
            f"'{assignee}' is not an officer of {organisation} in the catalogue: an idea is assigned to one of "
            "the organisation's officers",
            code="assignee-not-an-officer",
        )
    return organisation, assignee


def officers_of(catalogue: Catalogue, organisation: str) -> set[str]:
    return {officer.id for officer in catalogue.officers if officer.organisation == organisation}


def official_of(principal: Principal, organisations: Iterable[str]) -> str | None:
    """The organisation whose answer a comment is: the author's, when they are its officer and it owns the idea;
    the innovation office's for the group-wide roles; else None (a comment like anyone's)."""
    if principal.group_wide:
        return TRIAGE_ORGANISATION
    if Role.OFFICER in principal.roles and principal.organisation in set(organisations):
        return principal.organisation
    return None

"""Who may see what on the read side: one module, the same rules for the JSON API and the pages. Pure.

- An idea's public view (status page, ``GET /api/v1/ideas/{id}`` for anyone): its story without officer ids or
  the submitter's name: no ``changed_by``/``rerouted_by``, no assignments. The submitter is never named: "an
  employee" of their organisation, "a former employee" once erased, or "anonymous". Comments are shown to
  everyone with their text and their author's name (issue 18), or "anonym" when the author chose so, or as
  removed once the author was erased; an officer's answer says for which organisation. Supporters and followers
  are counts.
- An idea's officer view (who moved it, the submitter's name, who has it per organisation and the timeline of
  assignments): the officers of an organisation the idea is routed to, the innovation office and admins.
- Lists of ideas (``GET /api/v1/ideas``, the page ``/ideas``): every idea for anyone, public items. An
  organisation's inbox (the same list for its officers, the innovation office and admins: the submitters' names,
  overdue targets, assignees, suggested duplicates); every organisation's at once: the innovation office and
  admins. The assignment filters (``assigned=me|none``) only in the inbox.
- "My ideas": the signed-in person's own named ideas: whether one is assigned (never to whom), whether they may
  still edit or withdraw it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

from services.analytics.domain import IdeaSummary, IdeaView, next_states
from shared.lifecycle import EDITABLE, WITHDRAWABLE
from shared.principal import Principal, Role

INBOX_ROLES = (Role.OFFICER, Role.INNOVATION_OFFICE, Role.ADMIN)
GROUP_ROLES = (Role.INNOVATION_OFFICE, Role.ADMIN)
ACTORS = (
    "changed_by",
    "rerouted_by",
    "assignee",
    "previous",
    "assigned_by",
    "assignee_name",
    "previous_name",
    "assigned_by_name",
)
OFFICER_ONLY_KINDS = frozenset({"assigned"})
"""Timeline items only the officer view has: who has the idea is for those who act on it."""

View = Literal["public", "officer"]


def routed_to(view: IdeaView) -> set[str]:
    return {target["organisation"] for target in view.organisations if target.get("organisation")}


def idea_view_for(principal: Principal | None, view: IdeaView) -> View:
    """Which view of an idea this person gets: the officer view for those who act on it, else the public one."""
    if principal is None:
        return "public"
    if principal.group_wide or any(principal.officer_of(org) for org in routed_to(view)):
        return "officer"
    return "public"


def idea_document(
    view: IdeaView, kind: View, officer_name: Callable[[str], str | None] = lambda o: o
) -> dict[str, Any]:
    """The idea as the API answers it, saying which view it is. Nothing sealed ever leaves (the read model has
    opened what it may); the public view has no names but the comments' authors', and no assignments."""
    document = asdict(view)
    document["submitter"] = submitter_document(document.get("submitter"), kind)
    sealed = ("text_sealed", "person_sealed")
    document["timeline"] = [{k: v for k, v in item.items() if k not in sealed} for item in document["timeline"]]
    if kind == "public":
        document["timeline"] = [public_entry(i) for i in document["timeline"] if i["kind"] not in OFFICER_ONLY_KINDS]
        document.pop("assignees", None)
    else:
        document["assignees"] = {
            org: {"id": officer, "name": officer_name(officer)} for org, officer in view.assignees.items()
        }
    return {"view": kind, **document}


def submitter_document(submitter: dict[str, Any] | None, kind: View) -> dict[str, Any] | None:
    """Who submitted the idea for this view: the name only in the officer view."""
    if submitter is None:
        return None
    shown = {k: v for k, v in submitter.items() if k != "sealed"}
    if kind == "public":
        shown.pop("name", None)
    return shown


def public_entry(item: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry without who acted (a re-route says only that it was one). A comment keeps its text and
    its author's name (or "anonym", or removed); support and follow name no one."""
    public = {k: v for k, v in item.items() if k not in ACTORS}
    if item.get("rerouted_by"):
        public["rerouted"] = True
    if item.get("kind") == "engagement" and item.get("engagement") != "comment":
        public["summary"] = ""
    return public


def public_item(idea: IdeaSummary) -> dict[str, Any]:
    """An idea in a list anyone may read: what its page shows, as counts; no one named."""
    return {
        "idea_id": idea.idea_id,
        "title": idea.title,
        "state": idea.state,
        "state_since": idea.state_since,
        "submitted_at": idea.created_at,
        "organisations": idea.organisations,
        "areas": idea.areas,
        "challenge_id": idea.challenge_id,
        "supporters": idea.supporters,
        "comments": idea.comments,
        "url": f"/ideas/{idea.idea_id}",
    }


def officer_item(idea: IdeaSummary, overdue: list[str], submitter: dict[str, Any]) -> dict[str, Any]:
    """An inbox row: the inbox is for those who act on its ideas, who may see the submitter's name."""
    return {
        **public_item(idea),
        "units": idea.units,
        "cross_organisation": idea.cross_organisation,
        "overdue_targets": overdue,
        "next_states": list(next_states(idea.state)),
        "submitter": submitter,
    }


def my_idea(idea: IdeaSummary, titles: dict[str, str], challenges: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """One of the person's own ideas: its state, what happened last (never who did it), whether it is assigned
    (yes or no, never to whom), whether they may still edit it (until an officer acknowledges it) or withdraw it
    (while it is open), its challenge, and the idea it was merged into."""
    challenge = challenges.get(idea.challenge_id) if idea.challenge_id else None
    last = {k: v for k, v in (idea.last or {}).items() if k != "event_id"} or None
    return {
        "idea_id": idea.idea_id,
        "title": idea.title,
        "description": idea.description,
        "state": idea.state,
        "state_since": idea.state_since,
        "submitted_at": idea.created_at,
        "organisations": idea.organisations,
        "challenge": (
            {"challenge_id": challenge["challenge_id"], "question": challenge.get("question")} if challenge else None
        ),
        "assigned": bool(idea.assignees),
        "last": last,
        "can_edit": idea.state in EDITABLE,
        "can_withdraw": idea.state in WITHDRAWABLE,
        "merged_into": idea.merged_into,
        "merged_into_title": titles.get(idea.merged_into) if idea.merged_into else None,
        "status_url": f"/ideas/{idea.idea_id}",
    }


def inbox_refusal(principal: Principal, organisation: str | None) -> str | None:
    """Why this person may not read this inbox (``organisation`` None: every organisation's), or None."""
    if organisation is None:
        if principal.group_wide:
            return None
        return "the inbox of every organisation is for the innovation office and admins; give ?organisation="
    if principal.officer_of(organisation):
        return None
    return f"the inbox of {organisation} is for its officers, the innovation office and admins"


def inbox_roles(organisation: str | None) -> tuple[Role, ...]:
    return INBOX_ROLES if organisation else GROUP_ROLES


def assignment_refusal(principal: Principal | None, organisation: str | None) -> str | None:
    """Why this person may not filter by assignment (``assigned=me|none``), or None: it is the inbox's."""
    if principal is None:
        return "the assignment filters are the inbox's"
    return inbox_refusal(principal, organisation)

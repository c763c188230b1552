"""Who may see what on the read side: one module, the same rules for the JSON API and the pages. Pure.

- An idea's public view (status page, ``GET /api/v1/ideas/{id}`` for anyone): its story without personal data or
  officer ids: no ``changed_by``/``rerouted_by``, no comment texts (a comment is its author's personal data, and
  its words often name people): supporters and comments are counts. The submitter is never named: "an employee"
  of their organisation, "a former employee" once erased, or "anonymous".
- An idea's officer view (comment texts, who moved it, the submitter's name): the officers of an organisation the
  idea is routed to, the innovation office and admins. An erased person's comments read as removed.
- An organisation's inbox (with the submitters' names): its officers, the innovation office and admins; every
  organisation's at once: the innovation office and admins.
- "My ideas": the signed-in person's own named ideas.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from services.analytics.domain import IdeaView
from shared.principal import Principal, Role

INBOX_ROLES = (Role.OFFICER, Role.INNOVATION_OFFICE, Role.ADMIN)
GROUP_ROLES = (Role.INNOVATION_OFFICE, Role.ADMIN)
ACTORS = ("changed_by", "rerouted_by")

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


def idea_document(view: IdeaView, kind: View) -> dict[str, Any]:
    """The idea as the API answers it, saying which view it is. Nothing sealed ever leaves (the read model has
    opened what it may); the public view has no names and no comment texts."""
    document = asdict(view)
    document["submitter"] = submitter_document(document.get("submitter"), kind)
    document["timeline"] = [{k: v for k, v in item.items() if k != "text_sealed"} for item in document["timeline"]]
    if kind == "public":
        document["timeline"] = [public_entry(item) for item in document["timeline"]]
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
    """A timeline entry without who acted and without what a person wrote in a comment (nor whether it was
    removed)."""
    public = {k: v for k, v in item.items() if k not in ACTORS and k != "removed"}
    if item.get("rerouted_by"):
        public["rerouted"] = True
    if item.get("kind") == "engagement":
        public["summary"] = ""
    return public


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

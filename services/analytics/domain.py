"""The read side's pure logic: an idea's story and state, folded from its events in any arrival order."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from shared.events import IdeaState

_EVENT_KIND = {
    "se.kiruna.innovation.idea.submitted.v1": "submitted",
    "se.kiruna.innovation.idea.routed.v1": "routed",
    "se.kiruna.innovation.idea.status-changed.v1": "status-changed",
    "se.kiruna.innovation.idea.engagement.v1": "engagement",
}


def timeline_entry(envelope: dict[str, Any]) -> dict[str, Any]:
    """What the projection keeps of one event: who did what and why, never the submitter's name or e-mail."""
    data = dict(envelope["data"])
    submitter = data.pop("submitter", None)
    if submitter:
        data["submitter_organisation"] = submitter.get("organisation")
        data["submitter_unit"] = submitter.get("unit")
        if submitter.get("email"):
            data["submitter_key"] = hashlib.sha256(submitter["email"].lower().encode()).hexdigest()[:16]
    return {
        "event_id": envelope["id"],
        "kind": _EVENT_KIND.get(envelope["type"], envelope["type"]),
        "time": envelope["time"],
        "data": data,
    }


@dataclass
class IdeaView:
    idea_id: str
    state: str | None = None
    title: str | None = None
    description: str | None = None
    language: str | None = None
    anonymous: bool | None = None
    submitted_at: str | None = None
    organisations: list[dict[str, Any]] = field(default_factory=list)
    areas: list[dict[str, Any]] = field(default_factory=list)
    routing_reason: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)


def project_idea(idea_id: str, entries: list[dict[str, Any]]) -> IdeaView:
    """Fold an idea's timeline entries, sorted by event time, into its current view."""
    view = IdeaView(idea_id=idea_id)
    for entry in sorted(entries, key=lambda e: (e["time"], e["event_id"])):
        data = entry["data"]
        kind = entry["kind"]
        if kind == "submitted":
            view.title, view.description = data.get("title"), data.get("description")
            view.language, view.anonymous = data.get("language"), data.get("anonymous")
            view.submitted_at = entry["time"]
            view.state = view.state or IdeaState.SUBMITTED.value
            summary = "Idén lämnades in"
        elif kind == "routed":
            view.organisations = data.get("organisations", [])
            view.areas = data.get("areas", [])
            view.routing_reason = data.get("reason")
            view.title = view.title or data.get("title")
            if view.state in (None, IdeaState.SUBMITTED.value):
                view.state = IdeaState.ROUTED.value
            summary = data.get("reason", "")
        elif kind == "status-changed":
            view.state = data.get("to_state")
            summary = data.get("reason") or ""
        else:
            summary = data.get("kind", "")
        view.timeline.append(
            {
                "event_id": entry["event_id"],
                "kind": kind,
                "time": entry["time"],
                "summary": summary,
                **_who(data),
            }
        )
    return view


def _who(data: dict[str, Any]) -> dict[str, Any]:
    who = {key: data[key] for key in ("changed_by", "rerouted_by", "to_state", "from_state") if data.get(key)}
    return who

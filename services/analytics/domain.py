"""The read side's pure logic: an idea's story and state, folded from its events in any arrival order.

Everything here is synchronous and free of I/O. An idea's projection is a pure function of the *set* of its
events: events are sorted by event time (then kind, then id) before folding, so a duplicate changes nothing and
an event that arrives late (a status change before the routing it follows) still lands in its place.

People are pseudonyms here (``PersonRef.pseudonym``): who a submitter or a commenter is and what a comment says
stay sealed under their person's data key (``Sealed`` as JSON), opened only by the read model. An erasure drops a
person's sealed values (:func:`scrubbed`) and keeps their pseudonym, so every count stays as it was.

Issue 18 adds to an idea's story: the submitter's edits (the idea shows the new text, the timeline keeps each
version), withdrawal (a final state), the assignee per organisation, comments shown with their author (or
"anonym"; an officer's answer marked as its organisation's), and a merge's carry-over: the target of a merge gets
one ``merged-in`` entry and one ``carried`` entry per supporter and follower of the merged idea
(:func:`carried_entries`), so it counts them too, one per person.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.catalogue import TRIAGE_ORGANISATION
from shared.events import (
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaStatusChanged,
    IdeaSubmitted,
    NotificationSent,
    derived_event_id,
    event_type,
)
from shared.events import IdeaState as S
from shared.lifecycle import allowed_transitions

KIND_BY_TYPE = {
    event_type(IdeaSubmitted): "submitted",
    event_type(IdeaRouted): "routed",
    event_type(IdeaStatusChanged): "status-changed",
    event_type(IdeaEngagement): "engagement",
    event_type(NotificationSent): "notified",
    event_type(IdeaEdited): "edited",
    event_type(IdeaAssigned): "assigned",
}
"""The kind of timeline entry each event type becomes (the projection's own words for the contracts' types), in
the order that breaks ties between events of the same time (a submission first)."""
CARRIED = "carried"
"""A supporter or follower of an idea merged into this one (:func:`carried_entries`): counted, not shown."""
MERGED_IN = "merged-in"
"""An idea was merged into this one (:func:`carried_entries`): shown in the timeline."""
_KIND_RANK = {kind: rank for rank, kind in enumerate((*KIND_BY_TYPE.values(), MERGED_IN, CARRIED))}
LAST_KINDS = frozenset({"submitted", "routed", "status-changed", "edited", "assigned"})
"""What counts as "what happened last" to an idea (besides a comment): its lifecycle, edits and assignment."""


def next_states(state: str | None) -> tuple[str, ...]:
    """What an officer may move an idea to from ``state`` (shared/lifecycle.py); nothing before any state."""
    return tuple(s.value for s in allowed_transitions(state)) if state else ()


def key_owner(key_id: str) -> str:
    """The pseudonym a data key id belongs to (``<pseudonym>.<12 hex>``)."""
    return key_id.partition(".")[0]


def sealed_keys(envelope: dict[str, Any]) -> set[str]:
    """The ids of the data keys an event's sealed values name (its submitter, a comment's text): the keys whose
    liveness :func:`timeline_entry` must be told."""
    data = envelope.get("data") or {}
    found = set()
    for sealed in ((data.get("submitter") or {}).get("sealed"), data.get("text"), _named_commenter(data)):
        if isinstance(sealed, dict) and sealed.get("key"):
            found.add(sealed["key"])
    return found


def _named_commenter(data: dict[str, Any]) -> dict[str, Any] | None:
    """The sealed name of a comment's author, unless they chose to be shown as "anonym" (then it is not kept)."""
    if data.get("kind") != "comment" or data.get("anonymous"):
        return None
    person = data.get("person")
    return person.get("sealed") if isinstance(person, dict) else None


def timeline_entry(envelope: dict[str, Any], live: Container[str]) -> dict[str, Any]:
    """What the projection keeps of one event: who did what and why, never a name or an e-mail address in the
    clear. A person is their pseudonym (to count distinct people, to find a person's own ideas); who the submitter
    is and what a comment says stay sealed under their person's data key, and only while that key is in ``live``
    (the ids of the keys that exist now): a value whose key is gone is kept as erased (``submitter_erased``,
    ``text_erased``), so that no person-state ("my ideas") is made from an erased person's events. The recipient
    of a notification is not kept."""
    data = dict(envelope["data"])
    submitter = data.pop("submitter", None)
    if submitter:
        data["submitter_organisation"] = submitter.get("organisation")
        data["submitter_unit"] = submitter.get("unit")
        data["submitter_key"] = submitter.get("pseudonym")
        sealed = submitter.get("sealed")
        if sealed and sealed.get("key") in live:
            data["submitter_sealed"] = sealed
        else:
            data["submitter_erased"] = True
    kind = KIND_BY_TYPE.get(envelope["type"], envelope["type"])
    if kind == "notified":
        data.pop("recipient", None)
        data.pop("detail", None)
    if kind == "engagement":
        named = _named_commenter(data)
        if named:  # a comment is shown with its author's name, opened only by the read model
            if named.get("key") in live:
                data["person_sealed"] = named
            else:
                data["person_erased"] = True
        person = data.pop("person", None)
        if isinstance(person, dict):  # people who support or follow are counted by pseudonym, never named
            data["person_key"] = person.get("pseudonym")
        text = data.pop("text", None)
        if text:
            if text.get("key") in live:
                data["text_sealed"] = text
            else:
                data["text_erased"] = True
    return {"event_id": envelope["id"], "kind": kind, "time": envelope["time"], "data": data}


def sealed_owners(entry: dict[str, Any]) -> set[str]:
    """The pseudonyms whose sealed values this timeline entry holds (what an erasure of them must drop)."""
    data = entry.get("data") or {}
    return {key_owner(s["key"]) for s in (data.get(name) for name, _ in _SEALED_FIELDS) if s}


_SEALED_FIELDS = (
    ("submitter_sealed", "submitter_erased"),
    ("text_sealed", "text_erased"),
    ("person_sealed", "person_erased"),
)


def scrubbed(entry: dict[str, Any], pseudonym: str, *, keep_key: str | None = None) -> dict[str, Any]:
    """The entry without the sealed values of ``pseudonym`` (but those under ``keep_key``, the key of a person who
    came back after the erasure): the submitter becomes erased ("en tidigare medarbetare"), a comment removed.
    Everything that counts (the pseudonym, the comment itself) stays, so no figure changes."""
    data = entry.get("data") or {}
    changed = dict(data)
    for name, erased in _SEALED_FIELDS:
        sealed = data.get(name)
        if sealed and key_owner(sealed["key"]) == pseudonym and sealed["key"] != keep_key:
            del changed[name]
            changed[erased] = True
    return entry if changed == data else {**entry, "data": changed}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def entry_order(entry: dict[str, Any]) -> tuple[datetime, int, str]:
    """The order of an idea's entries: event time, then kind (a submission first), then id."""
    return parse_time(entry["time"]), _KIND_RANK.get(entry["kind"], 99), entry["event_id"]


def sorted_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event-time order, whatever the arrival order; ties broken by kind (submitted first) and id."""
    return sorted(entries, key=entry_order)


@dataclass
class IdeaView:
    """An idea as its events tell it. Who submitted it is ``submitter``: ``{"status": "anonymous"}``, or the
    status ``employee`` with the submitter's organisation and their name and address still sealed (``sealed``,
    opened by the read model where the access rules allow a name), or ``former-employee`` once erased. A
    comment's text (``text_sealed``) and its author's name (``person_sealed``) are sealed in its timeline item,
    or the comment is ``removed``."""

    idea_id: str
    state: str | None = None
    title: str | None = None
    description: str | None = None
    language: str | None = None
    anonymous: bool | None = None
    submitter: dict[str, Any] | None = None
    submitted_at: str | None = None
    state_since: str | None = None
    organisations: list[dict[str, Any]] = field(default_factory=list)
    areas: list[dict[str, Any]] = field(default_factory=list)
    routing_reason: str | None = None
    triage: bool = False
    merged_into: str | None = None
    decline_reason: str | None = None
    withdraw_reason: str | None = None
    challenge_id: str | None = None
    edits: int = 0
    """How many times the submitter corrected the text (the timeline keeps each earlier title)."""
    assignees: dict[str, str] = field(default_factory=dict)
    """Organisation -> the officer (catalogue id) who has the idea for it; an organisation without one is absent."""
    merged_from: list[str] = field(default_factory=list)
    """Ideas merged into this one."""
    supporters: int = 0
    comments: int = 0
    followers: int = 0
    next_states: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IdeaSummary:
    """What the figures and the inbox need of one idea, kept in Redis next to its events."""

    idea_id: str
    created_at: str
    submitted: bool = False
    title: str = ""
    description: str = ""
    state: str | None = None
    state_since: str | None = None
    organisations: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    triage: bool = False
    anonymous: bool = False
    submitter_key: str | None = None
    """The submitter's pseudonym (distinct submitters, "my ideas"); kept after an erasure, as in the events."""
    submitter_organisation: str | None = None
    submitter_unit: str | None = None
    submitter_sealed: dict[str, str] | None = None
    """The submitter's ``{"name", "email"}`` sealed under their data key (``Sealed`` as JSON), never in the clear."""
    submitter_erased: bool = False
    """The submitter was erased: shown as "en tidigare medarbetare", in no one's "my ideas"."""
    history: list[tuple[str, str]] = field(default_factory=list)
    """(state, ISO time entered), in order."""
    supporters: int = 0
    comments: int = 0
    followers: int = 0
    notifications: dict[str, int] = field(default_factory=dict)
    merged_into: str | None = None
    spread_to: list[str] = field(default_factory=list)
    challenge_id: str | None = None
    """The challenge the idea answers (``IdeaSubmitted.challenge_id``)."""
    assignees: dict[str, str] = field(default_factory=dict)
    """Organisation -> assigned officer (catalogue id)."""
    last: dict[str, Any] | None = None
    """What happened last (:data:`LAST_KINDS` or a comment): ``{"kind", "time", "event_id"}`` and, for a status
    change, ``to_state``. Never who did it."""

    @property
    def cross_organisation(self) -> bool:
        return len([o for o in self.organisations if o != TRIAGE_ORGANISATION]) >= 2

    @property
    def spread(self) -> bool:
        return any(state == S.SPREAD.value for state, _ in self.history)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_document(self) -> str:
        """The summary as stored: ``json.dumps(self.to_json(), sort_keys=True)``, the same text, without
        ``asdict``'s deep copy (the fields hold only JSON values, tuples in ``history``)."""
        return _SORTED_JSON(self.__dict__)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> IdeaSummary:
        raw = {k: v for k, v in raw.items() if k in _SUMMARY_FIELDS}  # a field of older code is left behind
        raw["history"] = [tuple(step) for step in raw.get("history", [])]
        return cls(**raw)

    @property
    def submitter_status(self) -> str:
        """``anonymous``, ``former-employee`` (erased) or ``employee``."""
        if self.anonymous or not self.submitter_key:
            return "anonymous"
        return "former-employee" if self.submitter_erased or not self.submitter_sealed else "employee"

    def index_keys(self) -> set[tuple[str, str]]:
        """The (dimension, value) indexes the idea belongs to: organisations, units, areas, state, challenge, the
        assignees (``assignee``: the officer; ``assigned``: each organisation that has one, ``*`` if any), and the
        submitter's pseudonym (a named idea's "my ideas"; anonymous ideas and erased submitters have none)."""
        keys = {("org", o) for o in self.organisations}
        keys |= {("unit", u) for u in self.units}
        keys |= {("area", a) for a in self.areas}
        if self.state:
            keys.add(("state", self.state))
        if self.challenge_id:
            keys.add(("challenge", self.challenge_id))
        for organisation, officer in self.assignees.items():
            keys |= {("assignee", officer), ("assigned", organisation), ("assigned", ANY)}
        if self.submitter_status == "employee":
            keys.add(("submitter", self.submitter_key))
        return keys


ANY = "*"
"""The ``assigned`` index of the ideas assigned for any organisation."""
_SUMMARY_FIELDS = frozenset(IdeaSummary.__dataclass_fields__)
_SORTED_JSON = json.JSONEncoder(sort_keys=True).encode
"""``json.dumps(..., sort_keys=True)`` without making an encoder on every call."""


@dataclass
class _Fold:
    view: IdeaView
    summary: IdeaSummary
    supporters: set[str] = field(default_factory=set)
    followers: set[str] = field(default_factory=set)


def fold(idea_id: str, entries: list[dict[str, Any]]) -> tuple[IdeaView, IdeaSummary]:
    """Fold an idea's timeline entries, sorted by event time, into its view and its summary."""
    ordered = sorted_entries(entries)
    first_time = ordered[0]["time"] if ordered else ""
    f = _Fold(IdeaView(idea_id=idea_id), IdeaSummary(idea_id=idea_id, created_at=first_time))
    for entry in ordered:
        item = _apply(f, entry)
        if item is not None:
            f.view.timeline.append(item)
        if last := last_of(entry):
            f.summary.last = last
    view, summary = f.view, f.summary
    summary.supporters = view.supporters = len(f.supporters)
    summary.followers = view.followers = len(f.followers)
    summary.state, summary.title = view.state, view.title or ""
    summary.description = view.description or ""
    summary.state_since = view.state_since = summary.history[-1][1] if summary.history else None
    summary.merged_into = view.merged_into
    summary.triage = view.triage
    summary.challenge_id = view.challenge_id
    summary.assignees = dict(sorted(view.assignees.items()))
    view.next_states = list(next_states(view.state))
    return view, summary


def last_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """What ``entry`` says happened, if it counts as "what happened last" (:data:`LAST_KINDS`, a comment)."""
    kind, data = entry["kind"], entry["data"]
    if kind == "engagement" and data.get("kind") == "comment":
        kind = "comment"
    elif kind not in LAST_KINDS:
        return None
    last = {"kind": kind, "time": entry["time"], "event_id": entry["event_id"]}
    if kind == "status-changed":
        last["to_state"] = data.get("to_state")
    return last


def _later(current: dict[str, Any] | None, candidate: dict[str, Any]) -> dict[str, Any]:
    if current is None:
        return candidate
    rank = {"comment": _KIND_RANK["engagement"]}

    def order(last: dict[str, Any]) -> tuple[datetime, int, str]:
        return parse_time(last["time"]), rank.get(last["kind"], _KIND_RANK.get(last["kind"], 99)), last["event_id"]

    return candidate if order(candidate) > order(current) else current


COUNTED_KINDS = frozenset({"engagement", "notified", CARRIED, MERGED_IN})
"""Entries that only count (comments, supporters, followers, notifications by outcome, people carried over from a
merged idea) or only add to the story shown (an idea merged in): their effect on a submitted idea's summary does
not depend on the order of events, so :func:`absorb` folds them into the stored summary without reading the
idea's other events."""


def people(entries: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The pseudonyms of the idea's supporters and followers (the sets the fold counts), its own and those carried
    over from ideas merged into it."""
    supporters: set[str] = set()
    followers: set[str] = set()
    for entry in entries:
        if entry["kind"] not in ("engagement", CARRIED) or not (person := entry["data"].get("person_key")):
            continue
        if entry["data"].get("kind") == "support":
            supporters.add(person)
        elif entry["data"].get("kind") == "follow":
            followers.add(person)
    return supporters, followers


def absorbs(summary: IdeaSummary | None, supporters: int, followers: int) -> bool:
    """Whether counted entries can be folded into this stored summary: the idea's submission is in it (before,
    an entry may still set ``created_at``), and the sets of supporters and followers kept beside it (of
    ``supporters`` and ``followers`` people) are the ones it counts (not so in a projection made before the sets
    existed: a full fold fills them)."""
    return (
        summary is not None
        and summary.submitted
        and summary.supporters == supporters
        and summary.followers == followers
    )


def absorb(summary: IdeaSummary, entries: Iterable[dict[str, Any]], *, supporters: int, followers: int) -> IdeaSummary:
    """The summary with new counted entries (:data:`COUNTED_KINDS`) folded in, equal to a full fold of all the
    idea's events: comments and notifications are counted (a comment may be what happened last), and
    ``supporters`` and ``followers`` are the sizes of the idea's sets of people once these entries' people are
    added. Work bounded by the entries given, whatever the idea's history. Only for a summary that
    :func:`absorbs`."""
    result = replace(summary, notifications=dict(summary.notifications), supporters=supporters, followers=followers)
    for entry in entries:
        if entry["kind"] == "notified":
            outcome = entry["data"].get("outcome", "unknown")
            result.notifications[outcome] = result.notifications.get(outcome, 0) + 1
        elif entry["kind"] == "engagement" and entry["data"].get("kind") == "comment":
            result.comments += 1
        if last := last_of(entry):
            result.last = _later(result.last, last)
    return result


def carried_entries(merged: IdeaSummary, supporters: Iterable[str], followers: Iterable[str]) -> list[dict[str, Any]]:
    """What the target of a merge gets from the merged idea: one ``merged-in`` entry (shown in its timeline) and one
    ``carried`` entry per supporter and follower of the merged idea (by pseudonym, so a person who supports both
    counts once). Their ids derive from the merged idea and the person: carrying over again adds nothing."""
    time = merged.state_since or merged.created_at
    origin = merged.idea_id
    entries = [
        {
            "event_id": derived_event_id(origin, "analytics.merged-in"),
            "kind": MERGED_IN,
            "time": time,
            "data": {"from_idea": origin},  # its title is looked up when shown: it may not be projected yet
        }
    ]
    for kind, pseudonyms in (("support", supporters), ("follow", followers)):
        for person in sorted(pseudonyms):
            entries.append(
                {
                    "event_id": derived_event_id(f"{origin}:{kind}:{person}", "analytics.carried"),
                    "kind": CARRIED,
                    "time": time,
                    "data": {"kind": kind, "person_key": person, "from_idea": origin},
                }
            )
    return entries


def submitter_of(summary: IdeaSummary) -> dict[str, Any]:
    """Who submitted the idea, as far as the projection knows: ``anonymous``, ``former-employee`` (erased), or
    ``employee`` with their organisation and their sealed name and address (for the read model to open)."""
    status = summary.submitter_status
    if status != "employee":
        return {"status": status}
    return {"status": status, "organisation": summary.submitter_organisation, "sealed": summary.submitter_sealed}


def project_idea(idea_id: str, entries: list[dict[str, Any]]) -> IdeaView:
    return fold(idea_id, entries)[0]


def summarise(idea_id: str, entries: list[dict[str, Any]]) -> IdeaSummary:
    return fold(idea_id, entries)[1]


def _enter(f: _Fold, state: str, time: str) -> None:
    if f.view.state != state:
        f.summary.history.append((state, time))
    f.view.state = state


def _apply(f: _Fold, entry: dict[str, Any]) -> dict[str, Any] | None:
    view, summary = f.view, f.summary
    data, kind, time = entry["data"], entry["kind"], entry["time"]
    item: dict[str, Any] = {"event_id": entry["event_id"], "kind": kind, "time": time}
    if kind == "submitted":
        if not view.edits:  # an edit stamped before the submission (clock skew) keeps its newer text
            view.title, view.description = data.get("title"), data.get("description")
            view.language = data.get("language")
        view.anonymous = bool(data.get("anonymous"))
        view.submitted_at = summary.created_at = time
        view.challenge_id = data.get("challenge_id")
        summary.submitted, summary.anonymous = True, bool(data.get("anonymous"))
        summary.submitter_key = data.get("submitter_key")
        summary.submitter_organisation = data.get("submitter_organisation")
        summary.submitter_unit = data.get("submitter_unit")
        summary.submitter_sealed = data.get("submitter_sealed")
        summary.submitter_erased = bool(data.get("submitter_erased"))
        view.submitter = submitter_of(summary)
        if view.state is None:
            _enter(f, S.SUBMITTED.value, time)
        else:  # an event stamped before the submission (clock skew): the idea still began as submitted
            summary.history.insert(0, (S.SUBMITTED.value, time))
        item["summary"] = "Idén lämnades in"
        if view.challenge_id:
            item["challenge_id"] = view.challenge_id
    elif kind == "routed":
        targets = list(data.get("organisations", []))
        view.organisations = targets
        view.areas = list(data.get("areas", []))
        view.routing_reason = data.get("reason")
        view.triage = bool(data.get("triage"))
        view.title = view.title or data.get("title")
        summary.organisations = sorted({t["organisation"] for t in targets})
        summary.units = sorted({f"{t['organisation']}/{t['unit']}" for t in targets if t.get("unit")})
        summary.areas = sorted({a["area"] for a in view.areas})
        if view.state in (None, S.SUBMITTED.value):
            _enter(f, S.ROUTED.value, time)
        item.update(
            summary=data.get("reason", ""),
            organisations=summary.organisations,
            areas=summary.areas,
            **({"rerouted_by": data["rerouted_by"]} if data.get("rerouted_by") else {}),
        )
    elif kind == "status-changed":
        to_state = data.get("to_state")
        _enter(f, to_state, time)
        if to_state == S.MERGED.value:
            view.merged_into = data.get("merged_into")
        if to_state == S.DECLINED.value:
            view.decline_reason = data.get("reason")
        if to_state == S.WITHDRAWN.value:
            view.withdraw_reason = data.get("reason")
        if to_state == S.SPREAD.value and data.get("organisation"):
            summary.spread_to = sorted({*summary.spread_to, data["organisation"]})
        item["summary"] = data.get("reason") or ""
        item.update({k: data[k] for k in ("to_state", "from_state", "organisation", "merged_into") if data.get(k)})
        if to_state == S.WITHDRAWN.value:
            item["by_submitter"] = True  # changed_by is the submitter's pseudonym: not shown, not a name
        elif data.get("changed_by"):
            item["changed_by"] = data["changed_by"]
    elif kind == "edited":
        item.update(summary="", previous_title=view.title)
        view.title, view.description = data.get("title"), data.get("description")
        view.language = data.get("language") or view.language
        view.edits += 1
    elif kind == "assigned":
        organisation, assignee = data.get("organisation"), data.get("assignee")
        if organisation:
            if assignee:
                view.assignees[organisation] = assignee
            else:
                view.assignees.pop(organisation, None)
        item.update(
            summary="",
            organisation=organisation,
            assignee=assignee,
            previous=data.get("previous"),
            assigned_by=data.get("assigned_by"),
        )
    elif kind == "engagement":
        engagement, person = data.get("kind"), data.get("person_key")
        if engagement == "comment":
            view.comments += 1
            summary.comments += 1
        elif engagement == "support" and person:
            f.supporters.add(person)
        elif engagement == "follow" and person:
            f.followers.add(person)
        item.update(summary="", engagement=engagement)
        if engagement == "comment":
            _comment(item, data)
    elif kind == CARRIED:
        person = data.get("person_key")
        if person:
            (f.supporters if data.get("kind") == "support" else f.followers).add(person)
        return None  # counted on this idea, told in the merged idea's own story
    elif kind == MERGED_IN:
        if data.get("from_idea") and data["from_idea"] not in view.merged_from:
            view.merged_from.append(data["from_idea"])
        item.update(summary="", from_idea=data.get("from_idea"))
    elif kind == "notified":
        outcome = data.get("outcome", "unknown")
        summary.notifications[outcome] = summary.notifications.get(outcome, 0) + 1
        return None  # counted, not part of the story shown
    else:
        item["summary"] = ""
    return item


def _comment(item: dict[str, Any], data: dict[str, Any]) -> None:
    """A comment's item: its text and its author's name still sealed (the read model opens them), or removed
    once its author was erased; ``anonymous`` when the author chose "anonym"; ``official``: an officer's answer
    for that organisation."""
    if data.get("text_sealed"):
        item["text_sealed"] = data["text_sealed"]
    elif data.get("text_erased"):
        item["removed"] = True
    if data.get("anonymous"):
        item["anonymous"] = True
    elif data.get("person_sealed") and not item.get("removed"):
        item["person_sealed"] = data["person_sealed"]
    if data.get("official"):
        item["official"] = data["official"]

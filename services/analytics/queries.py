"""The read side's use cases, shared by the JSON API and the pages: one idea, lists of ideas (browse and the
inbox), similar ideas, challenges, a figure, "my ideas".

Who submitted an idea, who wrote a comment and what it says are sealed in the projection; they are opened here,
with the people's keyring, only for the answer being made (never written back): a value whose key is gone reads as
erased ("en tidigare medarbetare", "Kommentaren är borttagen"). What each person may see of them is access.py's."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.analytics import access, figures
from services.analytics.cache import FigureCache
from services.analytics.challenges import challenge_figures, concerns, is_open, public_challenge
from services.analytics.domain import ANY, IdeaSummary, IdeaView, project_idea, submitter_of
from services.analytics.figures import Filters
from services.analytics.mirror import IdeaMirror, NoSuggestions
from services.analytics.people import Keys, open_person, open_text
from services.analytics.store import Projections
from shared.catalogue import Catalogue
from shared.lifecycle import AWAITING_ACKNOWLEDGEMENT

FIGURES = ("overview", "funnel", "time-in-state", "response-times", "participation")


class BadQuery(ValueError):
    """A query parameter names something that does not exist or is out of range."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))


@dataclass(frozen=True)
class Scope:
    """Validated filters: unit resolved to its organisation."""

    filters: Filters
    unit_key: str | None = None


def check_scope(
    catalogue: Catalogue,
    *,
    organisation: str | None = None,
    unit: str | None = None,
    area: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Scope:
    """Check filter values against the catalogue; raise :class:`BadQuery` naming every bad parameter."""
    errors: list[tuple[str, str]] = []
    if organisation and catalogue.organisation(organisation) is None:
        errors.append(("organisation", f"unknown organisation '{organisation}'"))
    unit_key = None
    if unit:
        owners = [o.id for o in catalogue.organisations if any(u.id == unit for u in o.units)]
        if organisation and catalogue.organisation(organisation) is not None:
            if organisation not in owners:
                errors.append(("unit", f"unknown unit '{unit}' in organisation '{organisation}'"))
            else:
                unit_key = f"{organisation}/{unit}"
        elif not owners:
            errors.append(("unit", f"unknown unit '{unit}'"))
        elif len(owners) > 1:
            errors.append(("unit", f"unit '{unit}' exists in several organisations; give organisation too"))
        else:
            unit_key = f"{owners[0]}/{unit}"
    if area and catalogue.area(area) is None:
        errors.append(("area", f"unknown area '{area}'"))
    if start and end and end < start:
        errors.append(("to", f"must not be before 'from' ({start.isoformat()})"))
    if errors:
        raise BadQuery(errors)
    return Scope(Filters(organisation=organisation, unit=unit, area=area, start=start, end=end), unit_key)


@dataclass(frozen=True)
class Figure:
    """A computed figure and its JSON text (as FastAPI would write it)."""

    data: dict[str, Any]
    json: bytes

    @classmethod
    def of(cls, data: dict[str, Any]) -> Figure:
        return cls(data, json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode())


@dataclass(frozen=True)
class Listing:
    """What a list of ideas asks for (browse, the inbox): the scope, a state, a challenge, words to search, an
    assignment filter (``me``: assigned to the person asking; ``none``: unassigned for the scope's organisation, or
    for every one) and the page."""

    scope: Scope
    state: str | None = None
    challenge: str | None = None
    q: str | None = None
    assigned: str | None = None
    page: int = 1
    page_size: int = 20


class ReadModel:
    def __init__(
        self,
        store: Projections,
        catalogue: Catalogue,
        tz: ZoneInfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        figures_cache: FigureCache | None = None,
        *,
        keyring: Keys,
        mirror: IdeaMirror | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.figures_cache = figures_cache if figures_cache is not None else FigureCache(max_age_s=0, max_scopes=0)
        """Off unless given (the service gives one: ``ANALYTICS_FIGURES_CACHE_S``, ``..._SCOPES``)."""
        self.mirror = mirror if mirror is not None else IdeaMirror(store, NoSuggestions())
        """The ideas' text in memory: search and similar ideas (``mirror.py``)."""
        self.catalogue = catalogue
        self.tz = tz
        self.clock = clock

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    @catalogue.setter
    def catalogue(self, catalogue: Catalogue) -> None:
        """A new catalogue (live reload) has other targets and head counts: no cached figure survives it."""
        self._catalogue = catalogue
        self.figures_cache.clear()

    def officer_name(self, officer_id: str | None) -> str | None:
        """An officer's name from the catalogue (their id if the catalogue no longer lists them)."""
        if not officer_id:
            return None
        return next((o.name for o in self.catalogue.officers if o.id == officer_id), officer_id)

    # --- one idea ---

    async def idea(self, idea_id: str) -> IdeaView | None:
        """The idea with its sealed values opened (in this answer only): the submitter's name, or erased; each
        comment's text and its author's name, or removed. access.py decides what of it a person sees."""
        entries = await self.store.entries(idea_id)
        if not entries:
            return None
        view = project_idea(idea_id, entries)
        if view.submitter is not None:
            view.submitter = await self.submitter(view.submitter)
        for item in view.timeline:
            if "text_sealed" in item:
                text = await open_text(self.keyring, item.pop("text_sealed"))
                if text is None:
                    item["removed"] = True
                else:
                    item["summary"] = text
            if "person_sealed" in item:
                author = await open_person(self.keyring, item.pop("person_sealed"))
                if author is None:
                    item["removed"] = True
                else:
                    item["author"] = author.get("name")
            if item.get("removed"):
                item["summary"] = ""
                item.pop("author", None)
            for name in ("assignee", "previous", "assigned_by"):
                if item.get(name):
                    item[f"{name}_name"] = self.officer_name(item[name])
        if view.merged_from:
            titles = await self.titles(view.merged_from)
            for item in view.timeline:
                if item["kind"] == "merged-in":
                    item["from_title"] = titles.get(item["from_idea"], "")
        return view

    async def submitter(self, known: dict[str, Any]) -> dict[str, Any]:
        """Who submitted an idea (``domain.submitter_of``) with the sealed name opened: ``{"status": "employee",
        "organisation", "name"}``; ``former-employee`` when the key is gone (erased); ``anonymous``."""
        found = {k: v for k, v in known.items() if k != "sealed"}
        if found["status"] != "employee":
            return {"status": found["status"]}
        person = await open_person(self.keyring, known["sealed"]) if known.get("sealed") else None
        if person is None:
            return {"status": "former-employee"}
        return {**found, "name": person.get("name")}

    async def similar(
        self, title: str, description: str, *, exclude: Iterable[str] = (), limit: int = 3
    ) -> list[dict[str, Any]]:
        """Ideas that say the same (``mirror.py``, ``shared/similarity.py``): nothing below the engine's threshold."""
        return await self.mirror.similar_to(title, description, exclude=exclude, limit=limit)

    async def similar_to_idea(self, view: IdeaView) -> list[dict[str, Any]]:
        """The ideas that say the same as this one (itself, and those merged into it, left out)."""
        return await self.similar(view.title or "", view.description or "", exclude={view.idea_id, *view.merged_from})

    async def titles(self, idea_ids: Iterable[str]) -> dict[str, str]:
        return {s.idea_id: s.title for s in await self.store.summaries(list(dict.fromkeys(idea_ids)))}

    # --- a person's own ideas ---

    async def ideas_of(self, email: str) -> list[dict[str, Any]]:
        """The named ideas this person (their e-mail address, in any case) submitted, newest first: those under
        their pseudonym whose sealed submitter is under their current data key (a person who was erased and came
        back starts from nothing). Each with what happened last, whether they may still edit or withdraw it, its
        challenge, and whether it is assigned (never to whom)."""
        pseudonym = self.keyring.pseudonym(email)
        key = await self.keyring.current(pseudonym)
        if key is None:
            return []
        ids = await self.store.submitted_by(pseudonym)
        summaries = {
            s.idea_id: s
            for s in await self.store.summaries(ids)
            if s.submitter_sealed and s.submitter_sealed.get("key") == key.key_id
        }
        mine = [summaries[i] for i in ids if i in summaries]
        targets = await self.titles(s.merged_into for s in mine if s.merged_into)
        challenges = {c: await self.store.challenge(c) for c in {s.challenge_id for s in mine if s.challenge_id}}
        return [access.my_idea(idea, targets, challenges) for idea in mine]

    # --- lists: browse (anyone) and the inbox (officers) ---

    async def ideas(self, listing: Listing, *, officer: bool, me: str | None = None) -> dict[str, Any]:
        """One page of ideas, newest first, narrowed by the listing. ``officer``: the inbox's items (the
        submitter's name, overdue targets, next states, assignees, suggested duplicates of the ideas not yet
        acknowledged), else the public ones. ``me``: the officer id ``assigned=me`` means."""
        f = listing.scope.filters
        assigned = listing.assigned
        ids = await self.store.idea_ids(
            organisation=f.organisation,
            unit=listing.scope.unit_key,
            area=f.area,
            state=listing.state,
            challenge=listing.challenge,
            assignee=me if assigned == "me" else None,
            unassigned=(f.organisation or ANY) if assigned == "none" else None,
        )
        if assigned == "me" and not me:
            ids = []
        shown = await self.mirror.matching(listing.q)  # submitted ideas (with their text), or those that match q
        ids = [i for i in ids if i in shown]
        total = len(ids)
        chosen = ids[(listing.page - 1) * listing.page_size : listing.page * listing.page_size]
        summaries = {s.idea_id: s for s in await self.store.summaries(chosen)}
        page = [summaries[i] for i in chosen if i in summaries]
        if officer:
            items = await self._inbox_items(page, f.organisation)
        else:
            items = [access.public_item(idea) for idea in page]
        return {
            "view": "officer" if officer else "public",
            "items": items,
            "page": listing.page,
            "page_size": listing.page_size,
            "total": total,
            "pages": max(math.ceil(total / listing.page_size), 1),
        }

    async def _inbox_items(self, page: list[IdeaSummary], organisation: str | None) -> list[dict[str, Any]]:
        overdue = self._overdue({s.idea_id: s for s in page})
        awaiting = [(i.idea_id, i.title, i.description) for i in page if i.state in AWAITING_ACKNOWLEDGEMENT]
        similar = await self.mirror.similar_to_each(awaiting) if awaiting else {}
        items = []
        for idea in page:
            item = access.officer_item(idea, overdue.get(idea.idea_id, []), await self.submitter(submitter_of(idea)))
            item["assignees"] = {
                org: {"id": officer, "name": self.officer_name(officer)} for org, officer in idea.assignees.items()
            }
            item["assignee"] = item["assignees"].get(organisation) if organisation else None
            item["similar"] = similar.get(idea.idea_id, [])  # suggested duplicates of an idea not yet acknowledged
            items.append(item)
        return items

    def _overdue(self, summaries: dict[str, IdeaSummary]) -> dict[str, list[str]]:
        result = figures.response_times(list(summaries.values()), self.catalogue.targets, now=self.clock(), tz=self.tz)
        late: dict[str, list[str]] = {}
        for missed in result["missed"]:
            if missed["status"] == "overdue":
                late.setdefault(missed["idea_id"], []).append(missed["target"])
        return late

    # --- challenges ---

    async def challenges(self, *, open: bool | None = None, organisation: str | None = None) -> list[dict[str, Any]]:
        """Every challenge, newest first (open and closed, or only those ``open`` says), or only an
        organisation's (``challenges.concerns``), each with its number of ideas."""
        now = self.clock()
        found = [
            c
            for c in await self.store.challenges()
            if (open is None or is_open(c, now) == open) and (organisation is None or concerns(c, organisation))
        ]
        counts = await self.store.index_sizes("challenge", [c["challenge_id"] for c in found])
        return [{**public_challenge(c, now), "ideas": counts.get(c["challenge_id"], 0)} for c in found]

    async def challenge(self, challenge_id: str) -> dict[str, Any] | None:
        """A challenge, whether it is open, its ideas (newest first, with their states) and its figures."""
        challenge = await self.store.challenge(challenge_id)
        if challenge is None:
            return None
        ids = await self.store.idea_ids(challenge=challenge_id)
        ideas = [s for s in await self.store.summaries(ids) if s.submitted]
        return {
            **public_challenge(challenge, self.clock()),
            "ideas": [access.public_item(idea) for idea in ideas],
            "figures": challenge_figures(ideas),
        }

    async def challenge_exists(self, challenge_id: str) -> bool:
        return await self.store.challenge(challenge_id) is not None

    # --- figures ---

    async def figure(self, name: str, scope: Scope) -> dict[str, Any]:
        """A figure over the ideas in ``scope`` (a copy of its top level: callers may add to it)."""
        return dict((await self._figure(name, scope)).data)

    async def figure_json(self, name: str, scope: Scope) -> bytes:
        """The same figure as JSON text, encoded once per computation (a figure lists ideas, so its text grows
        with them: encoding it on every request would cost O(ideas) again)."""
        return (await self._figure(name, scope)).json

    async def _figure(self, name: str, scope: Scope) -> Figure:
        """O(ideas) to compute, so cached per figure and scope while the projection is unchanged (``cache.py``);
        the computation runs in a worker thread, so that the service answers other requests meanwhile."""
        if name not in FIGURES:
            raise KeyError(name)
        version = await self.store.version() if self.figures_cache.enabled else ""
        return await self.figures_cache.get((name, scope), version, lambda: self._load_and_compute(name, scope))

    async def _load_and_compute(self, name: str, scope: Scope) -> Figure:
        f = scope.filters
        if name == "participation":  # participation filters on the submitter's organisation, not the routing
            loaded = await self.store.summaries(area=f.area)
        else:
            loaded = await self.store.summaries(organisation=f.organisation, unit=scope.unit_key, area=f.area)
        return await asyncio.to_thread(self._compute, name, scope, loaded, self.catalogue, self.clock())

    def _compute(
        self, name: str, scope: Scope, loaded: list[IdeaSummary], catalogue: Catalogue, now: datetime
    ) -> Figure:
        f = scope.filters
        if name == "participation":
            ideas = figures.select(loaded, Filters(area=f.area, start=f.start, end=f.end), self.tz)
            data = figures.participation(ideas, catalogue, organisation=f.organisation, tz=self.tz)
        else:
            ideas = figures.select(loaded, f, self.tz)
            if name == "overview":
                data = figures.overview(ideas, catalogue, now=now, tz=self.tz)
            elif name == "funnel":
                data = figures.funnel(ideas)
            elif name == "time-in-state":
                data = figures.time_in_state(ideas)
            else:
                data = figures.response_times(ideas, catalogue.targets, now=now, tz=self.tz)
        return Figure.of({"filters": f.describe(), **data})

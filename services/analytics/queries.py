"""The read side's use cases, shared by the JSON API and the pages: one idea, an inbox, a figure, "my ideas".

Who submitted an idea and what a comment says are sealed in the projection; they are opened here, with the
people's keyring, only for the answer being made (never written back): a value whose key is gone reads as erased
("en tidigare medarbetare", "Kommentaren är borttagen"). What each person may see of them is access.py's."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.analytics import figures
from services.analytics.cache import FigureCache
from services.analytics.domain import IdeaSummary, IdeaView, next_states, project_idea, submitter_of
from services.analytics.figures import Filters
from services.analytics.people import Keys, open_person, open_text
from services.analytics.store import Projections
from shared.catalogue import Catalogue

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
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.figures_cache = figures_cache if figures_cache is not None else FigureCache(max_age_s=0, max_scopes=0)
        """Off unless given (the service gives one: ``ANALYTICS_FIGURES_CACHE_S``, ``..._SCOPES``)."""
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

    async def idea(self, idea_id: str) -> IdeaView | None:
        """The idea with its sealed values opened (in this answer only): the submitter's name, or erased; each
        comment's text, or removed. access.py decides what of it a person sees."""
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

    async def ideas_of(self, email: str) -> list[dict[str, Any]]:
        """The named ideas this person (their e-mail address, in any case) submitted, newest first: those under
        their pseudonym whose sealed submitter is under their current data key (a person who was erased and came
        back starts from nothing)."""
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
        return [
            {
                "idea_id": idea.idea_id,
                "title": idea.title,
                "state": idea.state,
                "state_since": idea.state_since,
                "submitted_at": idea.created_at,
                "organisations": idea.organisations,
                "status_url": f"/ideas/{idea.idea_id}",
            }
            for idea in (summaries[i] for i in ids if i in summaries)
        ]

    async def inbox(
        self,
        scope: Scope,
        *,
        state: str | None = None,
        q: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> dict[str, Any]:
        """Ideas newest first, narrowed by organisation, unit, area, state and a text search, one page of them."""
        f = scope.filters
        ids = await self.store.idea_ids(organisation=f.organisation, unit=scope.unit_key, area=f.area, state=state)
        if q:
            needle = q.casefold()
            matching = []
            for idea in await self.store.summaries(ids):
                if needle in idea.title.casefold() or needle in idea.description.casefold():
                    matching.append(idea.idea_id)
            ids = matching
        total = len(ids)
        chosen = ids[(page - 1) * page_size : page * page_size]
        summaries = {s.idea_id: s for s in await self.store.summaries(chosen)}
        overdue = self._overdue({i: s for i, s in summaries.items()})
        items = [
            self._item(summaries[i], overdue.get(i, []), await self.submitter(submitter_of(summaries[i])))
            for i in chosen
            if i in summaries
        ]
        return {
            "items": items,
            "page": page,
            "page_size": page_size,
            "total": total,
            "pages": max(math.ceil(total / page_size), 1),
        }

    def _overdue(self, summaries: dict[str, IdeaSummary]) -> dict[str, list[str]]:
        result = figures.response_times(list(summaries.values()), self.catalogue.targets, now=self.clock(), tz=self.tz)
        late: dict[str, list[str]] = {}
        for missed in result["missed"]:
            if missed["status"] == "overdue":
                late.setdefault(missed["idea_id"], []).append(missed["target"])
        return late

    @staticmethod
    def _item(idea: IdeaSummary, overdue: list[str], submitter: dict[str, Any]) -> dict[str, Any]:
        """An inbox row: the inbox is for those who act on its ideas, who may see the submitter's name."""
        return {
            "idea_id": idea.idea_id,
            "title": idea.title,
            "state": idea.state,
            "state_since": idea.state_since,
            "submitted_at": idea.created_at,
            "organisations": idea.organisations,
            "units": idea.units,
            "areas": idea.areas,
            "supporters": idea.supporters,
            "comments": idea.comments,
            "cross_organisation": idea.cross_organisation,
            "overdue_targets": overdue,
            "next_states": list(next_states(idea.state)),
            "submitter": submitter,
        }

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

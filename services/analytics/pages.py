"""Server-rendered pages, Swedish by default and English at ``/en/...`` or ``?lang=en``: the public status page
of an idea, an organisation's officer inbox, the signed-in person's own ideas and the dashboard of the change
process, each under the platform's one site header (shared/site.py). Idea text is always escaped (Jinja2
autoescape); nothing personal is shown on the public status page (the submitter is "en medarbetare" of their
organisation, "en tidigare medarbetare" once erased, or "anonym"); those who act on the idea see the submitter's
name and the comments. Who may see what: services/analytics/access.py, the same rules as the JSON API."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.analytics import access, charts
from services.analytics.api import SLUG, bad_query_response
from services.analytics.domain import next_states, parse_time
from services.analytics.queries import BadQuery, ReadModel, check_scope
from services.analytics.texts import texts
from shared import csp
from shared.catalogue import display_name
from shared.events import IdeaState
from shared.identity import Identity
from shared.lifecycle import ALL_STATES, CLOSED_PHASE, MAIN_LINE, OPEN_PHASE, PROGRESS_PHASE
from shared.principal import Principal
from shared.site import site_header
from shared.static import files_in, serve

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
STATES = tuple(state.value for state in ALL_STATES)
"""The states as the templates see them (plain strings), the main line first."""
PATH_LANG = {"": "sv", "/en": "en"}

LangQ = Annotated[Literal["sv", "en"] | None, Query(description="sv (default) or en")]

# Forms submit empty fields: on the pages an empty value means "any".
OptSlug = Annotated[str | None, Query(pattern=r"^$|^[a-z0-9][a-z0-9-]{0,62}$")]


def parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise BadQuery([(field, f"not a valid date '{value}' (YYYY-MM-DD)")]) from exc
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        raise BadQuery([(field, "must be between 2000-01-01 and 2100-12-31")])
    return day


def environment(tz: ZoneInfo) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True)

    def localtime(iso: str | None, with_time: bool = True) -> str:
        if not iso:
            return ""
        moment = parse_time(iso).astimezone(tz)
        return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

    env.filters["localtime"] = localtime
    return env


def page_router(read: ReadModel, *, identity: Identity, intake_url: str, tz: ZoneInfo) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    env = environment(tz)
    serve(router, "/static/analytics", files_in(STATIC))  # the pages' stylesheet, the inbox's script
    # shared/csp.py: no inline script or style; the inbox's script may call intake on its own origin (intake_url)
    policy = csp.page_policy(sign_out_to=identity.oidc.issuer_url, connect_to=intake_url)

    def names(lang: str) -> dict[str, dict[str, str]]:
        catalogue = read.catalogue
        return {
            "organisations": {o.id: display_name(o, lang) for o in catalogue.organisations},
            "units": {f"{o.id}/{u.id}": display_name(u, lang) for o in catalogue.organisations for u in o.units},
            "areas": {a.id: display_name(a, lang) for a in catalogue.areas},
        }

    def render(
        name: str, lang: str, request: Request, principal: Principal | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        path = request.url.path
        here = path.removeprefix("/en") if path.startswith("/en/") else path
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])
        suffix = f"?{query}" if query else ""
        other = (here if lang == "en" else f"/en{here}") + suffix
        this_page = path + (f"?{request.url.query}" if request.url.query else "")
        html = env.get_template(name).render(
            lang=lang,
            t=texts(lang),
            names=names(lang),
            other_language_url=other,
            prefix="/en" if lang == "en" else "",
            header=site_header(principal, lang, this_page),
            principal=principal,
            sign_in_url="/auth/login?" + urlencode({"next": this_page}),
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={csp.HEADER: policy})

    def language(request: Request, lang: str | None) -> str:
        return "en" if request.url.path.startswith("/en/") or lang == "en" else "sv"

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    for lang_prefix in PATH_LANG:

        @router.get(f"{lang_prefix}/ideas/{{idea_id}}", response_class=HTMLResponse)
        async def status_page(
            request: Request,
            idea_id: str,
            lang: LangQ = None,
            principal: Principal | None = Depends(identity.optional),
        ) -> HTMLResponse:
            chosen = language(request, lang)
            view = await read.idea(idea_id) if UUID.match(idea_id) else None
            if view is None:
                message = texts(chosen)["not_found"]
                return render("not_found.html", chosen, request, principal, status=404, message=message)
            kind = access.idea_view_for(principal, view)
            document = access.idea_document(view, kind)
            # the story: who acted only in the officer view (officers' ids are not for the public)
            story = [
                {k: item.get(k) for k in ("kind", "time", "summary", "to_state", "organisations", "areas")}
                | {
                    "rerouted": bool(item.get("rerouted") or item.get("rerouted_by")),
                    "by": item.get("changed_by") or item.get("rerouted_by"),
                }
                for item in document["timeline"]
                if item["kind"] in ("submitted", "routed", "status-changed")
            ]
            comments = [
                {"time": item["time"], "text": item.get("summary") or "", "removed": bool(item.get("removed"))}
                for item in document["timeline"]
                if kind == "officer" and item["kind"] == "engagement" and item.get("engagement") == "comment"
            ]
            return render("idea.html", chosen, request, principal, idea=document, story=story, comments=comments)

        @router.get(f"{lang_prefix}/inbox/{{organisation}}", response_class=HTMLResponse)
        async def inbox_page(
            request: Request,
            organisation: str,
            unit: OptSlug = None,
            area: OptSlug = None,
            state: Annotated[IdeaState | Literal[""] | None, Query()] = None,
            q: Annotated[str | None, Query(max_length=200)] = None,
            page: Annotated[int, Query(ge=1, le=10_000)] = 1,
            page_size: Annotated[int, Query(ge=1, le=100)] = 20,
            lang: LangQ = None,
        ) -> Any:
            principal = await identity.page_principal(request)
            chosen = language(request, lang)
            t = texts(chosen)
            if not re.match(SLUG, organisation) or read.catalogue.organisation(organisation) is None:
                return render("not_found.html", chosen, request, principal, status=404, message=t["no_organisation"])
            if access.inbox_refusal(principal, organisation):
                org_name = names(chosen)["organisations"].get(organisation, organisation)
                message = t["inbox_forbidden"].format(organisation=org_name)
                return render("forbidden.html", chosen, request, principal, status=403, message=message)
            try:
                scope = check_scope(read.catalogue, organisation=organisation, unit=unit or None, area=area or None)
            except BadQuery as exc:
                return bad_query_response(exc)
            result = await read.inbox(scope, state=state or None, q=q or None, page=page, page_size=page_size)
            org = read.catalogue.organisation(organisation)
            return render(
                "inbox.html",
                chosen,
                request,
                principal,
                organisation=organisation,
                units=[u.id for u in org.units] if org else [],
                areas=[a.id for a in read.catalogue.areas],
                states=STATES,
                selected={"unit": unit or "", "area": area or "", "state": state or "", "q": q or ""},
                result=result,
                intake_url=intake_url.rstrip("/"),
                transitions={s: list(next_states(s)) for s in STATES},
            )

        @router.get(f"{lang_prefix}/my/ideas", response_class=HTMLResponse)
        async def my_ideas_page(request: Request, lang: LangQ = None) -> Any:
            principal = await identity.page_principal(request)
            chosen = language(request, lang)
            items = await read.ideas_of(principal.email) if principal.email else []
            return render("my_ideas.html", chosen, request, principal, items=items)

        @router.get(f"{lang_prefix}/dashboard", response_class=HTMLResponse)
        async def dashboard(
            request: Request,
            organisation: OptSlug = None,
            area: OptSlug = None,
            start: Annotated[str | None, Query(alias="from", pattern=r"^$|^\d{4}-\d{2}-\d{2}$")] = None,
            end: Annotated[str | None, Query(alias="to", pattern=r"^$|^\d{4}-\d{2}-\d{2}$")] = None,
            refresh: Annotated[int | None, Query(ge=10, le=3600, description="Reload every N seconds")] = None,
            lang: LangQ = None,
            principal: Principal | None = Depends(identity.optional),
        ) -> Any:
            chosen = language(request, lang)
            try:
                first, last = parse_day(start, "from"), parse_day(end, "to")
                scope = check_scope(
                    read.catalogue, organisation=organisation or None, area=area or None, start=first, end=last
                )
            except BadQuery as exc:
                return bad_query_response(exc)
            data = {
                name: await read.figure(name, scope)
                for name in ("overview", "funnel", "time-in-state", "response-times", "participation")
            }
            selected = {"organisation": organisation or "", "area": area or "", "from": start or "", "to": end or ""}
            return render(
                "dashboard.html",
                chosen,
                request,
                principal,
                data=data,
                svg=dashboard_charts(data, texts(chosen), names(chosen)),
                organisations=read.catalogue.organisation_ids,
                areas=[a.id for a in read.catalogue.areas],
                selected=selected,
                query=urlencode({k: v for k, v in selected.items() if v}),
                refresh=refresh,
            )

    return router


def dashboard_charts(data: dict[str, Any], t: dict[str, Any], names: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The dashboard's SVG charts from its figures (pure)."""
    states = t["states"]
    funnel = data["funnel"]
    time_rows = [s for s in data["time-in-state"]["states"] if s["count"]]
    responses = data["response-times"]["targets"]
    participation = data["participation"]
    months = [m["month"] for m in participation["months"]]
    org_rows = [r for r in participation["rows"] if r["unit"] is None]
    series = []
    for org in sorted({r["organisation"] for r in org_rows}):
        per_month = {r["month"]: r["submitters"] for r in org_rows if r["organisation"] == org}
        series.append((names["organisations"].get(org, org or "?"), [per_month.get(m, 0) for m in months]))
    overview = data["overview"]

    def phases(rows: list[dict[str, Any]], label: dict[str, str]) -> Any:
        rows = [r for r in rows if r["total"]]
        return charts.stacked_bar_chart(
            f"chart-by-{'org' if label is names['organisations'] else 'area'}",
            t["by_organisation"] if label is names["organisations"] else t["by_area"],
            [label.get(r["id"], r["id"]) for r in rows],
            [
                (t["open_phase"], [sum(r["by_state"][s] for s in OPEN_PHASE) for r in rows]),
                (t["progress_phase"], [sum(r["by_state"][s] for s in PROGRESS_PHASE) for r in rows]),
                (t["closed_phase"], [sum(r["by_state"][s] for s in CLOSED_PHASE) for r in rows]),
            ],
            no_data=t["no_data"],
        )

    return {
        "funnel": charts.bar_chart(
            "chart-funnel",
            t["funnel"],
            [(states[s["stage"]], s["count"]) for s in funnel["stages"]]
            + [(states[state], count) for state, count in funnel["exits"].items()],
            no_data=t["no_data"],
        ),
        "time_in_state": charts.grouped_bar_chart(
            "chart-time",
            t["time_in_state"],
            [states[s["state"]] for s in time_rows],
            [(t["median"], [s["median_days"] for s in time_rows]), (t["p90"], [s["p90_days"] for s in time_rows])],
            no_data=t["no_data"],
        ),
        "response_times": charts.stacked_bar_chart(
            "chart-response",
            t["response_times"],
            [f"{t['targets'][r['target']]} ≤ {r['within_working_days']}" for r in responses],
            [
                (t["met"], [r["met"] for r in responses]),
                (t["late"], [r["late"] for r in responses]),
                (t["pending"], [r["pending"] for r in responses]),
                (t["overdue_label"], [r["overdue"] for r in responses]),
            ],
            no_data=t["no_data"],
        ),
        "participation": charts.line_chart(
            "chart-participation", t["participation"], months, series, no_data=t["no_data"]
        ),
        "by_organisation": phases(overview["by_organisation"], names["organisations"]),
        "by_area": phases(overview["by_area"], names["areas"]),
        "lifecycle": tuple(state.value for state in MAIN_LINE),
        "participation_series": series,
        "months": months,
    }

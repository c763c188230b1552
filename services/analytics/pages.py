"""Server-rendered pages, Swedish by default and English at ``/en/...`` or ``?lang=en``, each under the platform's
one site header (shared/site.py): the public status page of an idea (where signed-in people support, follow and
comment), the dashboard of the change process, and (pages_lists.py) the list of every idea, the challenges and an
organisation's officer inbox, and (pages_mine.py) the signed-in person's own ideas. Idea text is always escaped
(Jinja2 autoescape); every page works without JavaScript (the inbox's state changes excepted: a static script,
no inline one). Who may see what: services/analytics/access.py, the same rules as the JSON API. What the pages
share: page_kit.py."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.analytics import access, charts
from services.analytics.api import bad_query_response
from services.analytics.challenges import public_challenge
from services.analytics.page_kit import (
    PATH_LANG,
    STATIC,
    UUID,
    LangQ,
    OptSlug,
    Pages,
    environment,
    parse_day,
)
from services.analytics.pages_lists import list_pages
from services.analytics.pages_mine import my_pages
from services.analytics.queries import BadQuery, ReadModel, check_scope
from services.analytics.texts import texts
from shared import csp
from shared.identity import Identity
from shared.lifecycle import CLOSED_PHASE, MAIN_LINE, OPEN_PHASE, PROGRESS_PHASE
from shared.principal import Principal
from shared.static import files_in, serve

STORY_KINDS = ("submitted", "routed", "status-changed", "edited", "assigned", "merged-in")
"""The timeline items the status page tells (supports, follows and comments are shown apart)."""
DONE = ("support", "comments", "follow")
"""What intake says was done when it sends a person back to the status page (``?done=``)."""


def page_router(read: ReadModel, *, identity: Identity, intake_url: str, tz: ZoneInfo) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    serve(router, "/static/analytics", files_in(STATIC))  # the pages' stylesheet, the inbox's script
    # shared/csp.py: no inline script or style; the inbox's script may call intake on its own origin (intake_url)
    policy = csp.page_policy(sign_out_to=identity.oidc.issuer_url, connect_to=intake_url)
    pages = Pages(read, identity, environment(tz), policy, intake_url.rstrip("/"))

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    for lang_prefix in PATH_LANG:
        status_page(router, pages, lang_prefix)
        dashboard_page(router, pages, lang_prefix)
        list_pages(router, pages, lang_prefix)
        my_pages(router, pages, lang_prefix)
    return router


def status_page(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    read, identity = pages.read, pages.identity

    @router.get(f"{lang_prefix}/ideas/{{idea_id}}", response_class=HTMLResponse)
    async def idea_page(
        request: Request,
        idea_id: str,
        lang: LangQ = None,
        done: Annotated[str | None, Query(max_length=20)] = None,
        comment: Annotated[str | None, Query(max_length=20)] = None,
        principal: Principal | None = Depends(identity.optional),
    ) -> HTMLResponse:
        chosen = pages.language(request, lang)
        view = await read.idea(idea_id) if UUID.match(idea_id) else None
        if view is None:
            return pages.not_found(chosen, request, principal, texts(chosen)["not_found"])
        kind = access.idea_view_for(principal, view)
        document = access.idea_document(view, kind, read.officer_name)
        challenge = await read.store.challenge(view.challenge_id) if view.challenge_id else None
        titles = await read.titles([*view.merged_from, *([view.merged_into] if view.merged_into else [])])
        return pages.render(
            "idea.html",
            chosen,
            request,
            principal,
            idea=document,
            story=[item for item in document["timeline"] if item["kind"] in STORY_KINDS],
            comments=[
                item
                for item in document["timeline"]
                if item["kind"] == "engagement" and item.get("engagement") == "comment"
            ],
            similar=await read.similar_to_idea(view) if view.state not in ("merged", "withdrawn") else [],
            challenge=public_challenge(challenge, read.clock()) if challenge else None,
            titles=titles,
            done=done if done in DONE else None,
            comment_invalid=comment == "invalid",
        )


def dashboard_page(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    read, identity = pages.read, pages.identity

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
        chosen = pages.language(request, lang)
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
        return pages.render(
            "dashboard.html",
            chosen,
            request,
            principal,
            data=data,
            svg=dashboard_charts(data, texts(chosen), pages.names(chosen)),
            organisations=read.catalogue.organisation_ids,
            areas=[a.id for a in read.catalogue.areas],
            selected=selected,
            query=urlencode({k: v for k, v in selected.items() if v}),
            refresh=refresh,
        )


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

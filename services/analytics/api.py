"""The JSON API (and its CSV exports). Query parameters outside their range answer 422 naming the parameter.

Access (services/analytics/access.py): an idea and the figures are public (an idea's comments and actors only for
those who act on it: others get ``"view": "public"``); an organisation's inbox is for its officers, the
innovation office and admins; ``/people/me/ideas`` is the signed-in person's own.

CSV: add ``?format=csv`` to any ``/api/v1/stats/...`` endpoint; ``/api/v1/stats/response-times?format=csv&table=missed``
gives the list of ideas that missed a target instead of the per-target summary.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from services.analytics import access, figures
from services.analytics.queries import FIGURES, BadQuery, ReadModel, check_scope
from services.analytics.texts import not_found_message
from shared.events import IdeaState
from shared.http_problems import problem
from shared.identity import Identity, MissingRole
from shared.principal import Principal

IDEA_ID = r"^[0-9a-fA-F-]{36}$"
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"

Organisation = Annotated[str | None, Query(pattern=SLUG, description="Organisation id from the catalogue")]
Unit = Annotated[str | None, Query(pattern=SLUG, description="Unit id from the catalogue")]
Area = Annotated[str | None, Query(pattern=SLUG, description="Area id from the catalogue")]
From = Annotated[
    date | None,
    Query(alias="from", ge=date(2000, 1, 1), le=date(2100, 12, 31), description="First day (YYYY-MM-DD, local)"),
]
To = Annotated[
    date | None,
    Query(alias="to", ge=date(2000, 1, 1), le=date(2100, 12, 31), description="Last day (YYYY-MM-DD, local)"),
]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
Lang = Annotated[Literal["sv", "en"], Query(description="Language of messages: sv (default) or en")]


def preferred_language(request: Request, lang: str | None) -> str:
    if lang in ("sv", "en"):
        return lang
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "sv"


def bad_query_response(exc: BadQuery) -> JSONResponse:
    """422 naming every parameter whose value the catalogue does not know (or that contradicts another), in the
    same body as the service's other refusals (shared/http_problems.py)."""
    errors = [{"field": field, "message": message, "type": "value_error"} for field, message in exc.errors]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, f"Invalid request: {summary}", errors=errors)


def csv_response(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def api_router(read: ReadModel, identity: Identity) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    signed_in = {401: {"description": "Not signed in: no valid bearer token or session"}}
    scoped = {**signed_in, 403: {"description": "Signed in, but not an officer of that organisation"}}

    @router.get(
        "/ideas/{idea_id}",
        tags=["ideas"],
        responses={404: {"description": "No such idea (the message in Swedish and English)"}},
        summary="An idea's timeline and current state",
        description='Anyone gets the public view (`"view": "public"`): no personal data, no officer ids, '
        'comments as counts, the submitter as `{"status": "employee", "organisation"}`, `"former-employee"` '
        '(erased) or `"anonymous"`. Officers of an organisation the idea is routed to, the innovation office and '
        'admins get `"view": "officer"`: comment texts (`"removed": true` once their author was erased), who '
        "moved the idea and the submitter's `name`.",
    )
    async def idea(
        request: Request,
        idea_id: Annotated[str, Path(pattern=IDEA_ID, description="Idea id (UUID)")],
        lang: Annotated[Literal["sv", "en"] | None, Query(description="Language of the 404 message")] = None,
        principal: Principal | None = Depends(identity.optional),
    ) -> Any:
        view = await read.idea(idea_id)
        if view is None:
            messages = not_found_message(idea_id)
            return problem(404, messages[preferred_language(request, lang)], messages=messages)
        return access.idea_document(view, access.idea_view_for(principal, view))

    @router.get(
        "/people/me/ideas",
        tags=["ideas"],
        responses=signed_in,
        summary="The ideas the signed-in person submitted (named ones), newest first, with state and status link",
    )
    async def my_ideas(principal: Principal = Depends(identity.required)) -> Any:
        items = await read.ideas_of(principal.email) if principal.email else []
        return {"person": principal.id, "items": items, "total": len(items)}

    @router.get(
        "/ideas",
        tags=["ideas"],
        responses=scoped,
        summary="The officer's inbox: ideas newest first, paginated",
        description="An organisation's inbox (`organisation`, or a `unit` of it) is for its officers, the "
        "innovation office and admins; every organisation's at once for the innovation office and admins.",
    )
    async def inbox(
        principal: Principal = Depends(identity.required),
        organisation: Organisation = None,
        unit: Unit = None,
        area: Area = None,
        state: Annotated[IdeaState | None, Query(description="Current state")] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200, description="Words in title or text")] = None,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Any:
        try:
            scope = check_scope(read.catalogue, organisation=organisation, unit=unit, area=area)
        except BadQuery as exc:
            return bad_query_response(exc)
        whose = organisation or (scope.unit_key.partition("/")[0] if scope.unit_key else None)
        if why := access.inbox_refusal(principal, whose):
            raise MissingRole(access.inbox_roles(whose), why)
        return await read.inbox(scope, state=state.value if state else None, q=q, page=page, page_size=page_size)

    def stats_endpoint(name: str, summary: str) -> None:
        async def endpoint(
            organisation: Organisation = None,
            unit: Unit = None,
            area: Area = None,
            start: From = None,
            end: To = None,
            format: Format = "json",
            table: Annotated[Literal["summary", "missed"], Query(description="CSV of response-times only")] = "summary",
        ) -> Any:
            try:
                scope = check_scope(
                    read.catalogue, organisation=organisation, unit=unit, area=area, start=start, end=end
                )
            except BadQuery as exc:
                return bad_query_response(exc)
            if format == "csv":
                header, rows = figures.csv_rows(name, await read.figure(name, scope), table=table)
                suffix = f"-{table}" if name == "response-times" else ""
                return csv_response(f"{name}{suffix}", header, rows)
            return Response(await read.figure_json(name, scope), media_type="application/json")

        router.add_api_route(
            f"/stats/{name}",
            endpoint,
            methods=["GET"],
            tags=["figures"],
            summary=summary,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON or CSV"}},
        )

    for name, summary in zip(
        FIGURES,
        (
            "Key figures: ideas by state per organisation, unit and area; cross-organisation; spread; engagement",
            "The funnel through the lifecycle",
            "Time in each state: median and 90th percentile",
            "Response times against the catalogue's targets, with the ideas that missed them",
            "Distinct submitters per organisation and unit per month, and share of employees",
        ),
        strict=True,
    ):
        stats_endpoint(name, summary)

    return router

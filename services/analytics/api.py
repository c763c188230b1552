"""The JSON API (and its CSV exports). Query parameters outside their range answer 422 naming the parameter.

Access (services/analytics/access.py): an idea, every list of ideas, similar ideas, the challenges and the figures
are public (an idea's actors and assignments only for those who act on it: others get ``"view": "public"``); an
organisation's inbox (the list with names, assignees and suggested duplicates, and its assignment filters) is for
its officers, the innovation office and admins; ``/people/me/ideas`` is the signed-in person's own.

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
from services.analytics.challenges import public_challenge
from services.analytics.queries import FIGURES, BadQuery, Listing, ReadModel, check_scope
from services.analytics.texts import challenge_not_found_message, not_found_message
from shared.events import IdeaState
from shared.http_problems import problem
from shared.identity import Identity, MissingRole
from shared.language import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, tokenize
from shared.oidc import Unauthenticated
from shared.principal import Principal

IDEA_ID = r"^[0-9a-fA-F-]{36}$"
MIN_SIMILAR_WORDS = 3
"""Fewer words than this (title and description together) are not enough to say what an idea is about."""
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
    not_found = {404: {"description": "No such idea or challenge (the message in Swedish and English)"}}

    @router.get(
        "/ideas/similar",
        tags=["ideas"],
        summary="Ideas that say the same as a text (up to three), while a person writes",
        description="Public. At least three words in title and description together, else no suggestions. Only "
        "suggestions above the engine's calibrated threshold (`shared/similarity.py`): an empty list means nothing "
        "similar. Merged and withdrawn ideas are never suggested. Each suggestion: `idea_id`, `title`, `state`, "
        "`score` (0-1), `shared_words` (as written in the suggested idea) and `url` (its page).",
    )
    async def similar(
        title: Annotated[str, Query(max_length=MAX_TITLE_CHARS, description="The title as written so far")] = "",
        description: Annotated[
            str, Query(max_length=MAX_DESCRIPTION_CHARS, description="The description as written so far")
        ] = "",
        exclude: Annotated[str | None, Query(pattern=IDEA_ID, description="An idea never to suggest")] = None,
    ) -> Any:
        if len(tokenize(f"{title} {description}")) < MIN_SIMILAR_WORDS:
            return {"suggestions": []}
        return {"suggestions": await read.similar(title, description, exclude=[exclude] if exclude else [])}

    @router.get(
        "/ideas/{idea_id}",
        tags=["ideas"],
        responses=not_found,
        summary="An idea's timeline and current state",
        description='Anyone gets the public view (`"view": "public"`): no officer ids, no assignments, the '
        'submitter as `{"status": "employee", "organisation"}`, `"former-employee"` (erased) or `"anonymous"`; '
        "comments with their text and `author` (the author's name), or `anonymous: true`, or `removed: true` "
        "once their author was erased; `official`: the organisation an officer answered for. Officers of an "
        'organisation the idea is routed to, the innovation office and admins get `"view": "officer"`: who '
        "moved the idea, the submitter's `name`, `assignees` per organisation and the assignments in the "
        "timeline. `challenge`: the challenge the idea answers.",
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
        document = access.idea_document(view, access.idea_view_for(principal, view), read.officer_name)
        document["challenge"] = await challenge_brief(view.challenge_id)
        return document

    async def challenge_brief(challenge_id: str | None) -> dict[str, Any] | None:
        if not challenge_id:
            return None
        found = await read.store.challenge(challenge_id)
        if found is None:
            return {"challenge_id": challenge_id, "question": None, "open": None, "url": None}
        shown = public_challenge(found, read.clock())
        return {k: shown[k] for k in ("challenge_id", "question", "open", "closes_at", "url")}

    @router.get(
        "/people/me/ideas",
        tags=["ideas"],
        responses=signed_in,
        summary="The ideas the signed-in person submitted (named ones), newest first",
        description="Each with `state`, `state_since`, `last` (what happened last: `kind` submitted, routed, "
        "status-changed (with `to_state`), edited, assigned or comment, and its `time`; never who), `challenge`, "
        "`assigned` (yes or no, never to whom), `can_edit` (until an officer acknowledges it), `can_withdraw` "
        "(while it is open), `merged_into` (and its title) and `status_url`.",
    )
    async def my_ideas(principal: Principal = Depends(identity.required)) -> Any:
        items = await read.ideas_of(principal.email) if principal.email else []
        return {"person": principal.id, "items": items, "total": len(items)}

    @router.get(
        "/ideas",
        tags=["ideas"],
        responses={**signed_in, 403: {"description": "An assignment filter outside the person's inbox"}},
        summary="Every idea, newest first, filtered and searched, paginated; the officers' inbox",
        description='Anyone: every idea (`"view": "public"`), filtered by `organisation` (or a `unit` of it), '
        "`area`, `state`, `challenge`, and `q` searched in title and description with the routing's Swedish and "
        'English stemming (every word must match: "snöröjning" finds "snöröjningen"). The officers of the '
        "`organisation` (or the unit's), the innovation office and admins (for every organisation too) get the "
        'inbox (`"view": "officer"`): each idea\'s submitter, overdue targets, next states, `assignees`, '
        "`assignee` (for the organisation asked about) and `similar` (suggested duplicates of ideas not yet "
        "acknowledged), and may filter `assigned=me` (assigned to them) or `assigned=none` (no assignee for the "
        "organisation, or for any without one).",
    )
    async def ideas(
        principal: Principal | None = Depends(identity.optional),
        organisation: Organisation = None,
        unit: Unit = None,
        area: Area = None,
        state: Annotated[IdeaState | None, Query(description="Current state")] = None,
        challenge: Annotated[str | None, Query(pattern=IDEA_ID, description="Challenge id: its ideas")] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200, description="Words in title or text")] = None,
        assigned: Annotated[
            Literal["me", "none"] | None, Query(description="Inbox only: assigned to me, or unassigned")
        ] = None,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Any:
        try:
            scope = check_scope(read.catalogue, organisation=organisation, unit=unit, area=area)
            if challenge and not await read.challenge_exists(challenge):
                raise BadQuery([("challenge", f"unknown challenge '{challenge}'")])
        except BadQuery as exc:
            return bad_query_response(exc)
        whose = organisation or (scope.unit_key.partition("/")[0] if scope.unit_key else None)
        officer = principal is not None and access.inbox_refusal(principal, whose) is None
        if assigned and (why := access.assignment_refusal(principal, whose)):
            if principal is None:
                raise Unauthenticated(
                    f"{why}: sign in, or send 'Authorization: Bearer <token>'", error="invalid_request"
                )
            raise MissingRole(access.inbox_roles(whose), why)
        listing = Listing(
            scope,
            state=state.value if state else None,
            challenge=challenge,
            q=q,
            assigned=assigned,
            page=page,
            page_size=page_size,
        )
        return await read.ideas(listing, officer=officer, me=principal.id if principal else None)

    @router.get(
        "/challenges",
        tags=["challenges"],
        summary="Every challenge, open and closed, newest first",
        description="Public. `open=true|false` keeps only the open (or closed) ones; `organisation` only those it "
        "asked or whose audience it is in (an empty audience is the whole group). Each with `open`, `closes_at`, "
        "its number of `ideas` and its page's `url`.",
    )
    async def challenges(
        open: Annotated[bool | None, Query(description="Only the open (true) or closed (false) challenges")] = None,
        organisation: Organisation = None,
    ) -> Any:
        try:
            check_scope(read.catalogue, organisation=organisation)
        except BadQuery as exc:
            return bad_query_response(exc)
        items = await read.challenges(open=open, organisation=organisation)
        return {"items": items, "total": len(items)}

    @router.get(
        "/challenges/{challenge_id}",
        tags=["challenges"],
        responses=not_found,
        summary="A challenge, whether it is open, its ideas with their states, and its figures",
        description="Public. `figures`: `ideas`, `participants` (distinct submitters; anonymous ideas counted "
        "apart in `anonymous_ideas`), `organisations` (ideas per organisation they went to) and `by_state`.",
    )
    async def challenge(
        request: Request,
        challenge_id: Annotated[str, Path(pattern=IDEA_ID, description="Challenge id (UUID)")],
        lang: Annotated[Literal["sv", "en"] | None, Query(description="Language of the 404 message")] = None,
    ) -> Any:
        found = await read.challenge(challenge_id)
        if found is None:
            messages = challenge_not_found_message(challenge_id)
            return problem(404, messages[preferred_language(request, lang)], messages=messages)
        return found

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

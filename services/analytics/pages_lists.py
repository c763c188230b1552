"""The pages that list ideas and challenges: every idea (``/ideas``, anyone), the challenges (``/challenges`` and
``/challenges/{id}``, anyone) and an organisation's officer inbox (``/inbox/{organisation}``: its officers, the
innovation office and admins), Swedish and English (``/en/...``). Without JavaScript: filters, paging, assigning
and merging are plain forms (the assignments and merges post to intake, which sends the officer back here); only
the inbox's other state changes need the inbox's script (static/inbox.js)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.analytics import access
from services.analytics.api import SLUG, bad_query_response
from services.analytics.domain import next_states
from services.analytics.page_kit import STATES, UUID, LangQ, OptSlug, Pages
from services.analytics.queries import BadQuery, Listing, check_scope
from services.analytics.texts import texts
from shared.events import IdeaState
from shared.principal import Principal

OptId = Annotated[str | None, Query(pattern=r"^$|^[0-9a-fA-F-]{36}$")]
Words = Annotated[str | None, Query(max_length=200)]
Page = Annotated[int, Query(ge=1, le=10_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]
OptState = Annotated[IdeaState | Literal[""] | None, Query()]
INBOX_DONE = ("assigned", "merged")
"""What intake says was done when it sends an officer back to the inbox (``?done=&idea=``)."""
CODE = re.compile(r"^[a-z0-9_-]{1,40}$")


def list_pages(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    browse_page(router, pages, lang_prefix)
    challenge_pages(router, pages, lang_prefix)
    inbox_page(router, pages, lang_prefix)


def browse_page(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    read, identity = pages.read, pages.identity

    @router.get(f"{lang_prefix}/ideas", response_class=HTMLResponse)
    async def ideas_page(
        request: Request,
        organisation: OptSlug = None,
        area: OptSlug = None,
        state: OptState = None,
        challenge: OptId = None,
        q: Words = None,
        page: Page = 1,
        page_size: PageSize = 20,
        lang: LangQ = None,
        principal: Principal | None = Depends(identity.optional),
    ) -> Any:
        chosen = pages.language(request, lang)
        try:
            scope = check_scope(read.catalogue, organisation=organisation or None, area=area or None)
            if challenge and not await read.challenge_exists(challenge):
                raise BadQuery([("challenge", f"unknown challenge '{challenge}'")])
        except BadQuery as exc:
            return bad_query_response(exc)
        listing = Listing(
            scope, state=state or None, challenge=challenge or None, q=q or None, page=page, page_size=page_size
        )
        selected = {
            "organisation": organisation or "",
            "area": area or "",
            "state": state or "",
            "challenge": challenge or "",
            "q": q or "",
        }
        return pages.render(
            "ideas.html",
            chosen,
            request,
            principal,
            result=await read.ideas(listing, officer=False),
            organisations=read.catalogue.organisation_ids,
            areas=[a.id for a in read.catalogue.areas],
            states=STATES,
            challenges=await read.challenges(),
            selected=selected,
        )


def challenge_pages(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    read, identity = pages.read, pages.identity

    @router.get(f"{lang_prefix}/challenges", response_class=HTMLResponse)
    async def challenges_page(
        request: Request,
        open: Annotated[Literal["", "true", "false"] | None, Query()] = None,
        organisation: OptSlug = None,
        lang: LangQ = None,
        principal: Principal | None = Depends(identity.optional),
    ) -> Any:
        chosen = pages.language(request, lang)
        try:
            check_scope(read.catalogue, organisation=organisation or None)
        except BadQuery as exc:
            return bad_query_response(exc)
        which = {"true": True, "false": False}.get(open or "")
        return pages.render(
            "challenges.html",
            chosen,
            request,
            principal,
            challenges=await read.challenges(open=which, organisation=organisation or None),
            organisations=read.catalogue.organisation_ids,
            selected={"open": open or "", "organisation": organisation or ""},
        )

    @router.get(f"{lang_prefix}/challenges/{{challenge_id}}", response_class=HTMLResponse)
    async def challenge_page(
        request: Request,
        challenge_id: str,
        lang: LangQ = None,
        principal: Principal | None = Depends(identity.optional),
    ) -> HTMLResponse:
        chosen = pages.language(request, lang)
        found = await read.challenge(challenge_id) if UUID.match(challenge_id) else None
        if found is None:
            return pages.not_found(chosen, request, principal, texts(chosen)["challenge_not_found"])
        answer = ("/en" if chosen == "en" else "/") + f"?challenge={found['challenge_id']}"
        return pages.render("challenge.html", chosen, request, principal, challenge=found, answer_url=answer)


def inbox_page(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    read, identity = pages.read, pages.identity

    @router.get(f"{lang_prefix}/inbox/{{organisation}}", response_class=HTMLResponse)
    async def inbox(
        request: Request,
        organisation: str,
        unit: OptSlug = None,
        area: OptSlug = None,
        state: OptState = None,
        q: Words = None,
        assigned: Annotated[Literal["", "me", "none"] | None, Query()] = None,
        page: Page = 1,
        page_size: PageSize = 20,
        lang: LangQ = None,
        done: Annotated[str | None, Query(max_length=20)] = None,
        error: Annotated[str | None, Query(max_length=40)] = None,
        idea: OptId = None,
    ) -> Any:
        principal = await identity.page_principal(request)
        chosen = pages.language(request, lang)
        t = texts(chosen)
        if not re.match(SLUG, organisation) or read.catalogue.organisation(organisation) is None:
            return pages.not_found(chosen, request, principal, t["no_organisation"])
        if access.inbox_refusal(principal, organisation):
            org_name = pages.names(chosen)["organisations"].get(organisation, organisation)
            message = t["inbox_forbidden"].format(organisation=org_name)
            return pages.render("forbidden.html", chosen, request, principal, status=403, message=message)
        try:
            scope = check_scope(read.catalogue, organisation=organisation, unit=unit or None, area=area or None)
        except BadQuery as exc:
            return bad_query_response(exc)
        listing = Listing(
            scope, state=state or None, q=q or None, assigned=assigned or None, page=page, page_size=page_size
        )
        result = await read.ideas(listing, officer=True, me=principal.id)
        org = read.catalogue.organisation(organisation)
        officers = sorted(
            (o for o in read.catalogue.officers if o.organisation == organisation),
            key=lambda o: (o.id != principal.id, o.name),  # "me" first
        )
        return pages.render(
            "inbox.html",
            chosen,
            request,
            principal,
            organisation=organisation,
            units=[u.id for u in org.units] if org else [],
            areas=[a.id for a in read.catalogue.areas],
            states=STATES,
            selected={
                "unit": unit or "",
                "area": area or "",
                "state": state or "",
                "q": q or "",
                "assigned": assigned or "",
            },
            result=result,
            officers=officers,
            me=principal.id,
            done=done if done in INBOX_DONE else None,
            error=error if error and CODE.match(error) else None,
            acted_on=idea or None,
            intake_url=pages.intake_url,
            transitions={s: list(next_states(s)) for s in STATES},
        )

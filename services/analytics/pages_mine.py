"""The signed-in person's own ideas (``/my/ideas``, ``/en/my/ideas``): each with its state, what happened last,
its challenge, whether it is assigned, the idea it was merged into, and the person's forms: correct the title and
description while it is editable (``POST /ideas/{id}/edit``) and withdraw it with an optional reason while it is
open (``POST /ideas/{id}/withdraw``). Intake serves both posts and sends the person back here with
``?done=edited|withdrawn`` or ``?error=<code>``, which this page explains. Works without JavaScript."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from services.analytics.page_kit import LangQ, Pages
from shared.language import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS

DONE = ("edited", "withdrawn")
CODE = re.compile(r"^[a-z0-9_-]{1,40}$")


def my_pages(router: APIRouter, pages: Pages, lang_prefix: str) -> None:
    read, identity = pages.read, pages.identity

    @router.get(f"{lang_prefix}/my/ideas", response_class=HTMLResponse)
    async def my_ideas_page(
        request: Request,
        lang: LangQ = None,
        done: Annotated[str | None, Query(max_length=20)] = None,
        error: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Any:
        principal = await identity.page_principal(request)
        chosen = pages.language(request, lang)
        items = await read.ideas_of(principal.email) if principal.email else []
        return pages.render(
            "my_ideas.html",
            chosen,
            request,
            principal,
            items=items,
            done=done if done in DONE else None,
            error=error if error and CODE.match(error) else None,
            max_title=MAX_TITLE_CHARS,
            max_description=MAX_DESCRIPTION_CHARS,
        )

"""The form posts of the pages analytics renders (issue 18), without JavaScript, with the session (a write with
the session cookie must come from this site's pages: shared/identity.py): the submitter's "my ideas" page edits
and withdraws, the officers' inbox and idea page assign and merge. Each answers 303 back to the page:

- ``POST /ideas/{id}/edit`` (title, description) and ``POST /ideas/{id}/withdraw`` (reason): back to
  ``/my/ideas?done=edited|withdrawn&idea=<id>`` (``/en/...`` from the English page), or ``?error=<code>&idea=<id>``;
- ``POST /ideas/{id}/assign`` (organisation, assignee: an officer id, ``me`` or empty for nobody, next) and
  ``POST /ideas/{id}/merge`` (merged_into, reason, next): back to ``next`` (a path on this site only) with
  ``done=assigned|merged&idea=<id>`` or ``error=<code>&idea=<id>``.

The codes: ``not-found``, ``not-yours``, ``anonymous``, ``not-editable``, ``not-withdrawable``, ``not-yet`` (the
submission is not recorded yet), ``changed-meanwhile``, ``not-an-officer``, ``other-organisation``,
``not-routed-there``, ``assignee-not-an-officer``, ``closed``, ``wrong-state``, ``forbidden``, ``invalid-<field>``
(``invalid-title``, ``invalid-description``, ``invalid-reason``, ``invalid-merged_into``, ``invalid-organisation``,
``invalid-assignee``) and ``unavailable`` (Kafka or Redis away: nothing was stored; try again)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.intake.errors import IdempotencyPending, InvalidField, Refusal
from services.intake.handlers import Intake
from services.intake.lifecycle import TransitionError
from services.intake.models import AssignmentIn, EditIn, StatusChangeIn, WithdrawIn
from shared.events import IdeaState
from shared.identity import Identity, SignInRequired, safe_next
from shared.kafka import KafkaUnavailable
from shared.principal import Principal

IDEA_ID = re.compile(r"^[0-9a-fA-F-]{36}$")
Action = Callable[[Principal, str, dict[str, str]], Awaitable[object]]


def idea_forms_router(intake: Intake, identity: Identity) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def edit(principal: Principal, idea_id: str, form: dict[str, str]) -> object:
        change = EditIn(title=form.get("title"), description=form.get("description"))  # a field left out is kept
        return await intake.edit(principal, idea_id, change)

    async def withdraw(principal: Principal, idea_id: str, form: dict[str, str]) -> object:
        return await intake.withdraw(principal, idea_id, WithdrawIn(reason=form.get("reason") or None))

    async def assign(principal: Principal, idea_id: str, form: dict[str, str]) -> object:
        request = AssignmentIn(organisation=form.get("organisation") or None, assignee=form.get("assignee") or None)
        return await intake.assign(principal, idea_id, request)

    async def merge(principal: Principal, idea_id: str, form: dict[str, str]) -> object:
        change = StatusChangeIn(
            to_state=IdeaState.MERGED, merged_into=form.get("merged_into") or None, reason=form.get("reason") or None
        )
        return await intake.change_status(principal, idea_id, change)

    def my_ideas(request: Request, _: dict[str, str]) -> str:
        return "/en/my/ideas" if request.url.path.startswith("/en/") else "/my/ideas"

    def given_next(_: Request, form: dict[str, str]) -> str:
        return safe_next(form.get("next"))

    def posting(action: Action, done: str, back: Callable[[Request, dict[str, str]], str]):
        async def post(request: Request, idea_id: str) -> Response:
            if not IDEA_ID.match(idea_id):
                return HTMLResponse("Not found", status_code=404)
            posted = await request.form()
            form = {key: value.strip() for key, value in posted.items() if isinstance(value, str)}
            target = back(request, form)
            principal = await identity.principal(request)  # with the session: from this site's pages only
            if principal is None:
                raise SignInRequired(target)  # back to the page after signing in, not to this post
            try:
                await action(principal, idea_id, form)
            except ValidationError as exc:
                field = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "form"
                return redirect(target, error=f"invalid-{field}", idea=idea_id)
            except InvalidField as exc:
                return redirect(target, error=f"invalid-{exc.field}", idea=idea_id)
            except TransitionError:
                return redirect(target, error="wrong-state", idea=idea_id)
            except Refusal as exc:
                return redirect(target, error=exc.code, idea=idea_id)
            except (KafkaUnavailable, RedisError, TimeoutError, IdempotencyPending):
                return redirect(target, error="unavailable", idea=idea_id)
            return redirect(target, done=done, idea=idea_id)

        return post

    for prefix in ("", "/en"):
        for name, action, done, back in (
            ("edit", edit, "edited", my_ideas),
            ("withdraw", withdraw, "withdrawn", my_ideas),
            ("assign", assign, "assigned", given_next),
            ("merge", merge, "merged", given_next),
        ):
            path = f"{prefix}/ideas/{{idea_id}}/{name}"
            router.add_api_route(path, posting(action, done, back), methods=["POST"], response_class=HTMLResponse)
    return router


def redirect(target: str, **params: str) -> RedirectResponse:
    """303 to ``target`` (a path on this site) with ``params`` added to its query (replacing earlier ones)."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in {"done", "error", "idea"}]
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode([*query, *params.items()]))), status_code=303)

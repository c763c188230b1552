"""The JSON API (OpenAPI at /openapi.json). Ports decode the request and call the use cases in handlers.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse

from services.intake.domain import idea_of, person_of
from services.intake.handlers import Intake
from services.intake.models import (
    Accepted,
    AssignmentIn,
    ChallengeAccepted,
    ChallengeIn,
    CommentIn,
    EditIn,
    IdeaAccepted,
    NewIdeaIn,
    RerouteIn,
    StatusChangeIn,
    SupportIn,
    WithdrawIn,
)
from shared.identity import Identity
from shared.oidc import Unauthenticated
from shared.principal import Principal

IdeaId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$", description="Idea id (UUID)")]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=100)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=8, max_length=200)]
ERRORS = {
    401: {"description": "No valid bearer token (or session)"},
    403: {"description": "Signed in, but not allowed: the body says which role or organisation is needed"},
    404: {"description": "No such idea"},
    409: {"description": "Not allowed from the idea's current state; the body lists what is"},
    422: {"description": "A field is missing or invalid; the body names it"},
    429: {"description": "Too many writes from this client; see Retry-After"},
    503: {"description": "Kafka is unavailable; nothing was stored. See Retry-After"},
}


def api_router(intake: Intake, identity: Identity, *, anonymous_without_sign_in: bool) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)  # rate limits: shared/rate_limits.py

    @router.post("/ideas", status_code=202, response_model=IdeaAccepted, tags=["ideas"], summary="Submit a new idea")
    async def submit_idea(
        idea: NewIdeaIn,
        principal: Principal | None = Depends(identity.optional),
        correlation_id: CorrelationId = None,
        idempotency_key: IdempotencyKey = None,
    ) -> IdeaAccepted:
        """Answers 202 once Kafka has stored the idea. A named idea is the signed-in person's (bearer token);
        an anonymous one keeps nothing personal. Send an `Idempotency-Key` (e.g. a UUID) to make retries
        safe: the same key returns the same idea id and publishes nothing twice. With `challenge_id` the idea
        answers that challenge (422 for an unknown one, 409 once it has closed, saying when)."""
        if principal is None and not (idea.anonymous and anonymous_without_sign_in):
            why = "an idea in your name needs your sign-in" if idea.anonymous is False else "sign-in is required"
            raise Unauthenticated(f"{why}: send 'Authorization: Bearer <token>'", error="invalid_request")
        return await intake.submit(
            idea_of(idea, principal, intake.catalogue),
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            principal=principal,
        )

    @router.post(
        "/ideas/{idea_id}/status",
        status_code=202,
        response_model=Accepted,
        tags=["officers"],
        summary="Move an idea through its lifecycle (officers of its organisations, the innovation office)",
    )
    async def change_status(
        idea_id: IdeaId,
        change: StatusChangeIn,
        principal: Principal = Depends(identity.required),
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        event_id = await intake.change_status(principal, idea_id, change, correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id, detail=f"now {change.to_state.value}")

    @router.post(
        "/ideas/{idea_id}/reroute",
        status_code=202,
        response_model=Accepted,
        tags=["officers"],
        summary="Send an idea elsewhere (innovation office)",
    )
    async def reroute(
        idea_id: IdeaId,
        request: RerouteIn,
        principal: Principal = Depends(identity.required),
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        event_id = await intake.reroute(principal, idea_id, request, correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id, detail="re-route sent to routing")

    @router.post(
        "/ideas/{idea_id}/comments",
        status_code=202,
        response_model=Accepted,
        tags=["engagement"],
        summary="Comment on an idea (as the signed-in person)",
    )
    async def comment(
        idea_id: IdeaId,
        body: CommentIn,
        principal: Principal = Depends(identity.required),
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        """`anonymous: true` shows the comment as "anonym"; an officer of one of the idea's organisations answers
        as that organisation (the event's `official`)."""
        person = person_of(principal, intake.catalogue)
        event_id = await intake.comment(idea_id, person, body, correlation_id, principal=principal)
        return Accepted(idea_id=idea_id, event_id=event_id)

    @router.post(
        "/ideas/{idea_id}/support",
        status_code=202,
        response_model=Accepted,
        tags=["engagement"],
        summary="Support an idea (once per person, as the signed-in person)",
        responses={200: {"model": Accepted, "description": "Already supported by this person"}},
    )
    async def support(
        idea_id: IdeaId,
        principal: Principal = Depends(identity.required),
        body: SupportIn | None = None,
        correlation_id: CorrelationId = None,
    ):
        event_id = await intake.support(idea_id, person_of(principal, intake.catalogue), correlation_id)
        if event_id is None:
            return JSONResponse(
                status_code=200,
                content=Accepted(idea_id=idea_id, detail="already supported by this person").model_dump(),
            )
        return Accepted(idea_id=idea_id, event_id=event_id)

    @router.post(
        "/ideas/{idea_id}/follow",
        status_code=202,
        response_model=Accepted,
        tags=["engagement"],
        summary="Follow an idea: hear what happens to it (as the signed-in person)",
    )
    async def follow(
        idea_id: IdeaId, principal: Principal = Depends(identity.required), correlation_id: CorrelationId = None
    ) -> Accepted:
        event_id = await intake.follow(idea_id, person_of(principal, intake.catalogue), correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id)

    @router.patch(
        "/ideas/{idea_id}",
        status_code=202,
        response_model=Accepted,
        tags=["my ideas"],
        summary="Correct the title or description of your idea (until an officer acknowledges it)",
    )
    async def edit(
        idea_id: IdeaId,
        change: EditIn,
        principal: Principal = Depends(identity.required),
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        """Only the idea's submitter (403 otherwise, and for an anonymous idea), only while it is submitted or
        routed (409 naming its state). Routing places the edited idea anew; the history keeps both versions."""
        event_id = await intake.edit(principal, idea_id, change, correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id, detail="edited; it will be routed anew")

    @router.post(
        "/ideas/{idea_id}/withdraw",
        status_code=202,
        response_model=Accepted,
        tags=["my ideas"],
        summary="Withdraw your idea while it is open",
    )
    async def withdraw(
        idea_id: IdeaId,
        principal: Principal = Depends(identity.required),
        body: WithdrawIn | None = None,
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        """Only the idea's submitter (403 otherwise), only while it is open: submitted, routed, acknowledged or in
        assessment (409 naming its state). Withdrawn is final."""
        event_id = await intake.withdraw(principal, idea_id, body or WithdrawIn(), correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id, detail="now withdrawn")

    @router.post(
        "/ideas/{idea_id}/assignment",
        status_code=202,
        response_model=Accepted,
        tags=["officers"],
        summary="Give an idea to one officer of its organisation (or to nobody)",
        responses={200: {"model": Accepted, "description": "The idea already was with that officer (or nobody)"}},
    )
    async def assign(
        idea_id: IdeaId,
        request: AssignmentIn,
        principal: Principal = Depends(identity.required),
        correlation_id: CorrelationId = None,
    ):
        """An officer of the organisation (default: your own; the innovation office and admins: any that owns
        the idea). The assignee is an officer of that organisation in the catalogue (`me` for yourself) or null;
        409 when the organisation does not own the idea or the assignee is not its officer."""
        event_id = await intake.assign(principal, idea_id, request, correlation_id)
        if event_id is None:
            return JSONResponse(
                status_code=200, content=Accepted(idea_id=idea_id, detail="already assigned so").model_dump()
            )
        return Accepted(idea_id=idea_id, event_id=event_id)

    @router.post(
        "/challenges",
        status_code=202,
        response_model=ChallengeAccepted,
        tags=["challenges"],
        summary="Open a challenge: ask the staff for ideas on a question until a closing date",
    )
    async def open_challenge(
        request: ChallengeIn,
        principal: Principal = Depends(identity.required),
        correlation_id: CorrelationId = None,
        idempotency_key: IdempotencyKey = None,
    ) -> ChallengeAccepted:
        """An officer asks their own organisation (the audience must lie inside it; empty: all of it); the
        innovation office or an admin asks the whole group (any audience; empty: everyone). 403 for anyone else;
        422 naming the field for a closing time in the past, a too short question, an unknown or outside audience
        or an unknown area. The same `Idempotency-Key` again answers the same challenge."""
        return await intake.open_challenge(
            principal, request, idempotency_key=idempotency_key, correlation_id=correlation_id
        )

    return router

"""The JSON API (OpenAPI at /openapi.json). Ports decode the request and call the use cases in handlers.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse

from services.intake.auth import Officer, TokenVerifier
from services.intake.errors import InvalidField
from services.intake.handlers import Intake
from services.intake.models import Accepted, CommentIn, IdeaAccepted, IdeaIn, RerouteIn, StatusChangeIn, SupportIn

IdeaId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$", description="Idea id (UUID)")]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=100)]
ERRORS = {
    401: {"description": "No valid bearer token"},
    403: {"description": "The officer's organisation may not change this idea"},
    404: {"description": "No such idea"},
    409: {"description": "Not allowed from the idea's current state; the body lists what is"},
    422: {"description": "A field is missing or invalid; the body names it"},
    429: {"description": "Too many writes from this client; see Retry-After"},
    503: {"description": "Kafka is unavailable; nothing was stored. See Retry-After"},
}


def api_router(intake: Intake, verifier: TokenVerifier, rate_limited) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(rate_limited)], responses=ERRORS)

    async def optional_officer(request: Request) -> Officer | None:
        return await verifier(request) if request.headers.get("authorization") else None

    def person_of(officer: Officer | None, person: str | None) -> str:
        if officer is not None:
            return officer.id
        if person:
            return person.lower()
        raise InvalidField("person", "required (your e-mail address) unless you send an officer's bearer token")

    @router.post("/ideas", status_code=202, response_model=IdeaAccepted, tags=["ideas"], summary="Submit a new idea")
    async def submit_idea(
        idea: IdeaIn,
        correlation_id: CorrelationId = None,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=8, max_length=200)] = None,
    ) -> IdeaAccepted:
        """Answers 202 once Kafka has stored the idea. Send an `Idempotency-Key` (e.g. a UUID) to make retries
        safe: the same key returns the same idea id and publishes nothing twice."""
        return await intake.submit(idea, idempotency_key=idempotency_key, correlation_id=correlation_id)

    @router.post(
        "/ideas/{idea_id}/status",
        status_code=202,
        response_model=Accepted,
        tags=["officers"],
        summary="Move an idea through its lifecycle (officers)",
    )
    async def change_status(
        idea_id: IdeaId,
        change: StatusChangeIn,
        officer: Officer = Depends(verifier),
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        event_id = await intake.change_status(officer, idea_id, change, correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id, detail=f"now {change.to_state.value}")

    @router.post(
        "/ideas/{idea_id}/reroute",
        status_code=202,
        response_model=Accepted,
        tags=["officers"],
        summary="Send an idea elsewhere (innovation office)",
    )
    async def reroute(
        idea_id: IdeaId, request: RerouteIn, officer: Officer = Depends(verifier), correlation_id: CorrelationId = None
    ) -> Accepted:
        event_id = await intake.reroute(officer, idea_id, request, correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id, detail="re-route sent to routing")

    @router.post(
        "/ideas/{idea_id}/comments",
        status_code=202,
        response_model=Accepted,
        tags=["engagement"],
        summary="Comment on an idea",
    )
    async def comment(
        idea_id: IdeaId,
        body: CommentIn,
        officer: Officer | None = Depends(optional_officer),
        correlation_id: CorrelationId = None,
    ) -> Accepted:
        event_id = await intake.comment(idea_id, person_of(officer, body.person), body, correlation_id)
        return Accepted(idea_id=idea_id, event_id=event_id)

    @router.post(
        "/ideas/{idea_id}/support",
        status_code=202,
        response_model=Accepted,
        tags=["engagement"],
        summary="Support an idea (once per person)",
        responses={200: {"model": Accepted, "description": "Already supported by this person"}},
    )
    async def support(
        idea_id: IdeaId,
        officer: Officer | None = Depends(optional_officer),
        body: SupportIn | None = None,
        correlation_id: CorrelationId = None,
    ):
        event_id = await intake.support(idea_id, person_of(officer, body.person if body else None), correlation_id)
        if event_id is None:
            return JSONResponse(
                status_code=200,
                content=Accepted(idea_id=idea_id, detail="already supported by this person").model_dump(),
            )
        return Accepted(idea_id=idea_id, event_id=event_id)

    return router

"""Intake: the front door. Every write is answered only after Kafka has acknowledged it."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.intake.domain import submitted_event
from services.intake.models import IdeaAccepted, IdeaIn
from services.intake.settings import IntakeSettings
from shared.events import Envelope
from shared.kafka import KafkaUnavailable, publish_event
from shared.service import Runtime, service_app

SOURCE = "/services/intake"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = Runtime.create("intake", settings)
    app = service_app(
        runtime,
        title="Kiruna innovation platform: intake",
        description="Every write enters here: ideas, status changes, comments, support.",
    )

    @app.exception_handler(RequestValidationError)
    async def refuse_bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=validation_body(exc))

    @app.exception_handler(KafkaUnavailable)
    async def kafka_unavailable(_: Request, exc: KafkaUnavailable) -> JSONResponse:
        runtime.logger.error("kafka unavailable, refusing write", extra={"error": str(exc)})
        return JSONResponse(
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_s)},
            content={
                "detail": "Kafka is not available; nothing was stored. Try again later.",
                "retry_after_s": settings.retry_after_s,
            },
        )

    @app.post(
        "/api/v1/ideas",
        status_code=202,
        response_model=IdeaAccepted,
        tags=["ideas"],
        summary="Submit a new idea",
        responses={
            422: {"description": "A field is missing or invalid; the body names it"},
            503: {"description": "Kafka is unavailable; nothing was stored"},
        },
    )
    async def submit_idea(
        idea: IdeaIn,
        correlation_id: str | None = Header(default=None, alias="X-Correlation-ID", max_length=100),
    ) -> IdeaAccepted:
        if not runtime.kafka_connected.is_set():
            raise KafkaUnavailable("not connected to Kafka yet")
        idea_id = str(uuid.uuid4())
        envelope = Envelope.wrap(submitted_event(idea, idea_id), source=SOURCE, correlation_id=correlation_id)
        await publish_event(
            runtime.broker, runtime.topics.submitted, envelope, timeout_s=settings.kafka.publish_timeout_s
        )
        runtime.logger.info(
            "idea submitted", extra={"idea_id": idea_id, "event_id": envelope.id, "channel": idea.channel}
        )
        return IdeaAccepted(
            idea_id=idea_id, event_id=envelope.id, status_url=f"{settings.public_base_url}/ideas/{idea_id}"
        )

    return app


def validation_body(exc: RequestValidationError) -> dict:
    """422 body: one entry per problem, naming the field and the rule."""
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part not in ("body", "query", "header", "path")]
        message = error["msg"].removeprefix("Value error, ")
        field, sep, rest = message.partition(": ")
        if sep and not loc and field.isidentifier():
            loc, message = [field], rest
        errors.append({"field": ".".join(loc) or "(body)", "message": message, "type": error["type"]})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return {"detail": f"Invalid request: {summary}", "errors": errors}

"""Intake: the front door. Every write is answered only after Kafka has acknowledged it."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from services.intake.api import api_router
from services.intake.errors import Conflict, Forbidden, InvalidField, NotFound
from services.intake.handlers import Intake
from services.intake.lifecycle import TransitionError
from services.intake.mail import smtp_listener
from services.intake.settings import IntakeSettings
from services.intake.store import IdempotencyMismatch, IntakeStore
from services.intake.subscribers import register
from services.intake.web import web_router
from shared.asyncapi import declare_publication
from shared.events import IdeaEngagement, IdeaStatusChanged, IdeaSubmitted, RerouteIdea
from shared.kafka import KafkaUnavailable
from shared.live_catalogue import LiveCatalogue
from shared.service import Runtime, service_app


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = Runtime.create("intake", settings)
    store = IntakeStore(runtime.redis, settings.redis_prefix)
    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    intake = Intake(runtime, store, live_catalogue.current)
    live_catalogue.keep_current(intake)
    register(runtime, intake)
    for topic, model, name, description in (
        (runtime.topics.submitted, IdeaSubmitted, "submitted", "Every new idea, from every front end, once stored"),
        (runtime.topics.status_changed, IdeaStatusChanged, "status-changed", "An officer moved an idea on"),
        (runtime.topics.engagement, IdeaEngagement, "engagement", "Comments, support and follows of ideas"),
        (runtime.topics.routing_commands, RerouteIdea, "commands", "The innovation office re-routes an idea"),
    ):
        declare_publication(runtime.broker, topic, model, title=f"intake.publishes.{name}", description=description)
    app = service_app(
        runtime,
        title="Kiruna innovation platform: intake",
        description="Every write enters here: ideas, status changes, comments, support, re-routes.",
        background=[
            lambda: live_catalogue.watching(settings.catalogue_check_interval_s),
            lambda: smtp_listener(intake, settings),
        ],
    )
    app.state.intake = intake

    async def rate_limited(request: Request) -> None:
        if request.method == "POST":
            client = request.client.host if request.client else "unknown"
            wait = await store.hit(client, settings.rate_limit_per_minute)
            if wait is not None:
                raise RateLimited(wait)

    identity = app.state.identity
    app.include_router(
        api_router(intake, identity, rate_limited, anonymous_without_sign_in=settings.anonymous_without_sign_in)
    )
    app.include_router(web_router(intake, identity, settings), dependencies=[Depends(rate_limited)])
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID"],
    )
    install_error_handlers(app, runtime, settings)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    return app


class BodyLimit:
    """Pure ASGI middleware: 413 for a body announced larger than ``max_bytes``, before it is read. (Not
    ``@app.middleware("http")``, which runs every request through extra tasks and streams: 6 % of intake's CPU.)
    A body sent without a length is bounded by the request models' own limits."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
            if length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(
                    status_code=413,
                    content={
                        "detail": f"Request body too large: {length.decode()} bytes; "
                        f"at most {self.max_bytes} are accepted",
                        "errors": [{"field": "(body)", "message": f"at most {self.max_bytes} bytes"}],
                    },
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s


def install_error_handlers(app: FastAPI, runtime: Runtime, settings: IntakeSettings) -> None:
    """Every refusal names the field or the rule, as JSON; nothing becomes a 500."""

    def problem(status: int, detail: str, field: str | None = None, **extra) -> JSONResponse:
        body = {"detail": detail, **extra}
        if field:
            body["errors"] = [{"field": field, "message": detail}]
        return JSONResponse(status_code=status, content=body)

    @app.exception_handler(RequestValidationError)
    async def refuse_bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=validation_body(exc))

    @app.exception_handler(InvalidField)
    async def refuse_bad_value(_: Request, exc: InvalidField) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": f"Invalid request: {exc}", "errors": [{"field": exc.field, "message": exc.message}]},
        )

    @app.exception_handler(TransitionError)
    async def wrong_transition(_: Request, exc: TransitionError) -> JSONResponse:
        return problem(
            409,
            str(exc),
            "to_state",
            current_state=exc.current.value,
            allowed_transitions=[s.value for s in exc.allowed],
        )

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return problem(409, str(exc))

    @app.exception_handler(IdempotencyMismatch)
    async def key_reused(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return problem(
            422, "Idempotency-Key was already used with a different request; use a new key", "Idempotency-Key"
        )

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse(
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
            content={
                "detail": f"Too many writes from this client: at most {settings.rate_limit_per_minute} per minute. "
                f"Try again in {exc.retry_after_s} s.",
                "retry_after_s": exc.retry_after_s,
            },
        )

    def unavailable(detail: str) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_s)},
            content={
                "detail": f"{detail}; nothing was stored. Try again later.",
                "retry_after_s": settings.retry_after_s,
            },
        )

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, exc: RedisError) -> JSONResponse:
        runtime.logger.error("redis unavailable, refusing write", extra={"error": repr(exc)})
        return unavailable("The platform is overloaded or Redis is unavailable")

    @app.exception_handler(KafkaUnavailable)
    async def kafka_unavailable(_: Request, exc: KafkaUnavailable) -> JSONResponse:
        runtime.logger.error("kafka unavailable, refusing write", extra={"error": str(exc)})
        return unavailable("Kafka is not available")


def validation_body(exc: RequestValidationError) -> dict:
    """422 body: one entry per problem, naming the field and the rule."""
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part not in ("body", "query", "header", "path")]
        message = error["msg"].removeprefix("Value error, ")
        field, sep, rest = message.partition(": ")
        if sep and not loc and field.replace("_", "").replace(".", "").isalnum():
            loc, message = [field], rest
        errors.append({"field": ".".join(loc) or "(body)", "message": message, "type": error["type"]})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return {"detail": f"Invalid request: {summary}", "errors": errors}

"""How intake says no over HTTP, in the platform's convention (:mod:`shared.http_problems`): every refusal of
intake's use cases as JSON naming the field or the rule, nothing as a 500. Bad input (422), too many writes (429)
and too large a body (413) are every service's, installed by the service factory (shared/service.py)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from services.intake.errors import (
    ChallengeClosed,
    Conflict,
    Forbidden,
    IdempotencyPending,
    InvalidField,
    NotFound,
    WrongState,
)
from services.intake.lifecycle import TransitionError
from services.intake.people import ExportUnavailable
from services.intake.store import IdempotencyMismatch
from shared.http_problems import invalid, problem, unavailable
from shared.kafka import KafkaUnavailable


def install(app: FastAPI, *, logger: logging.Logger, retry_after_s: int) -> None:
    """Map each of intake's refusals to its HTTP answer."""

    @app.exception_handler(InvalidField)
    async def refuse_bad_value(_: Request, exc: InvalidField) -> JSONResponse:
        return invalid(exc.field, exc.message)

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

    @app.exception_handler(WrongState)
    async def wrong_state(_: Request, exc: WrongState) -> JSONResponse:
        return problem(409, str(exc), current_state=exc.current)

    @app.exception_handler(ChallengeClosed)
    async def challenge_closed(_: Request, exc: ChallengeClosed) -> JSONResponse:
        return problem(
            409,
            f"The challenge closed at {exc.closed_at.isoformat()} and takes no more ideas",
            "challenge_id",
            closed_at=exc.closed_at.isoformat(),
        )

    @app.exception_handler(IdempotencyMismatch)
    async def key_reused(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return problem(
            422, "Idempotency-Key was already used with a different request; use a new key", "Idempotency-Key"
        )

    @app.exception_handler(IdempotencyPending)
    async def key_in_progress(_: Request, exc: IdempotencyPending) -> JSONResponse:
        response = problem(
            409,
            f"A request with this Idempotency-Key is being handled; try again in {exc.retry_after_s} s for its answer",
            "Idempotency-Key",
            retry_after_s=exc.retry_after_s,
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, exc: RedisError) -> JSONResponse:
        logger.error("redis unavailable, refusing write", extra={"error": repr(exc)})
        return unavailable(retry_after_s, nothing_stored("The platform is overloaded or Redis is unavailable"))

    @app.exception_handler(ExportUnavailable)
    async def export_unavailable(_: Request, exc: ExportUnavailable) -> JSONResponse:
        logger.error("export unavailable", extra={"error": str(exc)})
        return unavailable(retry_after_s, f"The export cannot be read just now: {exc}. Try again later.")

    @app.exception_handler(KafkaUnavailable)
    async def kafka_unavailable(_: Request, exc: KafkaUnavailable) -> JSONResponse:
        logger.error("kafka unavailable, refusing write", extra={"error": str(exc)})
        return unavailable(retry_after_s, nothing_stored("Kafka is not available"))


def nothing_stored(detail: str) -> str:
    return f"{detail}; nothing was stored. Try again later."

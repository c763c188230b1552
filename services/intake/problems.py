"""How intake says no over HTTP, in the platform's convention (:mod:`shared.http_problems`): every refusal of
intake's use cases as JSON naming the field or the rule, nothing as a 500; too many writes (429) and too large
a body (413) before any work is done. Bad input (422) is the service factory's own handler."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from services.intake.errors import Conflict, Forbidden, InvalidField, NotFound, RateLimited
from services.intake.lifecycle import TransitionError
from services.intake.store import IdempotencyMismatch, IntakeStore
from shared.http_problems import invalid, problem, unavailable
from shared.kafka import KafkaUnavailable


def install(app: FastAPI, *, logger: logging.Logger, retry_after_s: int, rate_limit_per_minute: int) -> None:
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

    @app.exception_handler(IdempotencyMismatch)
    async def key_reused(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return problem(
            422, "Idempotency-Key was already used with a different request; use a new key", "Idempotency-Key"
        )

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        response = problem(
            429,
            f"Too many writes from this client: at most {rate_limit_per_minute} per minute. "
            f"Try again in {exc.retry_after_s} s.",
            retry_after_s=exc.retry_after_s,
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, exc: RedisError) -> JSONResponse:
        logger.error("redis unavailable, refusing write", extra={"error": repr(exc)})
        return unavailable(retry_after_s, nothing_stored("The platform is overloaded or Redis is unavailable"))

    @app.exception_handler(KafkaUnavailable)
    async def kafka_unavailable(_: Request, exc: KafkaUnavailable) -> JSONResponse:
        logger.error("kafka unavailable, refusing write", extra={"error": str(exc)})
        return unavailable(retry_after_s, nothing_stored("Kafka is not available"))


def nothing_stored(detail: str) -> str:
    return f"{detail}; nothing was stored. Try again later."


def rate_limit(store: IntakeStore, per_minute: int) -> Callable[[Request], Awaitable[None]]:
    """A dependency that counts every POST of a client and refuses it (:class:`RateLimited`) over ``per_minute``."""

    async def rate_limited(request: Request) -> None:
        if request.method == "POST":
            client = request.client.host if request.client else "unknown"
            wait = await store.hit(client, per_minute)
            if wait is not None:
                raise RateLimited(wait)

    return rate_limited


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

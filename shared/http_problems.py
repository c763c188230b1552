"""How every service says no over HTTP, one convention for all four: a JSON body with ``detail`` (one readable
sentence) and, where a field is at fault, ``errors`` naming each field and its rule; ``503`` always with
``Retry-After`` (``RETRY_AFTER_S``). ``service_app`` installs the handlers; routes raise or return these."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def problem(status: int, detail: str, field: str | None = None, **extra: Any) -> JSONResponse:
    """A refusal: ``{"detail": ..., "errors": [{"field": ..., "message": ...}], ...extra}``."""
    body: dict[str, Any] = {"detail": detail, **extra}
    if field:
        body["errors"] = [{"field": field, "message": detail}]
    return JSONResponse(status_code=status, content=body)


def invalid(field: str, message: str) -> JSONResponse:
    """422 for one field that breaks a rule only the service can check (the catalogue, the lifecycle)."""
    return JSONResponse(
        status_code=422,
        content={"detail": f"Invalid request: {field}: {message}", "errors": [{"field": field, "message": message}]},
    )


def unavailable(retry_after_s: int, detail: str) -> JSONResponse:
    """503: a dependency (Kafka, Redis, the identity provider) is away; nothing was stored; come back later."""
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": str(retry_after_s)},
        content={"detail": detail, "retry_after_s": retry_after_s},
    )


def validation_body(exc: RequestValidationError) -> dict[str, Any]:
    """422 body: one entry per problem, naming the field (or parameter) and the rule."""
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part not in ("body", "query", "header", "path")]
        message = str(error["msg"]).removeprefix("Value error, ")
        field, sep, rest = message.partition(": ")
        if sep and not loc and field.replace("_", "").replace(".", "").isalnum():
            loc, message = [field], rest  # a model-level check names its field at the start of the message
        errors.append({"field": ".".join(loc) or "(body)", "message": message, "type": error["type"]})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return {"detail": f"Invalid request: {summary}", "errors": errors}


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "One readable sentence: what was refused and why"},
        "errors": {
            "type": "array",
            "description": "Each field (or parameter) at fault and its rule",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}},
            },
        },
    },
}

UNREADABLE: dict[str, Any] = {
    "description": "The body could not be read (not valid JSON, or not the declared content type)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def install(app: FastAPI) -> None:
    """The conventions every service shares: bad input is a 422 naming each field, and the OpenAPI document says
    so (its 422s describe this body, not FastAPI's default list of errors)."""

    @app.exception_handler(RequestValidationError)
    async def refuse_bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=validation_body(exc))

    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI builds it once and keeps it: the change below is made once, in place
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = PROBLEM_SCHEMA
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                if "requestBody" in operation:  # a body that cannot be read at all (not JSON, not a form)
                    operation["responses"].setdefault("400", UNREADABLE)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

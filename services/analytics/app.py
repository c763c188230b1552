"""Analytics: the read side. Every idea's story, the officers' inboxes and the figures of the change process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.analytics.api import api_router
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.metrics import BusinessMetrics, refresh_loop
from services.analytics.pages import page_router
from services.analytics.queries import ReadModel
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import ProjectionStore
from services.analytics.subscribers import register
from shared.live_catalogue import LiveCatalogue
from shared.service import Runtime, service_app


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()
    runtime = Runtime.create("analytics", settings)
    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    tz = ZoneInfo(settings.timezone)
    store = ProjectionStore(runtime.redis, settings.redis_prefix)
    register(runtime, AnalyticsHandlers(runtime, store))
    business = BusinessMetrics.create(runtime.metrics.registry)
    read = ReadModel(store, live_catalogue.current, tz)
    live_catalogue.keep_current(read)
    app = service_app(
        runtime,
        title="Kiruna innovation platform: analytics",
        description="Idea timelines, officer inboxes and the change-process figures. Every figure is also "
        "available as CSV with `?format=csv`.",
        background=[lambda: live_catalogue.watching(settings.catalogue_check_interval_s)],
    )
    app.state.read_model = read
    app.state.business_metrics = business

    @app.exception_handler(RequestValidationError)
    async def refuse_bad_query(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=validation_body(exc))

    identity = app.state.identity  # who is acting: bearer token or the site's session (shared/identity.py)
    app.include_router(api_router(read, identity))
    app.include_router(page_router(read, identity=identity, intake_url=settings.intake_url, tz=tz))

    service_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with service_lifespan(application):
            gauges = asyncio.create_task(
                refresh_loop(
                    runtime,
                    store,
                    lambda: read.catalogue,
                    business,
                    interval_s=settings.metrics_interval_s,
                    tz=tz,
                ),
                name="analytics-business-metrics",
            )
            try:
                yield
            finally:
                gauges.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gauges

    app.router.lifespan_context = lifespan
    return app


def validation_body(exc: RequestValidationError) -> dict:
    """422 body: one entry per problem, naming the parameter and the rule."""
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part not in ("body", "query", "header", "path")]
        errors.append({"field": ".".join(loc) or "(query)", "message": error["msg"], "type": error["type"]})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return {"detail": f"Invalid request: {summary}", "errors": errors}

"""Analytics: the read side. Every idea's story and the figures of the change process."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import FastAPI, HTTPException, Path

from services.analytics.domain import project_idea
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import ProjectionStore
from services.analytics.subscribers import register
from shared.service import Runtime, service_app

IDEA_ID = Path(pattern=r"^[0-9a-fA-F-]{36}$", description="Idea id (UUID)")


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()
    runtime = Runtime.create("analytics", settings)
    store = ProjectionStore(runtime.redis, settings.redis_prefix)
    register(runtime, AnalyticsHandlers(runtime, store))
    app = service_app(
        runtime,
        title="Kiruna innovation platform: analytics",
        description="Idea timelines, officer inboxes and the change-process figures.",
    )

    @app.get("/api/v1/ideas/{idea_id}", tags=["ideas"], summary="An idea's timeline and current state")
    async def idea(idea_id: str = IDEA_ID) -> dict:
        entries = await store.entries(idea_id)
        if not entries:
            raise HTTPException(404, detail=f"No idea with id {idea_id} (yet): it may still be on its way.")
        return asdict(project_idea(idea_id, entries))

    return app

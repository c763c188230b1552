"""Routing: every idea reaches the organisations and areas that can act on it, with the reason."""

from __future__ import annotations

from fastapi import FastAPI

from services.routing.classifier import Router
from services.routing.handlers import RoutingHandlers
from services.routing.settings import RoutingSettings
from services.routing.subscribers import register
from shared.catalogue import load_catalogue
from shared.service import Runtime, service_app


def create_app(settings: RoutingSettings | None = None, router: Router | None = None) -> FastAPI:
    """Build routing from settings; tests may pass their own router."""
    settings = settings or RoutingSettings()
    runtime = Runtime.create("routing", settings)
    catalogue = load_catalogue(settings.catalogue_path)
    router = router or Router(catalogue)
    register(runtime, RoutingHandlers(runtime, lambda: router))
    app = service_app(
        runtime,
        title="Kiruna innovation platform: routing",
        description="Assigns ideas to organisations, units and areas, with the reason.",
    )

    @app.get("/api/v1/catalogue", tags=["catalogue"], summary="The catalogue in use and its version")
    async def catalogue_in_use() -> dict:
        return {
            "version": catalogue.version,
            "organisations": list(catalogue.organisation_ids),
            "areas": [a.id for a in catalogue.areas],
        }

    return app

"""Routing: every idea reaches the organisations and areas that can act on it, with the reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Query

from services.routing.classifier import Router
from services.routing.feedback import FeedbackMemory
from services.routing.handlers import RoutingHandlers
from services.routing.live import LiveRouter
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore
from services.routing.subscribers import register
from shared.asyncapi import declare_publication
from shared.catalogue import Catalogue
from shared.events import IdeaRouted
from shared.live_catalogue import LiveCatalogue
from shared.principal import Role
from shared.service import Runtime, service_app
from shared.topics import ensure_topics


def create_app(settings: RoutingSettings | None = None, router: Router | None = None) -> FastAPI:
    """Build routing from settings; tests may pass their own router."""
    settings = settings or RoutingSettings()
    runtime = Runtime.create("routing", settings)
    memory = FeedbackMemory()
    store = RoutingStore(runtime.redis, settings.redis_prefix)

    async def create_topics_of(catalogue: Catalogue) -> None:
        """A new organisation in the catalogue gets its topic before any idea is routed to it."""
        names = {runtime.topics.organisation(org) for org in catalogue.organisation_ids}
        specs = [s for s in runtime.topics.specs(settings.kafka, catalogue.organisation_ids) if s.name in names]
        await ensure_topics(settings.kafka, specs, wait_s=10)

    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    live_catalogue.on_change(create_topics_of)  # before the new router routes to a new organisation
    live = LiveRouter(live_catalogue, memory, router)
    handlers = RoutingHandlers(runtime, live, store, memory)
    register(runtime, handlers)
    declare_publication(
        runtime.broker,
        runtime.topics.routed,
        IdeaRouted,
        title="routing.publishes.routed",
        description="Every routing decision and re-route: organisations, units and areas, with the reason",
    )
    for org in live_catalogue.current.organisation_ids:  # the organisations' topics at start
        declare_publication(
            runtime.broker,
            runtime.topics.organisation(org),
            IdeaRouted,
            title=f"routing.publishes.org.{org}",
            description=f"The ideas routed to {org}, for its own systems: subscribe to this topic only",
        )

    @contextlib.asynccontextmanager
    async def learning_and_watching() -> AsyncIterator[None]:
        await handlers.refresh_feedback()  # what was learnt before this start

        async def keep_learning() -> None:  # what other replicas learn meanwhile
            while True:
                await asyncio.sleep(settings.feedback_refresh_interval_s)
                try:
                    await handlers.refresh_feedback()
                except Exception as exc:
                    runtime.logger.warning("could not refresh learned re-routes", extra={"error": repr(exc)})

        refresher = asyncio.create_task(keep_learning(), name="feedback-refresh")
        try:
            async with live_catalogue.watching(settings.catalogue_check_interval_s):
                yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    app = service_app(
        runtime,
        title="Kiruna innovation platform: routing",
        description="Assigns ideas to organisations, units and areas, with the reason.",
        background=[learning_and_watching],
    )

    @app.get("/api/v1/catalogue", tags=["catalogue"], summary="The catalogue in use and its version")
    async def catalogue_in_use() -> dict:
        catalogue = live().catalogue
        return {
            "version": catalogue.version,
            "organisations": list(catalogue.organisation_ids),
            "areas": [a.id for a in catalogue.areas],
            "learned_reroutes": len(memory),
        }

    officers = app.state.identity.role(Role.OFFICER, Role.INNOVATION_OFFICE, Role.ADMIN)

    @app.get(
        "/api/v1/route",
        tags=["catalogue"],
        summary="Try the router on a text (nothing is published; officers, the innovation office, admins)",
        dependencies=[Depends(officers)],
    )
    async def try_route(title: str = Query(max_length=200), description: str = Query("", max_length=10_000)) -> dict:
        decision = live().route(title, description)
        return {
            "organisations": [t.model_dump() for t in decision.organisations],
            "areas": [a.model_dump() for a in decision.areas],
            "reason": decision.reason,
            "triage": decision.triage,
            "catalogue_version": decision.catalogue_version,
        }

    return app

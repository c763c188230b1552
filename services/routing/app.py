"""Routing: every idea reaches the organisations and areas that can act on it, with the reason.

The factory wires, and nothing else: adapters (Redis store, Kafka publisher), the live router and what it learnt,
the handlers (handlers.py), the subscriptions (subscribers.py) and the API (api.py)."""

from __future__ import annotations

from fastapi import FastAPI

from services.routing.api import api_router
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
from shared.publishing import Publisher
from shared.service import Runtime, service_app
from shared.topics import ensure_topics
from shared.transactions import Transactions


def create_app(
    settings: RoutingSettings | None = None,
    router: Router | None = None,
    *,
    store: RoutingStore | None = None,
    publisher: Publisher | None = None,
) -> FastAPI:
    """Build routing from settings; tests may pass their own router, and in-memory ``store`` and ``publisher``
    instead of the Redis and Kafka adapters. With Kafka's, what each consumed batch publishes is committed with
    its offsets in one Kafka transaction (shared/transactions.py): an organisation reading its topic with
    ``isolation_level=read_committed`` sees each routing decision once, whatever was killed or stalled."""
    settings = settings or RoutingSettings()
    runtime = Runtime.create("routing", settings)
    memory = FeedbackMemory()
    if store is None:
        store = RoutingStore(runtime.redis, settings.redis_prefix, effect_ttl_s=settings.effect_key_ttl_s)
    if publisher is None:
        runtime.transactions = Transactions(
            settings.kafka,
            transactional_id=settings.transactional_id,
            service="routing",
            metrics=runtime.metrics,
            logger=runtime.logger,
            transaction_timeout_s=settings.transaction_timeout_s,
        )
        publisher = runtime.transactions.publisher

    async def create_topics_of(catalogue: Catalogue) -> None:
        """A new organisation in the catalogue gets its topic before any idea is routed to it."""
        names = {runtime.topics.organisation(org) for org in catalogue.organisation_ids}
        specs = [s for s in runtime.topics.specs(settings.kafka, catalogue.organisation_ids) if s.name in names]
        await ensure_topics(settings.kafka, specs, wait_s=10)

    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    live_catalogue.on_change(create_topics_of)  # before the new router routes to a new organisation
    live = LiveRouter(live_catalogue, memory, router)
    handlers = RoutingHandlers(
        publisher, live, store, memory, topics=runtime.topics, metrics=runtime.metrics, logger=runtime.logger
    )
    register(runtime, handlers, runtime.transactions)
    declare_publication(
        runtime.broker,
        runtime.topics.routed,
        IdeaRouted,
        title="routing.publishes.routed",
        description="Every routing decision and re-route: organisations, units and areas, with the reason "
        "(written in transactions: read with isolation.level=read_committed)",
    )
    for org in live_catalogue.current.organisation_ids:  # the organisations' topics at start
        declare_publication(
            runtime.broker,
            runtime.topics.organisation(org),
            IdeaRouted,
            title=f"routing.publishes.org.{org}",
            description=f"The ideas routed to {org}, for its own systems: subscribe to this topic only, with "
            "isolation.level=read_committed (written in transactions: each routing decision is seen once)",
        )

    app = service_app(
        runtime,
        title="Kiruna innovation platform: routing",
        description="Assigns ideas to organisations, units and areas, with the reason.",
        background=[
            lambda: handlers.learning(settings.feedback_refresh_interval_s),  # what was learnt, then what is learnt
            lambda: live_catalogue.watching(settings.catalogue_check_interval_s),
        ],
    )

    officers = app.state.identity.role(Role.OFFICER, Role.INNOVATION_OFFICE, Role.ADMIN)
    app.include_router(api_router(live, memory, officers))
    return app

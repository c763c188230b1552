"""Analytics: the read side. Every idea's story, the officers' inboxes and the figures of the change process."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import FastAPI

from services.analytics.api import api_router
from services.analytics.cache import FigureCache
from services.analytics.handlers import AnalyticsHandlers
from services.analytics.metrics import BusinessMetrics, refreshing
from services.analytics.mirror import IdeaMirror
from services.analytics.pages import page_router
from services.analytics.queries import ReadModel
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import ProjectionStore
from services.analytics.subscribers import register
from shared.live_catalogue import LiveCatalogue
from shared.service import Runtime, service_app
from shared.similarity import SimilarityIndex


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()
    runtime = Runtime.create("analytics", settings)
    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    tz = ZoneInfo(settings.timezone)
    store = ProjectionStore(runtime.redis, settings.redis_prefix)
    keyring = runtime.keyring  # the people's data keys (shared/keyring.py): which sealed values are readable
    assert keyring is not None
    register(runtime, AnalyticsHandlers(store, runtime.metrics, keyring, runtime.logger))
    business = BusinessMetrics.create(runtime.metrics.registry)
    cache = FigureCache(max_age_s=settings.figures_cache_s, max_scopes=settings.figures_cache_scopes)
    # every idea's text in memory, for search and similar ideas, caught up from the projection (mirror.py)
    mirror = IdeaMirror(store, SimilarityIndex(settings.synonyms_path), runtime.logger)
    read = ReadModel(store, live_catalogue.current, tz, figures_cache=cache, keyring=keyring, mirror=mirror)
    live_catalogue.keep_current(read)
    app = service_app(
        runtime,
        title="Kiruna innovation platform: analytics",
        description="Idea timelines, officer inboxes and the change-process figures. Every figure is also "
        "available as CSV with `?format=csv`.",
        background=[
            lambda: live_catalogue.watching(settings.catalogue_check_interval_s),
            lambda: refreshing(
                runtime, store, lambda: read.catalogue, business, interval_s=settings.metrics_interval_s, tz=tz
            ),
            lambda: mirror.keeping_current(settings.index_sync_interval_s),
        ],
    )
    app.state.read_model = read
    app.state.mirror = mirror
    app.state.business_metrics = business

    identity = app.state.identity  # who is acting: bearer token or the site's session (shared/identity.py)
    app.include_router(api_router(read, identity))
    app.include_router(page_router(read, identity=identity, intake_url=settings.intake_url, tz=tz))
    return app

"""Notifications: everyone hears what happens to an idea, exactly once."""

from __future__ import annotations

from fastapi import FastAPI, Path, Query

from services.notifications.handlers import NotificationHandlers
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.subscribers import register
from shared.catalogue import load_catalogue
from shared.service import Runtime, service_app


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    runtime = Runtime.create("notifications", settings)
    store = NotificationStore(runtime.redis, settings.redis_prefix, settings.feed_length)
    register(runtime, NotificationHandlers(runtime, store, load_catalogue(settings.catalogue_path)))
    app = service_app(
        runtime,
        title="Kiruna innovation platform: notifications",
        description="Tells submitters, officers and followers what happens to ideas.",
    )

    @app.get("/api/v1/people/{person}/feed", tags=["feed"], summary="A person's in-app notifications, newest first")
    async def feed(person: str = Path(max_length=320), limit: int = Query(50, ge=1, le=500)) -> dict:
        return {"person": person, "items": await store.feed(person.lower(), limit)}

    return app

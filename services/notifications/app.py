"""Notifications: everyone hears what happens to an idea, exactly once.

HTTP (port 8002): a person's in-app feed and its live stream (server-sent events), their preferences, the
one-click unsubscribe link of every e-mail, and an operator endpoint that sends a day's digests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from html import escape
from typing import Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.notifications import domain
from services.notifications.delivery import (
    DeliveryQueue,
    DeliveryWorker,
    Mailer,
    NotificationMetrics,
    Reporter,
    WebhookPoster,
)
from services.notifications.handlers import NotificationHandlers
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.subscribers import register
from shared.asyncapi import declare_publication
from shared.events import Envelope, NotificationSent, PreferencesChanged
from shared.kafka import KafkaUnavailable, publish_event
from shared.live_catalogue import LiveCatalogue
from shared.service import Runtime, service_app

SOURCE = "/services/notifications"
PERSON = Path(max_length=320, description="The person's e-mail address")


class PreferencesBody(BaseModel):
    """How a person wants to hear about ideas."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Literal["email", "in-app"]] = Field(
        default=["email", "in-app"], description="Channels to hear on; an empty list: none"
    )
    frequency: Literal["immediate", "daily"] = Field(default="immediate", description="E-mail at once or daily")
    areas: list[str] = Field(default=[], description="Area ids (catalogue) whose new ideas and decisions to hear of")
    organisations: list[str] = Field(default=[], description="Organisation ids (catalogue) to hear of")
    language: Literal["sv", "en"] | None = Field(default=None, description="Language of the news (default Swedish)")


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    runtime = Runtime.create("notifications", settings)
    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    metrics = NotificationMetrics.create(runtime.metrics.registry)
    store = NotificationStore(runtime.redis, settings.redis_prefix, settings.feed_length)
    queue = DeliveryQueue(runtime.redis, settings.redis_prefix)
    reporter = Reporter(runtime, metrics)
    renderer = Renderer(settings.templates_dir)
    handlers = NotificationHandlers(runtime, store, queue, reporter, renderer, live_catalogue.current)
    live_catalogue.keep_current(handlers)
    worker = DeliveryWorker(
        queue=queue,
        senders={"email": Mailer(settings), "webhook": WebhookPoster(settings)},
        reporter=reporter,
        settings=settings,
        metrics=metrics,
        logger=runtime.logger,
    )
    register(runtime, handlers)
    declare_publication(
        runtime.broker,
        runtime.topics.notifications_sent,
        NotificationSent,
        title="notifications.publishes.sent",
        description="Every notification's outcome (delivered, failed, skipped) per recipient and channel",
    )
    declare_publication(
        runtime.broker,
        runtime.topics.preferences,
        PreferencesChanged,
        title="notifications.publishes.preferences",
        description="A person's new preferences, whole (the last event of a person is their preferences)",
    )

    @contextlib.asynccontextmanager
    async def background() -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(worker.run(runtime.kafka_connected), name="notifications-deliveries"),
            asyncio.create_task(periodic(runtime, handlers, settings), name="notifications-periodic"),
            asyncio.create_task(watch_waiting(runtime, store, metrics), name="notifications-waiting"),
        ]
        try:
            yield
        finally:
            worker.stopping.set()
            await stop(tasks)
            await worker.stop()

    app = service_app(
        runtime,
        title="Kiruna innovation platform: notifications",
        description="Tells submitters, officers, followers and subscribers what happens to ideas: in-app, "
        "e-mail and webhooks, once per event and person.",
        background=[lambda: live_catalogue.watching(settings.catalogue_check_interval_s), background],
    )
    app.state.handlers = handlers
    app.state.worker = worker
    app.state.queue = queue

    @app.get("/api/v1/people/{person}/feed", tags=["feed"], summary="A person's in-app notifications, newest first")
    async def feed(person: str = PERSON, limit: int = Query(50, ge=1, le=500)) -> dict:
        return {"person": person, "items": await store.feed(person.lower(), limit)}

    @app.get(
        "/api/v1/people/{person}/stream",
        tags=["feed"],
        summary="New in-app notifications as they arrive (server-sent events)",
        response_class=StreamingResponse,
    )
    async def stream(
        request: Request,
        person: str = PERSON,
        limit: int | None = Query(None, ge=1, description="Close the stream after this many notifications"),
    ) -> StreamingResponse:
        pubsub = runtime.redis.pubsub()
        await pubsub.subscribe(store.live_channel(person.lower()))

        async def events() -> AsyncIterator[str]:
            sent = 0
            try:
                yield "retry: 3000\n\n"
                while limit is None or sent < limit:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15.0)
                    if message is None:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    item = json.loads(message["data"])
                    yield f"id: {item['notification_id']}\nevent: notification\ndata: {message['data']}\n\n"
                    sent += 1
            finally:
                await pubsub.unsubscribe()
                await pubsub.aclose()

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.get("/api/v1/people/{person}/preferences", tags=["preferences"], summary="A person's preferences")
    async def get_preferences(person: str = PERSON) -> dict:
        person = person.lower()
        return preferences_body(person, await store.preferences(person))

    @app.put("/api/v1/people/{person}/preferences", tags=["preferences"], summary="Change a person's preferences")
    async def put_preferences(body: PreferencesBody, person: str = PERSON) -> JSONResponse:
        person = person.lower()
        if not domain.is_email(person):
            return refusal("person", "must be an e-mail address")
        for field, values, known in (
            ("areas", body.areas, {a.id for a in handlers.catalogue.areas}),
            ("organisations", body.organisations, set(handlers.catalogue.organisation_ids)),
        ):
            if unknown := [v for v in values if v not in known]:
                return refusal(field, f"unknown {field} {unknown}; the catalogue has {sorted(known)}")
        preferences = domain.Preferences(
            channels=frozenset(body.channels),
            frequency=body.frequency,
            areas=tuple(dict.fromkeys(body.areas)),
            organisations=tuple(dict.fromkeys(body.organisations)),
            language=body.language,
        )
        try:
            await record_preferences(preferences.as_event(person))
        except KafkaUnavailable:
            return JSONResponse(
                status_code=503,
                headers={"Retry-After": "5"},
                content={"detail": "Kafka is unavailable; nothing was stored. Try again shortly."},
            )
        return JSONResponse(preferences_body(person, preferences))

    @app.api_route(
        "/api/v1/unsubscribe",
        methods=["GET", "POST"],
        tags=["preferences"],
        summary="One-click unsubscribe from e-mail (the signed link in every e-mail; RFC 8058 POST too)",
        response_class=HTMLResponse,
    )
    async def unsubscribe(token: str = Query(max_length=2000)) -> HTMLResponse:
        person = domain.verify_unsubscribe_token(token, settings.unsubscribe_secret.get_secret_value())
        if person is None:
            raise HTTPException(status_code=400, detail="The unsubscribe link is not valid (token: bad signature)")
        current = await store.preferences(person)
        if "email" in current.channels:
            changed = replace(current, channels=current.channels - {"email"})
            try:
                await record_preferences(changed.as_event(person, via="unsubscribe"))
            except KafkaUnavailable:
                raise HTTPException(
                    status_code=503, detail="Try again in a minute", headers={"Retry-After": "30"}
                ) from None
        return HTMLResponse(UNSUBSCRIBED.format(person=escape(person)))

    @app.post("/api/v1/digests/{day}", tags=["operations"], summary="Send the daily digests of a day (idempotent)")
    async def send_digest(day: date) -> dict:
        return {"day": day.isoformat(), "queued": await handlers.send_digest(day)}

    async def record_preferences(changed: PreferencesChanged) -> None:
        """Stored first as an event (the system of record), then applied, so a rebuild gives the same state."""
        envelope = Envelope.wrap(changed, source=SOURCE)
        await publish_event(
            runtime.broker, runtime.topics.preferences, envelope, timeout_s=settings.kafka.publish_timeout_s
        )
        await store.apply_preferences(changed, envelope.time)

    return app


async def periodic(runtime: Runtime, handlers: NotificationHandlers, settings: NotificationsSettings) -> None:
    """Response-time targets and daily digests, checked on a timer. Both are idempotent: running them twice, or
    in two replicas at once, sends nothing twice."""
    await runtime.kafka_connected.wait()
    while True:
        for name, task in (("deadlines", handlers.check_deadlines), ("digest", handlers.send_due_digest)):
            try:
                await task()
            except Exception as exc:  # Redis or Kafka away for a moment: try again next round
                runtime.logger.warning("periodic task failed", extra={"task": name, "error": repr(exc)})
        await asyncio.sleep(settings.deadline_check_interval_s)


async def watch_waiting(runtime: Runtime, store: NotificationStore, metrics: NotificationMetrics) -> None:
    """Measure the events that wait for their idea's submission: normally for a moment; for long only if the
    submission never reached notifications (dead-lettered, or lost upstream), which an operator must see."""
    while True:
        try:
            count, since = await store.waiting_ideas()
            metrics.waiting_ideas.set(count)
            metrics.oldest_wait.set(max(0.0, time.time() - since) if since is not None else 0.0)
        except Exception as exc:  # Redis away for a moment: measured again next round
            runtime.logger.warning("could not measure the waiting events", extra={"error": repr(exc)})
        await asyncio.sleep(runtime.ops.consumer_lag_interval_s)


async def stop(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks and wait until they have ended. The cancel is repeated: a cancel that lands while redis-py
    reconnects can be turned into a timeout and retried away, and then the task would run on for ever."""
    for task in tasks:
        for _ in range(50):
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
            if task.done():
                break


def preferences_body(person: str, preferences: domain.Preferences) -> dict:
    return {"person": person, **preferences.as_event(person).model_dump(mode="json", exclude={"person", "via"})}


def refusal(field: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={"detail": f"Invalid request: {field}: {message}", "errors": [{"field": field, "message": message}]},
    )


UNSUBSCRIBED = """<!DOCTYPE html>
<html lang="sv"><head><meta charset="utf-8"><title>Avslutad / Unsubscribed</title></head>
<body style="font-family: sans-serif; max-width: 40em;">
<h1>Du får inte längre e-post</h1>
<p>{person} får inte längre e-post från Kirunas innovationsplattform. Nyheterna finns kvar i flödet i appen.</p>
<p lang="en">{person} will no longer receive e-mail from the Kiruna innovation platform.
The news stays in the in-app feed.</p>
</body></html>
"""

"""Notifications: everyone hears what happens to an idea, exactly once.

HTTP (port 8002): a signed-in person's own in-app feed and its live stream (server-sent events), their
preferences, their pages (``/my/feed``, ``/my/preferences``), the one-click unsubscribe link of every e-mail, and
the administrators' endpoint that sends a day's digests (services/notifications/people.py and pages.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from services.notifications.delivery import (
    DeliveryQueue,
    DeliveryWorker,
    Mailer,
    NotificationMetrics,
    Reporter,
    WebhookPoster,
)
from services.notifications.handlers import NotificationHandlers
from services.notifications.pages import page_router
from services.notifications.people import PersonPreferences, digest_router, people_router
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.subscribers import register
from shared.asyncapi import declare_publication
from shared.events import NotificationSent, PreferencesChanged
from shared.live_catalogue import LiveCatalogue
from shared.service import Runtime, service_app


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

    identity = app.state.identity
    preferences = PersonPreferences(
        store,
        runtime.broker,
        runtime.topics.preferences,
        lambda: live_catalogue.current,
        publish_timeout_s=settings.kafka.publish_timeout_s,
    )
    zone = ZoneInfo(settings.timezone)
    app.include_router(
        people_router(identity, store, preferences, unsubscribe_secret=settings.unsubscribe_secret.get_secret_value())
    )
    app.include_router(digest_router(identity, handlers, zone))
    app.include_router(page_router(identity, store, preferences, lambda: live_catalogue.current, zone))
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

"""Notifications: everyone hears what happens to an idea, exactly once.

The factory: it wires the service from its settings and holds no use case. The subscriptions are in
subscribers.py, the effects in handlers.py (events that wait for their submission: waiting.py), e-mail and webhooks
in delivery/, and the HTTP side (port 8002) in people.py (a person's feed, its live stream, preferences, the
unsubscribe link, the administrators' digests) and pages.py (``/my/feed``, ``/my/preferences``).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import FastAPI

from services.notifications.contacts import Contacts
from services.notifications.delivery.model import DeliveryMetrics
from services.notifications.delivery.outcomes import Reporter
from services.notifications.delivery.queue import DeliveryQueue
from services.notifications.delivery.senders import Mailer, WebhookPoster
from services.notifications.delivery.worker import DeliveryWorker
from services.notifications.handlers import NotificationHandlers, periodically
from services.notifications.live import LiveMetrics, LiveStreams
from services.notifications.pages import page_router
from services.notifications.people import PersonPreferences, digest_router, people_router
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore
from services.notifications.subscribers import register
from services.notifications.tasks import in_background
from services.notifications.waiting import RedisWaitingRoom, Waiting, WaitingMetrics, watching
from shared.asyncapi import declare_publication
from shared.events import NotificationSent, PreferencesChanged, utc_now
from shared.idempotency import Idempotency
from shared.live_catalogue import LiveCatalogue
from shared.publishing import KafkaPublisher
from shared.service import Runtime, redis_client, service_app


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    runtime = Runtime.create("notifications", settings)
    topics = runtime.topics
    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    publisher = KafkaPublisher.of(runtime, timeout_s=None)  # a handler waits for the verdict
    metrics = DeliveryMetrics.create(runtime.metrics.registry)
    waiting_metrics = WaitingMetrics.create(runtime.metrics.registry)
    ttl = settings.effect_key_ttl_s  # effect marks expire, state does not (settings.py)
    store = NotificationStore(runtime.redis, settings.redis_prefix, settings.feed_length, effect_ttl_s=ttl)
    assert runtime.keyring is not None  # made by Runtime.create from PEOPLE_KEK and PSEUDONYM_PEPPER
    # people are pseudonyms here; their addresses are opened with the keyring only to send a mail
    contacts = Contacts(store, runtime.keyring, lambda: live_catalogue.current)
    room = RedisWaitingRoom(runtime.redis, settings.redis_prefix)
    queue = DeliveryQueue(runtime.redis, settings.redis_prefix, effect_ttl_s=ttl)
    reporter = Reporter(
        publisher,
        sent_topic=topics.notifications_sent,
        dead_letter_topic=topics.notifications_dlq,
        dead_letters=runtime.dead_letters,
        metrics=metrics,
        publish_timeout_s=settings.kafka.publish_timeout_s,
    )
    handlers = NotificationHandlers(
        store=store,
        waiting=Waiting.of_idea_events(room, runtime.dead_letters, topics),
        deliveries=queue,
        outcomes=reporter,
        renderer=Renderer(settings.templates_dir),
        catalogue=live_catalogue.current,
        contacts=contacts,
        settings=settings,
        done=Idempotency(runtime.redis, prefix=settings.redis_prefix, scope="notifications", ttl_s=ttl),
        clock=utc_now,
        repeats=runtime.metrics.idempotent_skips,
    )
    live_catalogue.keep_current(handlers)
    worker = DeliveryWorker(
        queue=queue,
        senders={"email": Mailer(settings, contacts), "webhook": WebhookPoster(settings)},
        reporter=reporter,
        settings=settings,
        metrics=metrics,
        logger=runtime.logger,
        pseudonym=runtime.keyring.pseudonym,
        dependency_waits=runtime.metrics.dependency_waits,
    )
    register(runtime, handlers)
    # notifications' own dead letters and waits, at 0 from the first scrape (the consumed topics': Runtime.running)
    runtime.metrics.expect_dead_letters(topics.notifications_dlq.removesuffix(".dlq"), ["delivery-failed"])
    runtime.metrics.expect_dependency_waits("deliveries", ["redis", "smtp"])
    streams = LiveStreams(
        channel_prefix=store.live_channel(""),
        per_person=settings.streams_per_person,
        max_streams=settings.streams_max,
        queue_size=settings.stream_queue,
        metrics=LiveMetrics.create(runtime.metrics.registry),
        listening=store.listening,
    )
    declare_publication(
        runtime.broker,
        topics.notifications_sent,
        NotificationSent,
        title="notifications.publishes.sent",
        description="Every notification's outcome (delivered, failed, skipped) per recipient (a pseudonym, or "
        "webhook:<organisation>) and channel",
    )
    declare_publication(
        runtime.broker,
        topics.preferences,
        PreferencesChanged,
        title="notifications.publishes.preferences",
        description="A person's new preferences, whole (the last event of a person is their preferences), keyed by "
        "their pseudonym, their address and name sealed under their data key",
    )

    app = service_app(
        runtime,
        title="Kiruna innovation platform: notifications",
        description="Tells submitters, officers, followers and subscribers what happens to ideas: in-app, "
        "e-mail and webhooks, once per event and person.",
        background=[
            lambda: live_catalogue.watching(settings.catalogue_check_interval_s),
            lambda: worker.running(runtime.kafka_connected),
            lambda: in_background(
                "notifications-periodic",
                lambda: periodically(
                    handlers, runtime.kafka_connected, settings.deadline_check_interval_s, runtime.logger
                ),
            ),
            lambda: watching(room, waiting_metrics, runtime.ops.consumer_lag_interval_s, runtime.logger),
            # the live streams' one subscription, on a connection of its own (not from the handlers' pool)
            lambda: streams.listening(lambda: redis_client(settings, blocking_reads=True), runtime.logger),
        ],
    )
    app.state.handlers = handlers
    app.state.worker = worker
    app.state.queue = queue
    app.state.waiting_room = room
    app.state.streams = streams

    identity = app.state.identity
    preferences = PersonPreferences(store, publisher, topics.preferences, lambda: live_catalogue.current, contacts)
    zone = ZoneInfo(settings.timezone)
    retry_after_s = settings.retry_after_s
    app.include_router(
        people_router(
            identity,
            store,
            preferences,
            streams=streams,
            unsubscribe_secret=settings.unsubscribe_secret.get_secret_value(),
            retry_after_s=retry_after_s,
            stream_ping_s=settings.stream_ping_s,
            stream_send_timeout_s=settings.stream_send_timeout_s,
        )
    )
    app.include_router(digest_router(identity, handlers, zone))
    app.include_router(
        page_router(identity, store, preferences, lambda: live_catalogue.current, zone, retry_after_s=retry_after_s)
    )
    return app

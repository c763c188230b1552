"""Intake: the front door. Every write is answered only after Kafka has acknowledged it.

The factory wires, and nothing else: adapters (Redis store, Kafka publisher), the use cases (handlers.py,
people.py), the similar-ideas index (similar.py), the subscriptions (subscribers.py), the doors (api.py, web.py,
idea_forms.py, challenge_pages.py, mail.py, people.py, my_data.py) and the refusals (problems.py). Tests may give
it in-memory adapters (tests/fakes/intake.py), as a composition root does."""

from __future__ import annotations

import functools

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.intake import problems
from services.intake.api import api_router
from services.intake.challenge_pages import challenge_pages_router
from services.intake.handlers import Intake
from services.intake.idea_forms import idea_forms_router
from services.intake.mail import smtp_listener
from services.intake.my_data import my_data_router
from services.intake.people import People, closing_key_segments, people_router
from services.intake.settings import IntakeSettings
from services.intake.similar import SimilarIdeas
from services.intake.store import IntakeStore
from services.intake.subscribers import register
from services.intake.web import web_router
from shared.asyncapi import declare_publication
from shared.events import (
    ChallengeOpened,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaStatusChanged,
    IdeaSubmitted,
    PersonErasureRequested,
    RerouteIdea,
)
from shared.live_catalogue import LiveCatalogue
from shared.publishing import KafkaPublisher, Publisher
from shared.replay import read_batches
from shared.service import Runtime, service_app


def create_app(
    settings: IntakeSettings | None = None, *, store: IntakeStore | None = None, publisher: Publisher | None = None
) -> FastAPI:
    """Build intake from settings; ``store`` and ``publisher`` replace the Redis and Kafka adapters (tests)."""
    settings = settings or IntakeSettings()
    runtime = Runtime.create("intake", settings)
    if store is None:
        store = IntakeStore(runtime.redis, settings.redis_prefix)
    if publisher is None:
        publisher = KafkaPublisher.of(
            runtime, timeout_s=settings.kafka.publish_timeout_s, connected=runtime.kafka_writable
        )
    live_catalogue = LiveCatalogue(runtime, settings.catalogue_path)
    keyring = runtime.keyring
    assert keyring is not None  # every runtime has the platform's keyring (shared/service.py)
    intake = Intake(
        publisher,
        store,
        live_catalogue.current,
        keyring,
        topics=runtime.topics,
        public_base_url=settings.public_base_url,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        pending_lease_s=2 * settings.kafka.publish_timeout_s,  # a crashed attempt frees its key after this
        logger=runtime.logger,
    )
    live_catalogue.keep_current(intake)
    people = People(
        publisher,
        store,
        keyring,
        topics=runtime.topics,
        history=functools.partial(read_batches, settings.kafka, label="exporting a person", progress=False),
        export_timeout_s=settings.export_timeout_s,
        exports_at_once=settings.exports_at_once,
        logger=runtime.logger,
    )
    similar = SimilarIdeas(store, logger=runtime.logger)  # each replica's own index, kept up from Redis
    register(runtime, intake, people)
    for topic, model, name, description in (
        (runtime.topics.submitted, IdeaSubmitted, "submitted", "Every new idea, from every front end, once stored"),
        (
            runtime.topics.status_changed,
            IdeaStatusChanged,
            "status-changed",
            "An officer moved an idea on, or its submitter withdrew it",
        ),
        (runtime.topics.engagement, IdeaEngagement, "engagement", "Comments, support and follows of ideas"),
        (runtime.topics.edited, IdeaEdited, "edited", "A submitter corrected their idea before it was acknowledged"),
        (runtime.topics.assignments, IdeaAssigned, "assignments", "An officer gave an idea to one named officer"),
        (runtime.topics.challenges, ChallengeOpened, "challenges", "An organisation asks its staff for ideas"),
        (runtime.topics.routing_commands, RerouteIdea, "commands", "The innovation office re-routes an idea"),
        (runtime.topics.people_erasures, PersonErasureRequested, "people-erasures", "A person asked to be forgotten"),
    ):
        declare_publication(runtime.broker, topic, model, title=f"intake.publishes.{name}", description=description)
    app = service_app(
        runtime,
        title="Kiruna innovation platform: intake",
        description="Every write enters here: ideas, status changes, comments, support, re-routes, edits and "
        "withdrawals by submitters, assignments, challenges; and the people's requests about their data (export, "
        "erasure).",
        background=[
            lambda: live_catalogue.watching(settings.catalogue_check_interval_s),
            similar.loading,
            lambda: smtp_listener(intake, settings, registry=runtime.metrics.registry),
            # people.keys.v1's segments close (and erased keys are compacted away) in a bounded time
            lambda: closing_key_segments(keyring.writer, connected=runtime.kafka_connected, logger=runtime.logger),
        ],
    )
    app.state.intake = intake
    app.state.people = people
    app.state.similar = similar

    # Rate limits and the body limit are every service's (shared/rate_limits.py, shared/body_limit.py)
    identity = app.state.identity
    app.include_router(api_router(intake, identity, anonymous_without_sign_in=settings.anonymous_without_sign_in))
    app.include_router(people_router(people, identity))
    app.include_router(web_router(intake, identity, settings, similar))
    app.include_router(idea_forms_router(intake, identity))
    app.include_router(challenge_pages_router(intake, identity, settings))
    app.include_router(my_data_router(people, identity, settings))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID"],
    )
    problems.install(app, logger=runtime.logger, retry_after_s=settings.retry_after_s)
    return app

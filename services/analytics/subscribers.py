"""Every subscription of analytics, in one place."""

import functools

from services.analytics.handlers import AnalyticsHandlers
from shared.batch import subscribe_batch
from shared.events import ChallengeOpenedEvent, ErasureRequestedEvent, NotificationSentEvent
from shared.kafka import subscribe
from shared.service import Runtime
from shared.topics import Topics


def register(runtime: Runtime, handlers: AnalyticsHandlers) -> None:
    """Every projected topic in batches (a batch's events are recorded together: every idea's state read in one
    round trip, written in another), the challenges in batches too (one at a time), and the people's erasures one
    at a time."""
    topics = runtime.topics
    titles = {
        topics.submitted: "analytics.submitted",
        topics.routed: "analytics.routed",
        topics.status_changed: "analytics.status-changed",
        topics.engagement: "analytics.engagement",
        topics.edited: "analytics.edited",
        topics.assignments: "analytics.assignments",
        topics.notifications_sent: "analytics.notifications-sent",
    }
    for topic, model in projected_topics(topics).items():
        record = functools.partial(handlers.record_batch, topic)
        subscribe_batch(runtime, topic, model, title=titles[topic], per_batch=record)
    subscribe_batch(
        runtime,
        topics.challenges,
        ChallengeOpenedEvent,
        title="analytics.challenges",
        description="Challenges as opened: the challenge pages, their ideas and figures",
        each=functools.partial(handlers.challenge_opened, topics.challenges),
    )

    @subscribe(
        runtime.broker,
        runtime.settings.group_id,
        topics.people_erasures,
        title="analytics.people-erasures",
        description="A person asked to be forgotten: their name, address and comments' texts leave the projection "
        "and their ideas leave 'my ideas'; every count stays",
    )
    async def on_erasure(event: ErasureRequestedEvent) -> None:
        await handlers.erased(event)


def projected_topics(runtime_topics: Topics) -> dict[str, type]:
    """Every topic analytics projects, with the envelope model of its events (the rebuild reads the same)."""
    return {**runtime_topics.idea_events(), runtime_topics.notifications_sent: NotificationSentEvent}

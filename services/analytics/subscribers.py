"""Every subscription of analytics, in one place."""

import functools

from services.analytics.handlers import AnalyticsHandlers
from shared.batch import subscribe_batch
from shared.events import NotificationSentEvent
from shared.service import Runtime


def register(runtime: Runtime, handlers: AnalyticsHandlers) -> None:
    """Every projected topic in batches; an idea's events of a batch are recorded together (one refresh)."""
    topics = runtime.topics
    titles = {
        topics.submitted: "analytics.submitted",
        topics.routed: "analytics.routed",
        topics.status_changed: "analytics.status-changed",
        topics.engagement: "analytics.engagement",
        topics.notifications_sent: "analytics.notifications-sent",
    }
    for topic, model in projected_topics(topics).items():
        subscribe_batch(runtime, topic, model, title=titles[topic], per_idea=functools.partial(handlers.record, topic))


def projected_topics(runtime_topics) -> dict[str, type]:
    """Every topic analytics projects, with the envelope model of its events (the rebuild reads the same)."""
    return {**runtime_topics.idea_events(), runtime_topics.notifications_sent: NotificationSentEvent}

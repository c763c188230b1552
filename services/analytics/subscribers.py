"""Every subscription of analytics, in one place."""

from services.analytics.handlers import AnalyticsHandlers
from shared.events import EngagementEvent, NotificationSentEvent, RoutedEvent, StatusChangedEvent, SubmittedEvent
from shared.kafka import subscribe
from shared.service import Runtime


def register(runtime: Runtime, handlers: AnalyticsHandlers) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    @subscribe(runtime.broker, group, topics.submitted, title="analytics.submitted")
    async def on_submitted(event: SubmittedEvent) -> None:
        await handlers.record(topics.submitted, event.model_dump(mode="json"))

    @subscribe(runtime.broker, group, topics.routed, title="analytics.routed")
    async def on_routed(event: RoutedEvent) -> None:
        await handlers.record(topics.routed, event.model_dump(mode="json"))

    @subscribe(runtime.broker, group, topics.status_changed, title="analytics.status-changed")
    async def on_status_changed(event: StatusChangedEvent) -> None:
        await handlers.record(topics.status_changed, event.model_dump(mode="json"))

    @subscribe(runtime.broker, group, topics.engagement, title="analytics.engagement")
    async def on_engagement(event: EngagementEvent) -> None:
        await handlers.record(topics.engagement, event.model_dump(mode="json"))

    @subscribe(runtime.broker, group, topics.notifications_sent, title="analytics.notifications-sent")
    async def on_notification_sent(event: NotificationSentEvent) -> None:
        await handlers.record(topics.notifications_sent, event.model_dump(mode="json"))


def projected_topics(runtime_topics) -> dict[str, type]:
    """Every topic analytics projects, with the envelope model of its events (the replay reads the same)."""
    return {
        runtime_topics.submitted: SubmittedEvent,
        runtime_topics.routed: RoutedEvent,
        runtime_topics.status_changed: StatusChangedEvent,
        runtime_topics.engagement: EngagementEvent,
        runtime_topics.notifications_sent: NotificationSentEvent,
    }

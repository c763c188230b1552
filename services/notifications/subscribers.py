"""Every subscription of notifications, in one place."""

from services.notifications.handlers import NotificationHandlers
from shared.events import RoutedEvent, SubmittedEvent
from shared.kafka import subscribe
from shared.service import Runtime


def register(runtime: Runtime, handlers: NotificationHandlers) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    @subscribe(
        runtime.broker,
        group,
        topics.submitted,
        title="notifications.submitted",
        description="Remembers how to reach the submitter of each idea",
    )
    async def on_submitted(event: SubmittedEvent) -> None:
        await handlers.submitted(event)

    @subscribe(
        runtime.broker,
        group,
        topics.routed,
        title="notifications.routed",
        description="Tells the submitter where their idea went",
    )
    async def on_routed(event: RoutedEvent) -> None:
        await handlers.routed(event)

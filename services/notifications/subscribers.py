"""Every subscription of notifications, in one place."""

from services.notifications.handlers import NotificationHandlers
from shared.events import EngagementEvent, PreferencesChangedEvent, RoutedEvent, StatusChangedEvent, SubmittedEvent
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
        description="Remembers each idea and how to reach its submitter; releases events that overtook it",
    )
    async def on_submitted(event: SubmittedEvent) -> None:
        await handlers.submitted(event)

    @subscribe(
        runtime.broker,
        group,
        topics.routed,
        title="notifications.routed",
        description="Tells the submitter where their idea went, and the responsible officers and subscribers",
    )
    async def on_routed(event: RoutedEvent) -> None:
        await handlers.routed(event)

    @subscribe(
        runtime.broker,
        group,
        topics.status_changed,
        title="notifications.status-changed",
        description="Tells the submitter and the followers of every status change, with the officer's reason",
    )
    async def on_status_changed(event: StatusChangedEvent) -> None:
        await handlers.status_changed(event)

    @subscribe(
        runtime.broker,
        group,
        topics.engagement,
        title="notifications.engagement",
        description="Tells the followers of comments; supporters, commenters and followers follow the idea",
    )
    async def on_engagement(event: EngagementEvent) -> None:
        await handlers.engagement(event)

    @subscribe(
        runtime.broker,
        group,
        topics.preferences,
        title="notifications.preferences",
        description="Keeps everyone's preferences (rebuilt from this topic on a fresh Redis)",
    )
    async def on_preferences(event: PreferencesChangedEvent) -> None:
        await handlers.preferences_changed(event)

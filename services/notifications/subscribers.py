"""Every subscription of notifications, in one place: all in batches, one idea's (or person's) events in order."""

from services.notifications.handlers import NotificationHandlers
from shared.batch import subscribe_batch
from shared.events import (
    AssignedEvent,
    ChallengeOpenedEvent,
    EditedEvent,
    EngagementEvent,
    ErasureRequestedEvent,
    PreferencesChangedEvent,
    RoutedEvent,
    StatusChangedEvent,
    SubmittedEvent,
)
from shared.service import Runtime


def register(runtime: Runtime, handlers: NotificationHandlers) -> None:
    topics = runtime.topics

    subscribe_batch(
        runtime,
        topics.submitted,
        SubmittedEvent,
        title="notifications.submitted",
        description="Remembers each idea and how to reach its submitter; releases events that overtook it",
        each=handlers.submitted,
    )

    subscribe_batch(
        runtime,
        topics.routed,
        RoutedEvent,
        title="notifications.routed",
        description="Tells the submitter where their idea went, and the responsible officers and subscribers",
        each=handlers.routed,
    )

    subscribe_batch(
        runtime,
        topics.status_changed,
        StatusChangedEvent,
        title="notifications.status-changed",
        description="Tells the submitter and the followers of every status change, with the officer's reason",
        each=handlers.status_changed,
    )

    subscribe_batch(
        runtime,
        topics.engagement,
        EngagementEvent,
        title="notifications.engagement",
        description="Tells the followers of comments; supporters, commenters and followers follow the idea",
        each=handlers.engagement,
    )

    subscribe_batch(
        runtime,
        topics.edited,
        EditedEvent,
        title="notifications.edited",
        description="Keeps the submitter's corrected title for later news; tells nobody (the new routing is told)",
        each=handlers.edited,
    )

    subscribe_batch(
        runtime,
        topics.assignments,
        AssignedEvent,
        title="notifications.assignments",
        description="Tells the officer an idea was given to; their organisation's deadline warnings go to them",
        each=handlers.assigned,
    )

    subscribe_batch(
        runtime,
        topics.challenges,
        ChallengeOpenedEvent,
        title="notifications.challenges",
        description="Tells a challenge's audience that it opened (and, by a periodic check, a week before it closes)",
        each=handlers.challenge_opened,
    )

    subscribe_batch(
        runtime,
        topics.preferences,
        PreferencesChangedEvent,
        title="notifications.preferences",
        description="Keeps everyone's preferences (the rebuild reads them again from this topic)",
        each=handlers.preferences_changed,
    )

    subscribe_batch(
        runtime,
        topics.people_erasures,
        ErasureRequestedEvent,
        title="notifications.people-erasures",
        description="Forgets everything kept about a person who asked to be erased, and sends them nothing more",
        each=handlers.person_erased,
    )

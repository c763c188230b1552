"""Every subscription of intake, in one place: the raw Kafka door, and the topics intake follows to know each
idea's state and owners."""

from __future__ import annotations

import uuid

from faststream.kafka.annotations import KafkaMessage

from services.intake.errors import InvalidField
from services.intake.handlers import Intake
from services.intake.models import IdeaIn
from shared.batch import subscribe_batch
from shared.deadletter import PermanentError
from shared.events import EngagementEvent, RoutedEvent, StatusChangedEvent, SubmittedEvent
from shared.kafka import subscribe
from shared.service import Runtime


def register(runtime: Runtime, intake: Intake) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    @subscribe(
        runtime.broker,
        group,
        topics.intake_raw,
        title="intake.raw",
        description="The door for other front ends: the fields of POST /api/v1/ideas as JSON. Valid ideas "
        "are republished as IdeaSubmitted; invalid ones go to intake.raw.v1.dlq with the reason.",
    )
    async def on_raw(idea: IdeaIn, message: KafkaMessage) -> None:
        record = message.raw_message
        # The same record always yields the same idea, so a redelivery cannot create a second one.
        position = f"{record.topic}:{record.partition}:{record.offset}"
        idea_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kiruna-innovation:raw:{position}"))
        try:
            await intake.submit_from_topic(idea, idea_id)
        except InvalidField as exc:
            raise PermanentError(str(exc)) from exc

    subscribe_batch(runtime, topics.submitted, SubmittedEvent, title="intake.submitted", each=intake.on_submitted)
    subscribe_batch(
        runtime,
        topics.routed,
        RoutedEvent,
        title="intake.routed",
        description="Which organisations own each idea (officers act only on their own)",
        each=intake.on_routed,
    )
    subscribe_batch(
        runtime, topics.status_changed, StatusChangedEvent, title="intake.status-changed", each=intake.on_status_changed
    )
    subscribe_batch(runtime, topics.engagement, EngagementEvent, title="intake.engagement", each=intake.on_engagement)

"""Every subscription of intake, in one place: the raw Kafka door, the topics intake follows to know each idea's
state, owners, text, submitter and assignees and the challenges, and the people's erasures."""

from __future__ import annotations

import functools

from faststream.kafka.annotations import KafkaMessage

from services.intake.domain import ID_PREFIX, intake_id
from services.intake.errors import ChallengeClosed, InvalidField
from services.intake.following import follow, followed
from services.intake.handlers import Intake
from services.intake.models import IdeaIn
from services.intake.people import People
from shared.batch import subscribe_batch
from shared.deadletter import PermanentError
from shared.events import ErasureRequestedEvent
from shared.kafka import subscribe
from shared.service import Runtime


def register(runtime: Runtime, intake: Intake, people: People) -> None:
    topics = runtime.topics
    group = runtime.settings.group_id

    @subscribe(
        runtime.broker,
        group,
        topics.intake_raw,
        title="intake.raw",
        description="The door for other front ends: the fields of POST /api/v1/ideas as JSON (a named idea with "
        "its submitter's e-mail address). Valid ideas are republished as IdeaSubmitted, the submitter sealed; "
        "invalid ones go to intake.raw.v1.dlq with the reason.",
    )
    async def on_raw(idea: IdeaIn, message: KafkaMessage) -> None:
        record = message.raw_message
        # The same record always yields the same idea, so a redelivery cannot create a second one.
        position = f"{record.topic}:{record.partition}:{record.offset}"
        idea_id = intake_id(ID_PREFIX, "raw", position)
        try:
            await intake.submit_from_topic(idea, idea_id)
        except (InvalidField, ChallengeClosed) as exc:  # an unknown challenge, or one that closed
            raise PermanentError(str(exc)) from exc

    # What intake learns of each idea from the other services' events (the rebuild reads the same topics).
    described = {
        topics.submitted: ("intake.submitted", "Ideas submitted through any door, by any replica of intake"),
        topics.routed: ("intake.routed", "Which organisations own each idea (officers act only on their own)"),
        topics.status_changed: ("intake.status-changed", "Each idea's state, so that only allowed transitions pass"),
        topics.engagement: ("intake.engagement", "Who supports each idea (one support per person, by pseudonym)"),
        topics.edited: (
            "intake.edited",
            "Corrections by the submitter (the text the idea now has, for its edits and for similar ideas)",
        ),
        topics.assignments: ("intake.assignments", "Which officer has each idea, per organisation"),
        topics.challenges: ("intake.challenges", "Open challenges: which an idea may answer, and until when"),
    }
    each = functools.partial(follow, intake.store, intake.keyring)
    for topic, model in followed(topics).items():
        title, description = described[topic]
        subscribe_batch(runtime, topic, model, title=title, description=description, each=each)

    @subscribe(
        runtime.broker,
        group,
        topics.people_erasures,
        title="intake.people-erasures",
        description="A person asked to be forgotten: intake tombstones their data key in people.keys.v1 (what is "
        "sealed under it can no longer be read anywhere) and forgets its support markers and Idempotency-Keys.",
    )
    async def on_erasure(event: ErasureRequestedEvent) -> None:
        await people.forget(event)

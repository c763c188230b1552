"""Every topic of the platform, in one place, and their creation (``python -m shared.topics``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.events import (
    AssignedEvent,
    EditedEvent,
    EngagementEvent,
    Envelope,
    RoutedEvent,
    StatusChangedEvent,
    SubmittedEvent,
)
from shared.settings import KafkaSettings

FOREVER = "-1"
DAY_MS = 24 * 3600 * 1000
RAW_RETENTION_MS = 7 * DAY_MS
"""intake.raw.v1 is other front ends' input, written in the clear (names, addresses): intake turns each record into
a sealed event within seconds, so a week covers any outage of intake and no more."""
DEAD_LETTER_RETENTION_MS = 30 * DAY_MS
"""A dead letter holds the original bytes (of intake.raw.v1 too): a month for an operator to look and replay."""
SENT_RETENTION_MS = 90 * DAY_MS

# people.keys.v1: compacted, so a tombstone removes the person's wrapped key. The cleaner compacts a segment only
# once it is closed; a segment closes at the first write after it is PEOPLE_KEYS_SEGMENT_MS old, and intake writes
# (a tombstone of the key "-") every half of that, so a tombstoned key's record is gone within
# segment.ms + segment.ms / 2 + max.compaction.lag.ms + the cleaner's back-off (15 s by default): ~25 minutes.
PEOPLE_KEYS_SEGMENT_MS = 10 * 60 * 1000
PEOPLE_KEYS_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(PEOPLE_KEYS_SEGMENT_MS),
    "max.compaction.lag.ms": str(PEOPLE_KEYS_SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": str(DAY_MS),  # how long the tombstone itself stays (a reader mid-replay must see it)
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


class Topics:
    """Topic names, with the optional prefix of the settings applied."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.intake_raw = f"{prefix}intake.raw.v1"
        self.submitted = f"{prefix}ideas.submitted.v2"
        self.routed = f"{prefix}ideas.routed.v1"
        self.status_changed = f"{prefix}ideas.status-changed.v1"
        self.engagement = f"{prefix}ideas.engagement.v2"
        self.edited = f"{prefix}ideas.edited.v1"
        self.assignments = f"{prefix}ideas.assignments.v1"
        self.challenges = f"{prefix}challenges.v1"
        self.routing_commands = f"{prefix}routing.commands.v1"
        self.notifications_sent = f"{prefix}notifications.sent.v2"
        self.preferences = f"{prefix}notifications.preferences.v2"
        self.notifications_dlq = f"{prefix}notifications.dlq"
        self.people_keys = f"{prefix}people.keys.v1"
        self.people_erasures = f"{prefix}people.erasures.v1"
        # The .v1 topics whose events carried personal data in the clear: read only by python -m shared.migration
        self.submitted_v1 = f"{prefix}ideas.submitted.v1"
        self.engagement_v1 = f"{prefix}ideas.engagement.v1"
        self.notifications_sent_v1 = f"{prefix}notifications.sent.v1"
        self.preferences_v1 = f"{prefix}notifications.preferences.v1"

    def migrated(self) -> dict[str, str]:
        """Each .v1 topic with personal data in the clear, and the .v2 topic its events move to."""
        return {
            self.submitted_v1: self.submitted,
            self.engagement_v1: self.engagement,
            self.preferences_v1: self.preferences,
            self.notifications_sent_v1: self.notifications_sent,
        }

    def organisation(self, org_id: str) -> str:
        """The topic an organisation's own systems subscribe to."""
        return f"{self.prefix}org.{org_id}.ideas.v1"

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"

    @property
    def idea_topics(self) -> tuple[str, ...]:
        """Topics that record what happened to ideas: kept forever, Kafka is their system of record."""
        return (
            self.submitted,
            self.routed,
            self.status_changed,
            self.engagement,
            self.edited,
            self.assignments,
            self.challenges,
            self.routing_commands,
        )

    def idea_events(self) -> dict[str, type[Envelope[Any]]]:
        """The topics of what happens to an idea, with the event each carries: what every service that follows
        ideas (or rebuilds its state from them) reads."""
        return {
            self.submitted: SubmittedEvent,
            self.routed: RoutedEvent,
            self.status_changed: StatusChangedEvent,
            self.engagement: EngagementEvent,
            self.edited: EditedEvent,
            self.assignments: AssignedEvent,
        }

    def specs(self, settings: KafkaSettings, organisation_ids: tuple[str, ...]) -> list[TopicSpec]:
        """Every topic with its retention; the README's table "Topics and how long they keep what" says why."""
        isr = {"min.insync.replicas": str(settings.min_insync_replicas)}
        keep = {"retention.ms": FOREVER, **isr}
        recorded = [*self.idea_topics, *(self.organisation(org) for org in organisation_ids)]
        specs = [TopicSpec(name, settings.partitions, dict(keep)) for name in recorded]
        specs.append(TopicSpec(self.intake_raw, settings.partitions, {"retention.ms": str(RAW_RETENTION_MS), **isr}))
        specs.append(
            TopicSpec(self.notifications_sent, settings.partitions, {"retention.ms": str(SENT_RETENTION_MS), **isr})
        )
        # people's choices: the last of each person is what counts (compacted; a tombstone forgets them)
        specs.append(TopicSpec(self.preferences, settings.partitions, {**PEOPLE_KEYS_CONFIG, **isr}))
        specs.append(TopicSpec(self.people_keys, settings.partitions, {**PEOPLE_KEYS_CONFIG, **isr}))
        specs.append(TopicSpec(self.people_erasures, settings.partitions, dict(keep)))  # pseudonyms only
        consumed = (
            self.preferences,
            self.intake_raw,
            self.submitted,
            self.routed,
            self.status_changed,
            self.engagement,
            self.edited,
            self.assignments,
            self.challenges,
            self.routing_commands,
            self.notifications_sent,
            self.people_erasures,
        )
        dead = {"retention.ms": str(DEAD_LETTER_RETENTION_MS), **isr}
        specs += [TopicSpec(self.dlq(name), 1, dict(dead)) for name in consumed]
        specs.append(TopicSpec(f"{self.prefix}notifications.dlq", 1, dict(dead)))
        return specs


async def ensure_topics(settings: KafkaSettings, specs: list[TopicSpec], *, wait_s: float = 60.0) -> list[str]:
    """Create the topics that do not exist yet; leave existing ones as they are. Returns the created names."""
    import asyncio
    import time

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.kafka import client_options

    deadline = time.monotonic() + wait_s
    while True:
        admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [spec for spec in specs if spec.name not in existing]
            if missing:
                response = await admin.create_topics(
                    [
                        NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.config)
                        for s in missing
                    ],
                    timeout_ms=30_000,
                )
                failures = [
                    (t[0], t[1], t[2] if len(t) > 2 else "") for t in response.topic_errors if t[1] not in (0, 36)
                ]  # 36: TOPIC_ALREADY_EXISTS (a concurrent creator won, or the listing lagged behind)
                if failures:
                    raise RuntimeError(f"could not create topics: {failures}")
                return [t[0] for t in response.topic_errors if t[1] == 0]  # made by this call, no other
            return []
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)
        finally:
            await admin.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.topics [create|list]``: create every topic of the design (idempotent)."""
    import argparse
    import asyncio

    from shared.catalogue import load_catalogue
    from shared.settings import ServiceSettings

    parser = argparse.ArgumentParser(prog="python -m shared.topics", description=main.__doc__)
    parser.add_argument("command", choices=["create", "list"], nargs="?", default="create")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    catalogue = load_catalogue(settings.catalogue_path)
    specs = Topics(settings.kafka.topic_prefix).specs(settings.kafka, catalogue.organisation_ids)
    if args.command == "list":
        for spec in specs:
            print(f"{spec.name}\tpartitions={spec.partitions}\t{spec.config}")
        return 0
    created = asyncio.run(ensure_topics(settings.kafka, specs))
    print(
        f"topics: {len(specs)} declared, {len(created)} created, {len(specs) - len(created)} already there "
        f"(replication factor {settings.kafka.replication_factor}) on {settings.kafka.bootstrap_servers}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

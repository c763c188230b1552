"""``python -m shared.migration``: move a ``.v1`` history whose events carry people in the clear to the ``.v2``
topics, sealing every personal field under its person's data key as it copies (issue 13).

What it does, in order, saying so as it goes (a progress bar per topic on stderr, a summary on stdout):

1. creates the topics of the design that are missing (the .v2 ones, people.keys.v1, people.erasures.v1) and aligns
   the retention of existing ones with the design (intake.raw.v1 a week, dead letters a month);
2. copies every record of ideas.submitted.v1, ideas.engagement.v1, notifications.preferences.v1 and
   notifications.sent.v1 to its .v2 topic with the same event id, time, source and correlation id, sealed under
   the person's key (made, and recorded in people.keys.v1, on first need). Ideas and their engagement keep their
   Kafka key (the idea id), so each record lands on the same partition in the same order; preferences are keyed by
   the pseudonym now. An event already on the .v2 topic (by id) is not copied again: the command can be re-run;
3. with ``--groups-to-end``, sets every consumer group of the platform to the end of the .v2 topics, so that the
   services started afterwards do not handle the copied history again as news (run each service's rebuild first:
   their state is keyed by pseudonyms now);
4. with ``--delete-v1``, once every .v1 event is on its .v2 topic, deletes the .v1 topics and their dead-letter
   topics: until then Kafka still holds the people in the clear.

The services must be stopped while it runs (nothing may write to the .v1 topics meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    Contract,
    Envelope,
    IdeaEngagement,
    IdeaSubmitted,
    NotificationSent,
    PersonRef,
    PreferencesChanged,
)
from shared.events_v1 import (
    EngagementEventV1,
    NotificationSentEventV1,
    PreferencesChangedEventV1,
    SubmittedEventV1,
)
from shared.kafka import event_headers
from shared.keyring import Keyring
from shared.sealing import DataKey
from shared.settings import ServiceSettings
from shared.topics import Topics, TopicSpec

HISTORY_BEGINS = datetime(1970, 1, 1, tzinfo=UTC)
"""A key made by the migration counts from the beginning: everything the .v1 history holds of the person is theirs
(the export includes the notifications they were sent before the move; nobody had been erased before it)."""
PLATFORM_GROUPS = ("intake", "routing", "notifications", "analytics")
"""The services' consumer group ids (their <SERVICE>_GROUP_ID settings, by default their names)."""


@dataclass
class TopicReport:
    source: str
    target: str
    copied: int = 0
    already_there: int = 0
    unreadable: int = 0
    people: set[str] = field(default_factory=set)

    def line(self) -> str:
        return (
            f"{self.source} -> {self.target}: {self.copied} copied, {self.already_there} already there, "
            f"{self.unreadable} unreadable (dead letters when they came), {len(self.people)} people sealed"
        )


@dataclass
class MigrationReport:
    topics: list[TopicReport] = field(default_factory=list)
    keys_made: int = 0
    configs_aligned: list[str] = field(default_factory=list)
    groups_moved: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delete_asked: bool = False

    def describe(self) -> str:
        lines = ["migration .v1 -> .v2:"]
        lines += [f"  {t.line()}" for t in self.topics]
        people = set().union(*(t.people for t in self.topics)) if self.topics else set()
        lines.append(f"  people: {len(people)} (data keys made now: {self.keys_made})")
        lines.append(f"  topic settings aligned: {', '.join(self.configs_aligned) or 'none needed'}")
        if self.groups_moved:
            lines.append(f"  consumer groups set to the end of the .v2 topics: {', '.join(self.groups_moved)}")
        if self.deleted:
            lines.append(f"  deleted (held people in the clear): {', '.join(self.deleted)}")
        elif self.delete_asked:
            lines.append("  no .v1 topic is left")
        else:
            lines.append("  the .v1 topics are still there: re-run with --delete-v1 once the services run on .v2")
        return "\n".join(lines)


class Sealer:
    """Turns .v1 payloads into .v2 ones with the keyring, counting the keys it made."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.made = 0
        self._known: set[str] = set()

    async def _count(self, email: str) -> None:
        """Count a person whose key the move makes (they had none)."""
        name = self.keyring.pseudonym(email)
        if name not in self._known:
            self._known.add(name)
            if await self.keyring.current(name) is None:
                self.made += 1

    async def _key(self, email: str) -> DataKey:
        await self._count(email)
        return await self.keyring.key_for(email, since=HISTORY_BEGINS)

    async def person(
        self, email: str, name: str | None, organisation: str | None = None, unit: str | None = None
    ) -> tuple[PersonRef, DataKey]:
        await self._count(email)
        return await self.keyring.person_ref(email, name, organisation=organisation, unit=unit, since=HISTORY_BEGINS)

    async def submitted(self, old: Envelope[Any]) -> tuple[Contract, str | None]:
        data = old.data
        submitter = None
        if data.submitter is not None and data.submitter.email:
            submitter, _ = await self.person(
                data.submitter.email, data.submitter.name, data.submitter.organisation, data.submitter.unit
            )
        fields = data.model_dump(exclude={"submitter"})
        if data.submitter is not None and not data.submitter.email:
            fields["anonymous"] = True  # a name without an address could not be keyed: kept as nobody's
        return IdeaSubmitted.model_validate({**fields, "submitter": submitter}), (
            submitter.pseudonym if submitter else None
        )

    async def engagement(self, old: Envelope[Any]) -> tuple[Contract, str | None]:
        data = old.data
        ref, key = await self.person(data.person, None)
        text = key.seal(data.text) if data.text is not None else None
        payload = IdeaEngagement(idea_id=data.idea_id, kind=data.kind, person=ref, text=text)
        return payload, ref.pseudonym

    async def preferences(self, old: Envelope[Any]) -> tuple[Contract, str | None]:
        data = old.data
        key = await self._key(data.person)
        fields = data.model_dump(exclude={"person"})
        contact = key.seal_json({"email": data.person.strip().lower(), "name": None})
        return PreferencesChanged.model_validate({**fields, "person": key.pseudonym, "contact": contact}), (
            key.pseudonym
        )

    async def sent(self, old: Envelope[Any]) -> tuple[Contract, str | None]:
        data = old.data
        if data.channel == "webhook":
            recipient, person = f"webhook:{data.recipient}", None
        else:
            recipient = person = self.keyring.pseudonym(data.recipient)
        fields = data.model_dump(exclude={"recipient"})
        return NotificationSent.model_validate({**fields, "recipient": recipient}), person


async def migrate(
    settings: ServiceSettings,
    *,
    progress: bool = True,
    delete_v1: bool = False,
    groups_to_end: bool = False,
    group_ids: tuple[str, ...] = PLATFORM_GROUPS,
    organisation_ids: tuple[str, ...] | None = None,
) -> MigrationReport:
    from aiokafka import AIOKafkaProducer

    from shared.catalogue import load_catalogue
    from shared.kafka import client_options
    from shared.replay import read_batches
    from shared.service import redis_client
    from shared.topics import ensure_topics

    topics = Topics(settings.kafka.topic_prefix)
    if organisation_ids is None:
        organisation_ids = load_catalogue(settings.catalogue_path).organisation_ids
    specs = topics.specs(settings.kafka, organisation_ids)
    report = MigrationReport()
    await ensure_topics(settings.kafka, specs)
    report.configs_aligned = await align_configs(settings, specs)

    redis = redis_client(settings)
    keyring = Keyring.from_settings(redis, settings, topics.people_keys)
    await keyring.check()
    await keyring.restore()
    sealer = Sealer(keyring)
    plans: list[tuple[str, str, type[Envelope[Any]], Callable[[Envelope[Any]], Awaitable[tuple[Contract, Any]]]]] = [
        (topics.submitted_v1, topics.submitted, SubmittedEventV1, sealer.submitted),
        (topics.engagement_v1, topics.engagement, EngagementEventV1, sealer.engagement),
        (topics.preferences_v1, topics.preferences, PreferencesChangedEventV1, sealer.preferences),
        (topics.notifications_sent_v1, topics.notifications_sent, NotificationSentEventV1, sealer.sent),
    ]
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for source, target, model, convert in plans:
            there = await event_ids(settings, target)
            item = TopicReport(source, target)
            async for batch in read_batches(settings.kafka, [source], label=f"{source} -> {target}", progress=progress):
                sends = []
                for record in batch:
                    try:
                        old = model.parse(record.value or b"")
                    except ValueError:
                        item.unreadable += 1  # dead-lettered when it first came; copied as it was on the first
                        if not there:  # run, so that the offsets stay the same (not again on a re-run)
                            sends.append(await producer.send(target, value=record.value, key=record.key))
                        continue
                    if old.id in there:
                        item.already_there += 1
                        continue
                    payload, person = await convert(old)
                    if person:
                        item.people.add(person)
                    new = Envelope.wrap(
                        payload, source=old.source, event_id=old.id, correlation_id=old.correlationid, time=old.time
                    )
                    headers = [(k, v.encode()) for k, v in event_headers(new).items()]
                    sends.append(
                        await producer.send(target, value=new.to_bytes(), key=new.subject.encode(), headers=headers)
                    )
                    item.copied += 1
                if sends:
                    await asyncio.gather(*sends)
            report.topics.append(item)
        report.keys_made = sealer.made
    finally:
        await producer.stop()
        await keyring.close()
        await redis.aclose()
    if groups_to_end:
        report.groups_moved = await move_groups_to_end(settings, topics, group_ids)
    if delete_v1:
        report.delete_asked = True
        report.deleted = await delete_v1_topics(settings, topics, report)
    return report


async def event_ids(settings: ServiceSettings, topic: str) -> set[str]:
    """The CloudEvent ids already on ``topic`` (so a re-run copies nothing twice)."""
    import json

    from shared.replay import read_topics

    ids: set[str] = set()
    async for record in read_topics(settings.kafka, [topic], progress=False):
        try:
            ids.add(json.loads(record.value)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


async def align_configs(settings: ServiceSettings, specs: list[TopicSpec]) -> list[str]:
    """Bring existing topics' retention and clean-up to the design's (a topic made before keeps its own until
    told). Only the settings the design names are compared and set."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from shared.kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    changed = []
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
        described = await admin.describe_configs(resources)
        current: dict[str, dict[str, str]] = {}
        for response in described:
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                current[name] = {entry[0]: entry[1] for entry in entries}
        for spec in specs:
            have = current.get(spec.name, {})
            differing = {k: v for k, v in spec.config.items() if have.get(k) != v}
            if differing:
                await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, dict(spec.config))])
                changed.append(f"{spec.name} ({', '.join(f'{k}={v}' for k, v in differing.items())})")
    finally:
        await admin.close()
    return changed


async def move_groups_to_end(
    settings: ServiceSettings, topics: Topics, group_ids: tuple[str, ...] = PLATFORM_GROUPS
) -> list[str]:
    """Every subscription of the platform has its own consumer group, ``<service group>.<topic>``
    (shared/kafka.py). For each one that read a .v1 topic, start its .v2 counterpart at the end of the .v2 topic:
    what the .v1 group had read is what was copied, and the services' state was rebuilt from it."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import OffsetAndMetadata

    from shared.kafka import client_options
    from shared.replay import topic_partitions

    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        existing = {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    moved = []
    for group in group_ids:
        for old, new in topics.migrated().items():
            if f"{group}.{old}" not in existing:
                continue
            partitions = await topic_partitions(settings.kafka, [new])
            consumer = AIOKafkaConsumer(
                **client_options(settings.kafka), group_id=f"{group}.{new}", enable_auto_commit=False
            )
            await consumer.start()
            try:
                consumer.assign(partitions)
                ends = await consumer.end_offsets(partitions)
                await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items()})
                moved.append(f"{group}.{new}")
            finally:
                await consumer.stop()
    return moved


async def delete_v1_topics(settings: ServiceSettings, topics: Topics, report: MigrationReport) -> list[str]:
    """Delete the .v1 topics (and their dead letters) once every event of each is on its .v2 topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka import client_options

    missing = Counter()
    for item in report.topics:
        v1 = await event_ids(settings, item.source)
        v2 = await event_ids(settings, item.target)
        missing[item.source] = len(v1 - v2)
    if any(missing.values()):
        raise RuntimeError(f"not deleting the .v1 topics: events not yet on .v2: {dict(missing)}")
    names = [t for t in topics.migrated()] + [Topics.dlq(t) for t in topics.migrated()]
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    return doomed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.migration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--delete-v1", action="store_true", help="delete the .v1 topics once all is copied")
    parser.add_argument(
        "--groups-to-end", action="store_true", help="set the platform's consumer groups to the end of the .v2 topics"
    )
    parser.add_argument(
        "--group-ids",
        default=",".join(PLATFORM_GROUPS),
        help="the services' consumer group ids, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    print(
        f"migration: Kafka {settings.kafka.bootstrap_servers} (topic prefix '{settings.kafka.topic_prefix}'), "
        f"Redis {settings.redis_url} (keyring under '{settings.redis_prefix}:people')",
        file=sys.stderr,
    )
    try:
        report = asyncio.run(
            migrate(
                settings,
                progress=not args.no_progress,
                delete_v1=args.delete_v1,
                groups_to_end=args.groups_to_end,
                group_ids=tuple(g.strip() for g in args.group_ids.split(",") if g.strip()),
            )
        )
    except Exception as exc:  # one readable line, no traceback
        print(f"migration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

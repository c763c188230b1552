"""Route 1,000 ideas through notifications and count the mails: one per (event, recipient), never more.

    .venv/bin/python -m bench.notifications_mail_count [--ideas 1000] [--duplicates 0.1] [--seed 7]

Runs the notifications service in-process against the real Kafka and Redis (its own topic and key prefix, both
removed at the end) and a real SMTP server (aiosmtpd) on a free port. Ideas are routed to random organisations,
units and areas of the catalogue; some are anonymous, some are submitted by the very officers they are routed to
(one person in two groups), and a share of the routed events is published twice (a redelivery). Submitters are sealed
(.v2) under data keys of the service's own keyring, as intake seals them. It prints the mails received, the distinct
(event, recipient) pairs among them, and the pairs the recipient rules expect (recipients compared by pseudonym).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import threading
import time
import uuid
from collections import Counter

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from services.notifications import domain
from services.notifications.app import create_app
from services.notifications.settings import NotificationsSettings
from shared.catalogue import load_catalogue
from shared.events import AreaMatch, Envelope, IdeaRouted, IdeaSubmitted, RoutingTarget
from shared.kafka import client_options
from shared.keyring import Keyring
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics


class Counting:
    def __init__(self) -> None:
        self.mails: list[tuple[str, str, str]] = []  # (cause event id, recipient, Message-ID)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        headers = envelope.content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        fields = dict(line.split(": ", 1) for line in headers.replace("\r\n ", " ").split("\r\n") if ": " in line)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.mails.append((fields.get("X-Kiruna-Event", ""), rcpt.lower(), fields.get("Message-ID", "")))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Plan = tuple[str, str, tuple[RoutingTarget, ...], tuple[AreaMatch, ...], tuple[str, str] | None]
"""(idea id, title, organisations, areas, the submitter's (address, name) or None for an anonymous idea)"""


def ideas(count: int, seed: int) -> list[Plan]:
    catalogue = load_catalogue()
    rng = random.Random(seed)
    plans = []
    for number in range(count):
        idea_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        targets = []
        for org in rng.sample(catalogue.organisations, rng.choice([1, 1, 1, 2, 3])):
            unit = rng.choice([None, *(u.id for u in org.units)])
            targets.append(RoutingTarget(organisation=org.id, unit=unit))
        areas = tuple(AreaMatch(area=a.id) for a in rng.sample(catalogue.areas, rng.choice([0, 1, 1, 2])))
        roll = rng.random()
        if roll < 0.1:
            submitter = None  # anonymous
        elif roll < 0.2:
            submitter = (rng.choice(catalogue.officers).email.upper(), "Officer")  # the same person as the officer
        else:
            submitter = (f"person{number % 400}@kiruna.se", f"Person {number}")
        plans.append((idea_id, f"Idé {number}", tuple(targets), areas, submitter))
    return plans


async def events(plans: list[Plan], keyring: Keyring) -> list[tuple[Envelope, Envelope]]:
    """The submitted (submitter sealed under their data key, made by ``keyring`` as intake's would) and routed
    event of each idea."""
    pairs = []
    for idea_id, title, targets, areas, submitter in plans:
        person = None if submitter is None else (await keyring.person_ref(*submitter))[0]
        submitted = IdeaSubmitted(
            idea_id=idea_id, title=title, description="-", submitter=person, anonymous=person is None
        )
        routed = IdeaRouted(idea_id=idea_id, title=title, organisations=targets, areas=areas, reason="bench")
        pairs.append((Envelope.wrap(submitted, source="/bench"), Envelope.wrap(routed, source="/bench")))
    return pairs


def expected_pairs(pairs: list[tuple[Envelope, Envelope]], keyring: Keyring) -> set[tuple[str, str]]:
    """(routed event id, recipient's pseudonym) of every mail the recipient rules call for."""
    directory = domain.Directory.of(load_catalogue(), keyring.pseudonym)
    expected = set()
    for submitted, routed in pairs:
        submitter = submitted.data.submitter
        facts = domain.IdeaFacts(
            idea_id=submitted.subject, submitter=domain.Contact(person=submitter.pseudonym) if submitter else None
        )
        news = domain.News(
            kind="routed",
            cause_event_id=routed.id,
            idea_id=routed.subject,
            time=routed.time,
            title=routed.data.title,
            organisations=routed.data.organisations,
            areas=tuple(a.area for a in routed.data.areas),
        )
        for recipient in domain.routed_audience(facts, news, directory, subscribers=()).recipients:
            expected.add((routed.id, recipient.person))
    return expected


async def run(count: int, duplicates: float, seed: int) -> None:
    run_id = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(topic_prefix=f"bench{run_id}.", partitions=6)
    topics = Topics(kafka.topic_prefix)
    await ensure_topics(kafka, topics.specs(kafka, load_catalogue().organisation_ids))
    sink = Counting()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = NotificationsSettings(
        kafka=kafka,
        redis_prefix=f"bench{run_id}",
        group_id=f"bench-notifications-{run_id}",
        smtp_port=controller.port,
        delivery_concurrency=16,
        delivery_poll_s=0.05,
        deadline_check_interval_s=3600,
    )
    app = create_app(settings)
    keyring: Keyring = app.state.runtime.keyring
    plans = ideas(count, seed)
    started = time.monotonic()
    try:
        async with app.router.lifespan_context(app):
            pairs = await events(plans, keyring)
            rng = random.Random(seed + 1)
            twice = {routed.id for _, routed in pairs if rng.random() < duplicates}
            producer = AIOKafkaProducer(**client_options(kafka), acks="all", enable_idempotence=True, linger_ms=5)
            await producer.start()
            try:
                sends = []
                for submitted, routed in pairs:
                    sends.append(
                        await producer.send(topics.submitted, submitted.to_bytes(), key=submitted.subject.encode())
                    )
                    for _ in range(2 if routed.id in twice else 1):
                        sends.append(await producer.send(topics.routed, routed.to_bytes(), key=routed.subject.encode()))
                await asyncio.gather(*sends)
            finally:
                await producer.stop()
            published = time.monotonic()
            expected = expected_pairs(pairs, keyring)
            last, stable_since = -1, time.monotonic()
            while time.monotonic() - stable_since < 3.0:  # until no mail has come for 3 s and the queue is empty
                await asyncio.sleep(0.5)
                pending = await app.state.queue.size()
                if len(sink.mails) != last or pending:
                    last, stable_since = len(sink.mails), time.monotonic()
                if time.monotonic() - published > 600:
                    break
            elapsed = time.monotonic() - started
    finally:
        controller.stop()
        redis = Redis.from_url(settings.redis_url)
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()
        admin = AIOKafkaAdminClient(**client_options(kafka))
        await admin.start()
        try:
            await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(kafka.topic_prefix)])
        finally:
            await admin.close()

    mails = len(sink.mails)
    distinct = {(event, keyring.pseudonym(rcpt)) for event, rcpt, _ in sink.mails}
    message_ids = Counter(mid for _, _, mid in sink.mails)
    print(f"ideas routed:                          {count} ({len(twice)} routed events published twice)")
    print(f"mails received by the SMTP server:     {mails}")
    print(f"distinct (event, recipient) pairs:     {len(distinct)}")
    print(f"pairs the recipient rules expect:      {len(expected)}")
    print(f"distinct Message-IDs:                  {len(message_ids)}")
    print(f"mails == distinct pairs == expected:   {mails == len(distinct) == len(expected) and distinct == expected}")
    print(f"time from first publish to last mail:  {elapsed:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ideas", type=int, default=1000)
    parser.add_argument("--duplicates", type=float, default=0.1, help="Share of routed events published twice")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.ideas, args.duplicates, args.seed))


if __name__ == "__main__":
    main()

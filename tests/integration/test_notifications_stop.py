"""Notifications stopped (SIGTERM's path) while a mail is being handed to the mail server: the delivery finishes —
sent, remembered and reported on notifications.sent — before the service is gone, instead of being cut off to come
back when its lease runs out (after a Redis rebuild meanwhile it would go out twice: make chaos, redis-flush)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest

from services.notifications.app import create_app
from tests.support.apps import running
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import MailBox, publish, routed, sealing, smtp_server

pytestmark = pytest.mark.kafka


class AcceptsOnceStopping(MailBox):
    """Holds each mail until told to accept it (the service is stopping by then), and says when one has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.began = threading.Event()
        self.accept = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        self.began.set()
        if not await asyncio.to_thread(self.accept.wait, 60):
            return "451 4.3.0 the test never said to accept"
        return await super().handle_DATA(server, session, envelope)


async def test_a_mail_being_sent_when_the_service_stops_is_finished_and_reported(settings_for, topics, kafka_settings):
    idea_id = str(uuid.uuid4())
    box = AcceptsOnceStopping()
    with smtp_server(handler=box) as mail:
        settings = settings_for(mail.port, delivery_concurrency=1)
        async with (
            sealing(settings) as people,
            raw_producer(kafka_settings) as producer,
            probe(kafka_settings, topics.notifications_sent) as sent,
        ):
            app = create_app(settings)

            async def accept_once_stopping() -> None:  # the mail is accepted only after the stop has begun
                await app.state.worker.stopping.wait()
                box.accept.set()

            async with running(app):
                await publish(producer, topics.submitted, await people.submitted(idea_id, "Bastu i källaren"))
                await publish(producer, topics.routed, routed(idea_id, "Bastu", [("kirunabostader", None)], []))
                await eventually(box.began.is_set, timeout=60)
                accepting = asyncio.create_task(accept_once_stopping())
            await accepting
            # stopped: the mail it was handing over went out, and its outcome is on Kafka

            def delivered() -> list[dict]:
                outcomes = [json.loads(r.value)["data"] for r in sent.records]
                return [o for o in outcomes if o["channel"] == "email" and o["outcome"] == "delivered"]

            await eventually(lambda: len(delivered()) >= 1, timeout=30)
    assert len(box.received) == len(delivered())  # each mail accepted was reported; none went out twice
    assert len({rcpt for rcpt, _ in box.received}) == len(box.received)

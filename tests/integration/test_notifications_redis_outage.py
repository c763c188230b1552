"""Redis dies (kill -9) at the moment the mail server accepts a mail, and comes back from its append-only file: the
mail is remembered as sent once Redis is back, and goes out once (make chaos, redis-kill: five mails went out a
second time when their lease ran out, 120 s later). Real Kafka, a real SMTP server, a redis-server of the test's
own with persistence."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid

import pytest

from services.notifications.app import create_app
from tests.support.apps import running
from tests.support.kafka import eventually, probe, raw_producer
from tests.support.notifications import JOHN, SARA, MailBox, publish, routed, sealing, smtp_server
from tests.support.redis_server import free_port, redis_server

pytestmark = pytest.mark.kafka


class KillingRedisOnFirstMail(MailBox):
    """Accepts every mail; the first one only after killing Redis (so the sender hears 250 while Redis is gone)."""

    def __init__(self) -> None:
        super().__init__()
        self.redis_pid: int | None = None
        self.killed = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        if not self.killed.is_set() and self.redis_pid is not None:
            os.kill(self.redis_pid, signal.SIGKILL)
            self.killed.set()
        return await super().handle_DATA(server, session, envelope)


def delivered_mails(records) -> list[dict]:
    outcomes = [json.loads(r.value)["data"] for r in records]
    return [o for o in outcomes if o["channel"] == "email" and o["outcome"] == "delivered"]


async def test_a_mail_accepted_while_redis_dies_is_remembered_when_it_is_back_and_sent_once(
    settings_for, topics, kafka_settings, tmp_path
):
    port = free_port()
    idea_id = str(uuid.uuid4())
    box = KillingRedisOnFirstMail()
    with smtp_server(handler=box) as mail:
        # a short lease: without the fix the delivery would come back (and go out again) within seconds
        settings = settings_for(mail.port, redis_url=f"redis://127.0.0.1:{port}/0", delivery_lease_s=2.0)
        async with redis_server(port, tmp_path) as first:
            box.redis_pid = first.pid
            app = create_app(settings)
            async with (
                running(app),
                sealing(settings) as people,
                raw_producer(kafka_settings) as producer,
                probe(kafka_settings, topics.notifications_sent) as sent,
            ):
                await publish(producer, topics.submitted, await people.submitted(idea_id, "Bastu i källaren"))
                await publish(producer, topics.routed, routed(idea_id, "Bastu", [("kirunabostader", None)], []))
                await eventually(box.killed.is_set, timeout=60)
                await first.wait()
                async with redis_server(port, tmp_path):  # back, with what it had acknowledged
                    await sent.wait_for(lambda rs: len(delivered_mails(rs)) >= 3, timeout=60)

                    async def settled() -> bool:  # nothing left that could come back and be sent again
                        return await app.state.queue.size() == 0

                    await eventually(settled, timeout=60)
    received = [rcpt for rcpt, _ in box.received]
    assert sorted(received) == sorted({*received}) and {SARA, JOHN} <= set(received) and len(received) == 3
    waits = app.state.runtime.metrics.dependency_waits.labels("notifications", "deliveries", "redis")._value.get()
    assert waits >= 1  # the mail accepted while Redis was gone waited for it to be remembered

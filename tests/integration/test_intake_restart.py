"""A restarted intake takes ideas as soon as its producer is connected, not once its consumers have joined their
groups: a process started again after kill -9 waits for the dead one's group sessions to expire (seconds), and
its front door answered 503 "not connected to Kafka yet" meanwhile (issue 15: ~7 s)."""

from __future__ import annotations

import asyncio

import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.support.apps import running
from tests.support.identity import ANNA, bearer
from tests.support.kafka import eventually

pytestmark = pytest.mark.kafka

IDEA = {"title": "Laddplatser vid stadshuset", "description": "Fler laddplatser för elbilar vid nya stadshuset."}


async def test_ideas_are_taken_while_the_consumers_still_join_their_groups(service_settings, topics):
    app = intake_app(service_settings(IntakeSettings, smtp_enabled=False))
    runtime = app.state.runtime
    joined = asyncio.Event()
    start_consumers = runtime.broker.start

    async def slow_group_join() -> None:  # as when the killed process's sessions have not expired yet
        await runtime.broker.connect()
        await joined.wait()
        await start_consumers()

    runtime.broker.start = slow_group_join
    async with running(app, wait_for_kafka=False) as intake:
        await eventually(runtime.kafka_writable.is_set, timeout=30)
        assert not runtime.kafka_connected.is_set()  # the consumers are still joining
        ready = await intake.get("/readyz")
        assert ready.status_code == 200, ready.text
        answer = await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))
        assert answer.status_code == 202, answer.text
        joined.set()
        await eventually(runtime.kafka_connected.is_set, timeout=30)

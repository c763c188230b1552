"""The broker stalls (SIGSTOP, as a long GC pause or a frozen VM does) while routing publishes: every idea is routed
exactly once, on ideas.routed.v1 and on the organisations' own topics, whose readers may not de-duplicate
(issue 15: after an 8 s stall 16 IdeaRouted went out twice, with the same event ids). The stall is shorter than
the consumers' session timeout, so no group rebalances; what is tested is the publishing. The probes read as an
organisation is told to (``read_committed``): a routing transaction that the stall made fail is aborted, and sent
again in a new one, so a reader of uncommitted records may see an aborted copy (test_routing_transactions.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from collections import Counter

import pytest

from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.events import Envelope, IdeaSubmitted
from tests.support.apps import running
from tests.support.kafka import eventually, group_done, probe, raw_producer

pytestmark = pytest.mark.kafka

STALL_S = 6.0


def broker_pid(bootstrap: str) -> int:
    """The pid of the process listening on the (first) bootstrap address."""
    port = bootstrap.split(",")[0].rsplit(":", 1)[1]
    listing = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"pid=(\d+)", listing)
    if found is None:
        pytest.skip(f"cannot see the broker's process on port {port} (not ours to stop)")
    return int(found.group(1))


def idea(n: int) -> Envelope:
    return Envelope.wrap(
        IdeaSubmitted(
            idea_id=f"57a11000-0000-4000-8000-{n:012d}",
            title=f"Fjärrvärme till badhuset {n}",
            description="Anslut det nya badhuset till fjärrvärmenätet.",
            anonymous=True,
        ),
        source="/tests/stall",
    )


async def test_a_broker_stall_routes_every_idea_once(service_settings, topics, kafka_settings):
    quick = kafka_settings.model_copy(update={"publish_timeout_s": 2.0})  # well inside the stall
    settings = service_settings(RoutingSettings, kafka=quick)
    ideas = [idea(n) for n in range(300)]
    pid = broker_pid(kafka_settings.bootstrap_servers)
    async with (
        running(routing_app(settings)),
        probe(kafka_settings, topics.routed) as routed,
        probe(kafka_settings, topics.organisation("tekniska-verken")) as energy,
        raw_producer(kafka_settings) as producer,
    ):

        async def submit_steadily() -> None:  # 50 ideas a second, before, during and after the stall
            sends = []
            for event in ideas:
                sends.append(await producer.send(topics.submitted, event.to_bytes(), key=event.subject.encode()))
                await asyncio.sleep(0.02)
            await asyncio.gather(*sends)

        submitting = asyncio.create_task(submit_steadily())
        await routed.wait_for(lambda rs: len(rs) >= 50, timeout=30)  # routing is busy publishing
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(STALL_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        await submitting
        wanted = {e.subject.encode() for e in ideas}
        await routed.wait_for(lambda rs: {r.key for r in rs} >= wanted, timeout=120)
        group = f"{settings.group_id}.{topics.submitted}"
        await eventually(lambda: group_done(kafka_settings, group, topics.submitted), timeout=60)
        await routed.wait_for(lambda rs: len(rs) >= len(wanted), timeout=10)
        ids = Counter(json.loads(r.value)["id"] for r in routed.records)
        assert [i for i, n in ids.items() if n > 1] == [], f"IdeaRouted written twice: {ids.most_common(3)}"
        energy_ids = Counter(json.loads(r.value)["id"] for r in energy.records)
        assert energy_ids and max(energy_ids.values()) == 1, energy_ids.most_common(3)

"""Graceful shutdown: routing as a real process, SIGTERM in the middle of a stream of ideas, restarted: every
idea is routed (by one event id each), nothing is lost, and the process is gone within SHUTDOWN_TIMEOUT_S.
On the way: the process runs at the CPU priority its settings give it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from shared.events import Envelope, IdeaSubmitted
from shared.kafka import event_headers
from tests.conftest import REDIS_URL
from tests.support.http_server import bind
from tests.support.kafka import eventually, probe, raw_producer

pytestmark = [pytest.mark.kafka, pytest.mark.ops]

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN_TIMEOUT_S = 10.0
TEXTS = [
    ("Fjärrvärme till badhuset", "Anslut badhuset till fjärrvärmenätet."),
    ("Snöröjning av cykelbanorna", "Ploga cykelbanorna först på morgonen."),
    ("Hyresgästernas tvättstugor", "Boka tvättstugan i appen, hyresgästerna vill det."),
    ("Digital skolskjuts", "Visa var skolbussen är i realtid för föräldrarna."),
]


def start_routing(kafka_settings, redis_prefix: str, group: str, port: int, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "KAFKA_PARTITIONS": str(kafka_settings.partitions),
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "ROUTING_GROUP_ID": group,
        "ROUTING_PORT": str(port),
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        "CONSUMER_LAG_INTERVAL_S": "60",
        "ROUTING_NICENESS": "3",
    }
    return asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.routing",
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
    )


async def ready(port: int, process) -> bool:
    if process.returncode is not None:
        raise AssertionError(f"routing exited with {process.returncode}")
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


async def test_sigterm_mid_stream_loses_nothing_and_exits_in_time(kafka_settings, topics, redis_prefix, tmp_path):
    group = f"routing-shutdown-{uuid.uuid4().hex[:8]}"
    sock = bind()
    port = sock.getsockname()[1]
    sock.close()
    log = tmp_path / "routing.log"
    ideas = [
        Envelope.wrap(
            IdeaSubmitted(idea_id=str(uuid.uuid4()), title=f"{title} {i}", description=text, anonymous=True),
            source="/tests",
        )
        for i, (title, text) in enumerate(TEXTS * 15)
    ]
    sent = {idea.subject for idea in ideas}

    async with probe(kafka_settings, topics.routed) as routed, raw_producer(kafka_settings) as producer:

        async def stream(batch: list[Envelope]) -> None:
            for idea in batch:
                headers = [(k, v.encode()) for k, v in event_headers(idea).items()]
                await producer.send_and_wait(
                    topics.submitted, idea.to_bytes(), key=idea.subject.encode(), headers=headers
                )
                await asyncio.sleep(0.02)

        first = await start_routing(kafka_settings, redis_prefix, group, port, log)
        try:
            await eventually(lambda: ready(port, first), timeout=60, interval=0.3)
            assert os.getpriority(os.PRIO_PROCESS, first.pid) == 3  # ROUTING_NICENESS
            streaming = asyncio.create_task(stream(ideas))
            await routed.wait_count(10, timeout=30)  # mid-stream: some routed, more arriving
            stopped_at = time.monotonic()
            first.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(first.wait(), timeout=SHUTDOWN_TIMEOUT_S + 5)
            took = time.monotonic() - stopped_at
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        routed_before = {r.key.decode() for r in routed.records}
        # uvicorn stops cleanly, then re-raises the SIGTERM it caught, so the process ends "killed by SIGTERM"
        assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]
        assert took < SHUTDOWN_TIMEOUT_S, f"took {took:.1f}s to stop"
        assert len(routed_before) < len(sent), "the stream ended before the stop: nothing was in flight"

        second = await start_routing(kafka_settings, redis_prefix, group, port, log)
        try:
            await streaming
            await routed.wait_for(lambda rs: sent <= {r.key.decode() for r in rs}, timeout=60)
        finally:
            streaming.cancel()
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), timeout=SHUTDOWN_TIMEOUT_S + 5)

    ids_by_idea: dict[str, set[str]] = defaultdict(set)
    for record in routed.records:
        ids_by_idea[record.key.decode()].add(json.loads(record.value)["id"])
    assert set(ids_by_idea) == sent  # every idea routed, none invented
    assert all(len(ids) == 1 for ids in ids_by_idea.values())  # each routed once: a repeat carries the same id
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == "stopped" for line in lines)

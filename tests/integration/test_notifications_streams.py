"""Live streams of notifications over real HTTP (uvicorn), with real tokens from Keycloak, the real Kafka and Redis:
hundreds of open streams share one Redis subscription and leave the connection pool to the handlers, each person
and the service have a cap on open streams (429 with Retry-After beyond it), and a stream resumes after
``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from services.notifications.app import create_app
from tests.support.http_server import serving
from tests.support.identity import ADMIN, ANNA, EMAIL, ERIK, INNOVATION_OFFICE, MARIA, PER, SARA, token
from tests.support.kafka import eventually, raw_producer
from tests.support.notifications import free_port, publish, routed, sealing

pytestmark = pytest.mark.kafka

USERS = (ANNA, PER, ERIK, MARIA, SARA, INNOVATION_OFFICE, ADMIN)
ANNAS = EMAIL[ANNA]


@dataclass
class Stream:
    """One open server-sent events stream, read from a raw socket."""

    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    seen: bytes = b""

    async def until(self, needle: bytes, timeout: float) -> bytes:
        """Read until ``needle`` has come (or fail after ``timeout`` seconds); everything read so far."""
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} did not come within {timeout}s; got {self.seen[-500:]!r}"
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout=left)
            assert chunk, f"the stream ended before {needle!r}; got {self.seen[-500:]!r}"
            self.seen += chunk
        return self.seen

    def close(self) -> None:
        self.writer.close()


async def open_stream(base_url: str, bearer: str, *, last_event_id: str | None = None) -> Stream:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    writer.write(
        (
            f"GET /api/v1/people/me/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {bearer}\r\n{extra}\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    return Stream(int(status_line.split()[1]), headers, reader, writer)


@contextlib.asynccontextmanager
async def streams_open(base_url: str, who: list[str]) -> AsyncIterator[list[Stream]]:
    opened = await asyncio.wait_for(asyncio.gather(*(open_stream(base_url, token(u)) for u in who)), timeout=60)
    try:
        yield opened
    finally:
        for stream in opened:
            stream.close()


def frames(raw: bytes) -> list[dict]:
    """The notifications in what a stream sent (its chunked framing ignored: every ``data:`` line is one item)."""
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]


async def test_300_open_streams_leave_redis_to_the_handlers(settings_for, topics, kafka_settings):
    settings = settings_for(free_port(), streams_per_person=60, streams_max=400)
    app = create_app(settings)
    for user in USERS:
        token(user)  # tokens fetched before the clock runs
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        anna = {"Authorization": f"Bearer {token(ANNA)}"}
        async with raw_producer(kafka_settings) as producer, sealing(settings) as people:
            # a first idea makes sure the consumers have their partitions before the clock runs
            warm = str(uuid.uuid4())
            await publish(producer, topics.submitted, await people.submitted(warm, "Uppvärmning", email=ANNAS))
            await publish(producer, topics.routed, routed(warm, "Uppvärmning", [("kirunabostader", None)], []))

            async def in_feed(idea_id: str):
                items = (await api.get("/api/v1/people/me/feed", headers=anna)).json()["items"]
                return [i for i in items if i["idea_id"] == idea_id]

            await eventually(lambda: in_feed(warm), timeout=30)

            who = [USERS[i % len(USERS)] for i in range(300)]
            async with streams_open(base_url, who) as streams:
                assert [s.status for s in streams] == [200] * 300, {s.status for s in streams}
                assert streams[0].headers["content-type"].startswith("text/event-stream")
                pool = app.state.runtime.redis.connection_pool
                assert len(pool._in_use_connections) < settings.redis_max_connections // 2, "streams hold the pool"

                started = time.monotonic()
                feed = await api.get("/api/v1/people/me/feed", headers=anna)
                feed_s = time.monotonic() - started
                assert feed.status_code == 200 and feed_s < 1.0

                idea_id = str(uuid.uuid4())
                submission = await people.submitted(idea_id, "Trehundra strömmar", email=ANNAS)
                await publish(producer, topics.submitted, submission)
                started = time.monotonic()
                await publish(
                    producer, topics.routed, routed(idea_id, "Trehundra strömmar", [("tekniska-verken", None)], [])
                )
                [item] = await eventually(lambda: in_feed(idea_id), timeout=10, interval=0.02)
                took = time.monotonic() - started
                assert took < 1.0, f"the notification took {took:.2f}s to reach the feed"
                # every one of Anna's open streams gets it too
                annas = [s for s, u in zip(streams, who, strict=True) if u == ANNA]
                await asyncio.gather(*(s.until(idea_id.encode(), timeout=5) for s in annas))
                assert all(item["notification_id"] in s.seen.decode() for s in annas)
                in_use = len(pool._in_use_connections)
                assert in_use < settings.redis_max_connections // 2
                print(
                    f"300 streams: feed read {feed_s:.3f}s, notification in the feed {took:.3f}s, pool in use {in_use}"
                )
            # no handler timed out waiting for Redis: none was retried, nothing was dead-lettered
            registry = app.state.runtime.metrics.registry
            for family in ("kiruna_handler_retries", "kiruna_dead_letters"):
                counted = [
                    s.value
                    for m in registry.collect()
                    if m.name == family
                    for s in m.samples
                    if s.name.endswith("_total")  # not the series' _created time (every series exists at 0 now)
                ]
                assert sum(counted) == 0, (family, counted)


async def test_streams_are_capped_per_person_and_in_all(settings_for):
    app = create_app(settings_for(free_port(), streams_per_person=2, streams_max=3))
    async with serving(app) as base_url:
        async with streams_open(base_url, [ANNA, ANNA]) as annas:
            assert [s.status for s in annas] == [200, 200]
            third = await open_stream(base_url, token(ANNA))
            assert third.status == 429 and int(third.headers["retry-after"]) >= 1
            body = await third.until(b"}", timeout=5)
            assert b"streams_per_person" in body or b"2 open streams" in body
            third.close()
            async with streams_open(base_url, [PER]) as pers:
                assert [s.status for s in pers] == [200]
                full = await open_stream(base_url, token(ERIK))
                assert full.status == 429 and int(full.headers["retry-after"]) >= 1
                full.close()
        # closed streams free their places (the server notices the disconnect)

        async def place_again():
            stream = await open_stream(base_url, token(ERIK))
            stream.close()
            return stream.status == 200

        await eventually(place_again, timeout=10)


async def test_a_stream_resumes_after_the_last_event_id(settings_for, topics, kafka_settings):
    settings = settings_for(free_port())
    app = create_app(settings)
    async with serving(app) as base_url, raw_producer(kafka_settings) as producer, sealing(settings) as people:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        store = app.state.handlers.store
        ideas = [str(uuid.uuid4()) for _ in range(3)]
        for n, idea_id in enumerate(ideas):
            await publish(producer, topics.submitted, await people.submitted(idea_id, f"Idé {n}", email=ANNAS))
            await publish(producer, topics.routed, routed(idea_id, f"Idé {n}", [("kirunabostader", None)], []))

        async def all_three():
            items = [i for i in await store.feed(people.pseudonym(ANNAS), 50) if i["idea_id"] in ideas]
            return items if len(items) == 3 else None

        newest_first = await eventually(all_three, timeout=30)
        oldest = newest_first[-1]
        stream = await open_stream(base_url, token(ANNA), last_event_id=oldest["notification_id"])
        assert stream.status == 200
        await stream.until(newest_first[0]["notification_id"].encode(), timeout=10)
        sent = [i["notification_id"] for i in frames(stream.seen)]
        assert sent == [newest_first[1]["notification_id"], newest_first[0]["notification_id"]]
        assert f"id: {newest_first[0]['notification_id']}".encode() in stream.seen
        stopping = time.monotonic()
    # the server stops with the stream still open: the stream is ended, and the stop does not wait for the client
    try:
        assert time.monotonic() - stopping < 5.0
        assert await asyncio.wait_for(stream.reader.read(), timeout=5) is not None  # read to the end: closed
        assert stream.reader.at_eof()
    finally:
        stream.close()

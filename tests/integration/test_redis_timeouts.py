"""A Redis that accepts connections and never answers (hung, half-dead network, a stopped process behind a live
socket) costs a bounded time, never a handler for ever: every client the services build has connect and socket
timeouts from the settings (``REDIS_CONNECT_TIMEOUT_S``, ``REDIS_SOCKET_TIMEOUT_S``), whatever redis-py's own
defaults are (none before redis-py 8)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.exceptions import TimeoutError as RedisTimeout

from services.routing.app import create_app as routing_app
from services.routing.classifier import Router
from services.routing.feedback import FeedbackMemory
from services.routing.handlers import RoutingHandlers
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore
from shared.catalogue import load_catalogue
from shared.events import Envelope, IdeaSubmitted
from shared.service import redis_client, redis_options
from shared.settings import KafkaSettings
from tests.conftest import REDIS_URL
from tests.fakes.common import FakePublisher

TIMEOUT_S = 0.5
"""The test's Redis timeouts; redis-py's default socket timeout (5 s in redis-py 8, none before) is far above."""
WITHIN_S = 3.5
"""A generous deadline for one timed-out call on a slow, busy machine; well below redis-py's defaults."""


@contextlib.asynccontextmanager
async def silent_redis() -> AsyncIterator[str]:
    """A TCP server that accepts every connection, reads nothing and answers nothing: its ``redis://`` URL."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # kept open, never written to

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        for writer in held:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=5)


def settings_for(url: str) -> RoutingSettings:
    return RoutingSettings(
        redis_url=url,
        redis_prefix=f"test{uuid.uuid4().hex[:10]}",
        redis_connect_timeout_s=TIMEOUT_S,
        redis_socket_timeout_s=TIMEOUT_S,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),  # readiness says "connecting"; nothing is consumed
    )


async def test_readiness_answers_503_within_seconds_when_redis_never_answers():
    async with silent_redis() as url:
        app = routing_app(settings_for(url))
        runtime = app.state.runtime
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing") as http:
                started = time.monotonic()
                answer = await asyncio.wait_for(http.get("/readyz"), timeout=30)
                took = time.monotonic() - started
        finally:
            await runtime.redis.aclose()
    assert answer.status_code == 503
    assert answer.json()["checks"]["redis"].startswith("unreachable")
    assert took < WITHIN_S, f"readiness took {took:.1f} s"


async def test_a_handlers_redis_call_raises_a_timeout_instead_of_hanging():
    submitted = Envelope.wrap(
        IdeaSubmitted(idea_id=str(uuid.uuid4()), title="Fjärrvärme", description="", anonymous=True), source="/t"
    )
    async with silent_redis() as url:
        settings = settings_for(url)
        app = routing_app(settings)
        runtime = app.state.runtime
        router = Router(load_catalogue())
        handlers = RoutingHandlers(
            FakePublisher(),
            lambda: router,
            RoutingStore(runtime.redis, settings.redis_prefix),
            FeedbackMemory(),
            topics=runtime.topics,
            metrics=runtime.metrics,
        )
        try:
            for _ in range(2):  # a fresh connection, and another one after the first was dropped
                started = time.monotonic()
                with pytest.raises(RedisTimeout):
                    await asyncio.wait_for(handlers.submitted(submitted), timeout=30)
                took = time.monotonic() - started
                assert took < WITHIN_S, f"the handler's Redis call took {took:.1f} s to fail"
        finally:
            await runtime.redis.aclose()


async def test_a_command_line_client_times_out_too_and_does_not_retry_for_a_minute():
    async with silent_redis() as url:
        redis = redis_client(settings_for(url))
        try:
            started = time.monotonic()
            with pytest.raises(RedisTimeout):
                await asyncio.wait_for(redis.set("kiruna:test:hung", 1), timeout=60)
            took = time.monotonic() - started
        finally:
            await redis.aclose()
    assert took < WITHIN_S, f"took {took:.1f} s"


def test_every_client_gets_the_timeouts_and_a_health_check():
    settings = RoutingSettings(redis_connect_timeout_s=1.5, redis_socket_timeout_s=4, redis_health_check_interval_s=20)
    options = redis_options(settings)
    assert options["socket_connect_timeout"] == 1.5
    assert options["socket_timeout"] == 4
    assert options["health_check_interval"] == 20
    # A subscription's reads wait for messages as long as they like; its connect still times out
    subscriber = redis_options(settings, blocking_reads=True)
    assert subscriber["socket_timeout"] is None and subscriber["socket_connect_timeout"] == 1.5
    defaults = RoutingSettings()
    assert (defaults.redis_connect_timeout_s, defaults.redis_socket_timeout_s) == (2.0, 5.0)


@pytest.mark.kafka
async def test_a_working_redis_is_used_as_before():
    settings = RoutingSettings(redis_url=REDIS_URL, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    app = routing_app(settings)
    runtime = app.state.runtime
    key = f"test{uuid.uuid4().hex[:10]}:probe"
    try:
        assert await runtime.redis.ping()
        await runtime.redis.set(key, "1", ex=60)
        assert await runtime.redis.get(key) == "1"
        standalone = redis_client(settings)
        try:
            assert await standalone.get(key) == "1"
        finally:
            await standalone.aclose()
    finally:
        await runtime.redis.delete(key)
        await runtime.redis.aclose()

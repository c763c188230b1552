"""What every service's HTTP side shares: the runtime it holds, broker start-up that survives Kafka being
down, and the operator endpoints ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared import http_problems
from shared.asyncapi import asyncapi_router
from shared.body_limit import BodyLimit
from shared.deadletter import DeadLetters
from shared.http_metrics import instrument
from shared.identity import identity_for
from shared.kafka import create_broker
from shared.keyring import Keyring
from shared.lag import LagMonitor
from shared.metrics import ServiceMetrics
from shared.operations import OpsSettings
from shared.rate_limits import Limiter, RateLimits
from shared.redis_pipelining import AutoPipelineRedis
from shared.security_headers import SecurityHeaders
from shared.settings import ServiceSettings, refuse_development_secrets
from shared.static import static_router
from shared.topics import Topics
from shared.tracing import install_tracing, tracer_provider
from shared.transactions import Transactions


def redis_options(settings: ServiceSettings, *, blocking_reads: bool = False) -> dict[str, Any]:
    """The options of every Redis client and pool of the services (``Redis.from_url(url, **redis_options(s))``):
    connect and socket timeouts from the settings, so that a hung Redis fails a command with a ``TimeoutError``
    instead of holding its handler for ever; TCP keepalive, and a PING before using a connection idle for
    ``REDIS_HEALTH_CHECK_INTERVAL_S``. No retries inside the client (redis-py's own client retries a timed-out
    command up to ten times): the command may have run (an INCR, an LPUSH), and the handler's own retries and
    dead-lettering decide what happens next.

    ``blocking_reads`` is for a pub/sub subscription's own client: its reads wait for messages as long as the
    caller asks (``get_message(timeout=...)``), so it has no socket timeout; connecting still times out."""
    return {
        "decode_responses": True,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": None if blocking_reads else settings.redis_socket_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": settings.redis_health_check_interval_s,
        "retry": Retry(NoBackoff(), 0),
    }


def redis_client(settings: ServiceSettings, *, blocking_reads: bool = False) -> Redis:
    """A Redis client of its own (command-line tools, a subscription) with :func:`redis_options`."""
    return Redis.from_url(settings.redis_url, **redis_options(settings, blocking_reads=blocking_reads))


@dataclass
class Runtime:
    """Everything a running service holds, built once by its factory from settings."""

    service: str
    settings: ServiceSettings
    broker: KafkaBroker
    redis: Redis
    metrics: ServiceMetrics
    topics: Topics
    logger: logging.Logger
    dead_letters: DeadLetters
    ops: OpsSettings = field(default_factory=OpsSettings)
    tracer: TracerProvider | None = None
    lag: LagMonitor | None = None
    kafka_connected: asyncio.Event = field(default_factory=asyncio.Event)
    kafka_writable: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the producer is connected: writes may go, even while the consumers still join their groups
    (a restarted process's consumers wait for the dead one's session to expire; its front door need not)."""
    keyring: Keyring | None = None
    transactions: Transactions | None = None
    """The transactional producer of a service whose handlers publish in Kafka transactions (routing): started
    beside the broker, closed after it (the batches in flight commit with it)."""

    @classmethod
    def create(cls, service: str, settings: ServiceSettings) -> Runtime:
        refuse_development_secrets(settings)  # in production: no built-in development secret (names the variable)
        metrics = ServiceMetrics.create(service)
        logger = logging.getLogger(service)
        ops = OpsSettings()
        tracer = tracer_provider(service, ops.otlp_endpoint)
        dead_letters = DeadLetters(
            service=service,
            attempts=settings.kafka.handler_attempts,
            backoff_s=settings.kafka.retry_backoff_s,
            metrics=metrics,
            logger=logger,
        )
        broker = create_broker(
            settings.kafka,
            service=service,
            registry=metrics.registry,
            dead_letters=dead_letters,
            logger=logger,
            tracer=tracer,
            exporting_spans=bool(ops.otlp_endpoint),
            graceful_timeout_s=ops.handlers_grace_s,
        )
        # A bounded pool that waits for a free connection (then fails as unavailable), rather than one that
        # raises at once under load and turns a burst into errors; concurrent commands share round trips.
        redis = AutoPipelineRedis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.redis_max_connections,
                timeout=settings.redis_pool_timeout_s,
                **redis_options(settings),
            )
        )
        topics = Topics(settings.kafka.topic_prefix)
        return cls(
            service=service,
            settings=settings,
            broker=broker,
            dead_letters=dead_letters,
            redis=redis,
            metrics=metrics,
            topics=topics,
            logger=logger,
            ops=ops,
            tracer=tracer,
            # people's data keys (crypto-shredding, shared/keyring.py): one keyring for the platform
            keyring=Keyring.from_settings(redis, settings, topics.people_keys, logger=logger),
        )

    def key(self, *parts: str) -> str:
        """A Redis key under the service's prefix."""
        return ":".join((self.settings.redis_prefix, *parts))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Connect to Kafka in the background (retrying while it is down), measure consumer lag, and stop
        cleanly at the end: no new messages, those in flight finished and committed, the producer flushed and
        closed, all within ``SHUTDOWN_TIMEOUT_S``."""
        await self._check_keyring()
        connector = asyncio.create_task(self._connect(), name=f"{self.service}-kafka-connect")
        self.lag = lag = LagMonitor(
            service=self.service,
            kafka=self.settings.kafka,
            broker=self.broker,
            gauge=self.metrics.consumer_lag,
            logger=self.logger,
        )
        lag_task = asyncio.create_task(
            lag.run(self.kafka_connected, self.ops.consumer_lag_interval_s), name=f"{self.service}-consumer-lag"
        )
        # every labelled counter an alert reads exists at 0 before the first scrape (shared/metrics.py)
        self.metrics.expect_topics(subscribed_topics(self.broker))
        readiness_task = asyncio.create_task(
            self._watch_readiness(self.ops.readiness_interval_s), name=f"{self.service}-readiness"
        )
        transactional = self.transactions.running() if self.transactions is not None else contextlib.nullcontext()
        started = time.monotonic()
        try:
            async with transactional:  # closed after the broker: the batches in flight commit with it
                try:
                    yield
                finally:
                    started = time.monotonic()
                    self.logger.info(
                        "stopping: finishing the messages in flight", extra={"timeout_s": self.ops.shutdown_timeout_s}
                    )
                    for task in (connector, lag_task, readiness_task):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    try:
                        await asyncio.wait_for(self.broker.stop(), timeout=self.ops.shutdown_timeout_s * 0.9)
                    except TimeoutError:
                        self.logger.error("kafka clients did not close in time; uncommitted messages will come again")
        finally:
            if self.keyring is not None:
                with contextlib.suppress(Exception):
                    await self.keyring.close()
            await self.redis.aclose()
            if self.tracer is not None:
                self.tracer.shutdown()  # exports the spans still buffered
            self.logger.info("stopped", extra={"stop_s": round(time.monotonic() - started, 3)})

    async def _check_keyring(self) -> None:
        """A key-encryption key other than the one the people's keys were wrapped with stops the start (naming
        PEOPLE_KEK); Redis away at start only defers the check to the first key used."""
        if self.keyring is None:
            return
        try:
            await self.keyring.check()
        except (RedisError, OSError) as exc:
            self.logger.warning(
                "redis not reachable: the key-encryption key is checked later", extra={"error": repr(exc)}
            )

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.broker.connect()  # the producer first: a front door may take writes from here on
                self.kafka_writable.set()
                await self.broker.start()
            except Exception as exc:  # Kafka not reachable yet: say so, and try again
                self.logger.warning(
                    "kafka not reachable, retrying",
                    extra={
                        "bootstrap_servers": self.settings.kafka.bootstrap_servers,
                        "error": repr(exc),
                        "retry_in_s": delay,
                    },
                )
                self.kafka_writable.clear()
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                self.kafka_connected.set()
                self.logger.info(
                    "connected to kafka", extra={"bootstrap_servers": self.settings.kafka.bootstrap_servers}
                )
                return

    async def check_ready(self) -> tuple[bool, dict[str, str]]:
        """Check the connections and set ``kiruna_service_ready`` from the answer."""
        checks = await self.readiness()
        ready = all(v == "ok" for v in checks.values())
        self.metrics.ready.labels(self.service).set(1 if ready else 0)
        return ready, checks

    async def _watch_readiness(self, interval_s: float) -> None:
        """The service measures its own readiness every ``READINESS_INTERVAL_S``, so the gauge says how it is
        even when nothing calls /readyz (a Compose health check or a Kubernetes probe may not, or not often)."""
        while True:
            try:
                await self.check_ready()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a check that fails is a service that is not ready
                self.metrics.ready.labels(self.service).set(0)
                self.logger.warning("readiness check failed", extra={"error": repr(exc)})
            await asyncio.sleep(interval_s)

    async def readiness(self) -> dict[str, str]:
        checks = {}
        if not self.kafka_writable.is_set():
            checks["kafka"] = "connecting"
        else:
            checks["kafka"] = "ok" if await self.broker.ping(timeout=2.0) else "unreachable"
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=2.0)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        return checks


def subscribed_topics(broker: KafkaBroker) -> list[str]:
    """The topics the broker's subscribers consume (names as on the records: with the topic prefix)."""
    names: dict[str, None] = {}
    for subscriber in broker.subscribers:
        for topic in getattr(subscriber, "topics", ()):
            names[getattr(topic, "name", topic)] = None
    return list(names)


def ops_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.service}

    @router.get("/readyz", summary="Readiness: connected to Kafka and Redis")
    async def readyz() -> JSONResponse:
        ready, checks = await runtime.check_ready()
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Text"}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.exposition), media_type=CONTENT_TYPE_LATEST)

    return router


def service_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    background: Sequence[Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = (),
) -> FastAPI:
    """A FastAPI app whose lifespan runs the broker (and ``background`` servers or tasks of the service,
    entered after it and left before it), with the operator endpoints mounted."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(), contextlib.AsyncExitStack() as stack:
            for start in background:
                await stack.enter_async_context(start())
            yield
            await identity.verifier.aclose()

    # /docs: Swagger UI from the installed package, under the pages' policy (shared/static.py); no ReDoc (a CDN)
    app = FastAPI(title=title, description=description, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(static_router())
    app.state.runtime = runtime
    # Who is acting: bearer tokens and the people's session, the same in every service (shared/identity.py)
    app.state.identity = identity = identity_for(runtime.settings)
    settings = runtime.settings
    # Writes and expensive queries per person or address (inside the session, which it reads): 429 above
    app.add_middleware(
        RateLimits,
        limiter=Limiter(runtime.redis, runtime.key("rate", runtime.service)),
        identity=identity,
        writes_per_minute=settings.rate_limit_per_minute,
        queries_per_minute=settings.rate_limit_queries_per_minute,
        logger=runtime.logger,
        pepper=settings.pseudonym_pepper.get_secret_value().encode(),
    )
    identity.install(app)
    http_problems.install(app)  # every refusal names its field; 503 with Retry-After (shared/http_problems.py)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # counted as received: chunked bodies too
    app.add_middleware(SecurityHeaders, production=runtime.settings.environment == "production")
    # The client's address and scheme from X-Forwarded-For/-Proto, only from TRUSTED_PROXIES (outermost; the
    # server does not do it: shared/runner.py), so the rate limits see the person's address, not the proxy's
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.include_router(ops_router(runtime))
    app.include_router(asyncapi_router(runtime.broker, service=runtime.service, title=title, description=description))
    # HTTP server, Redis and outgoing HTTP spans beside FastStream's, when spans are exported (shared/tracing.py);
    # before the HTTP metrics, which wrap the stack it expects to find
    install_tracing(app, runtime.tracer, redis=runtime.redis, exporting=bool(runtime.ops.otlp_endpoint))
    instrument(app, service=runtime.service, registry=runtime.metrics.registry)
    return app

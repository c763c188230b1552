"""The four services as real processes (``python -m services.<name>``) on free ports, on their own topic prefix,
consumer groups and Redis key prefix, with every rate limit raised out of the fuzzers' way."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.catalogue import load_catalogue
from shared.settings import KafkaSettings, ServiceSettings
from shared.topics import Topics, ensure_topics

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICES = ("intake", "routing", "notifications", "analytics")
HIGH = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_classes() -> dict[str, type]:
    from services.analytics.settings import AnalyticsSettings
    from services.intake.settings import IntakeSettings
    from services.notifications.settings import NotificationsSettings
    from services.routing.settings import RoutingSettings

    return {
        "intake": IntakeSettings,
        "routing": RoutingSettings,
        "notifications": NotificationsSettings,
        "analytics": AnalyticsSettings,
    }


def raised_limits() -> dict[str, str]:
    """Every rate-limit setting any service declares (``*rate_limit*`` integers, under the service's prefix or its
    alias), set very high. Read from the settings classes, so limits added later are raised too, and no unknown
    ``<SERVICE>_`` variable is ever set (a service refuses to start on one)."""
    limits = {"RATE_LIMIT_WRITES_PER_MINUTE": str(HIGH), "RATE_LIMIT_PER_MINUTE": str(HIGH)}
    for cls in settings_classes().values():
        prefix = cls.model_config.get("env_prefix", "")
        for name, info in cls.model_fields.items():
            if "rate_limit" in name and info.annotation in (int, float):
                alias = info.validation_alias if isinstance(info.validation_alias, str) else None
                limits[alias or f"{prefix}{name}".upper()] = str(HIGH)
    return limits


@dataclass
class Platform:
    prefix: str
    urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: Path = ROOT / "var" / "fuzz"

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=BOOTSTRAP, topic_prefix=self.prefix, partitions=1)

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    @property
    def redis_prefix(self) -> str:
        return f"fuzz-{self.prefix}"

    @property
    def settings(self) -> ServiceSettings:
        """What the services share (Kafka, Redis, the people's secrets from this environment, as the services get
        them): for writing events as another system would, people sealed with the platform's keyring."""
        return ServiceSettings(kafka=self.kafka, redis_url=REDIS_URL, redis_prefix=self.redis_prefix)

    def environment(self) -> dict[str, str]:
        ports = {name: free_port() for name in SERVICES}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(f"{s.upper()}_" for s in SERVICES))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP,
            KAFKA_TOPIC_PREFIX=self.prefix,
            KAFKA_PARTITIONS="1",
            REDIS_URL=REDIS_URL,
            REDIS_KEY_PREFIX=self.redis_prefix,
            LOG_LEVEL="WARNING",
            PUBLIC_BASE_URL=self.urls["analytics"],
            NOTIFICATIONS_PUBLIC_URL=self.urls["notifications"],
            ANALYTICS_INTAKE_URL=self.urls["intake"],
            INTAKE_SMTP_ENABLED="false",
            SMTP_PORT=str(free_port()),  # nobody listens: mail is retried, never sent anywhere
            SHUTDOWN_TIMEOUT_S="10",
            PYTHONUNBUFFERED="1",
        )
        for name in SERVICES:
            env[f"{name.upper()}_PORT"] = str(ports[name])
            env[f"{name.upper()}_GROUP_ID"] = f"{self.prefix}{name}"
        env.update(raised_limits())
        return env

    def start(self, timeout_s: float = 90.0) -> None:
        asyncio.run(
            ensure_topics(self.kafka, self.topics.specs(self.kafka, load_catalogue().organisation_ids), wait_s=60)
        )
        self.logs.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        for name in SERVICES:
            log = (self.logs / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        waiting = set(SERVICES)
        while waiting:
            for name in sorted(waiting):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited at start; see {self.logs / (name + '.log')}")
                if self.ready(name):
                    waiting.discard(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s:.0f}s: {', '.join(sorted(waiting))}")
            time.sleep(0.3)

    def ready(self, name: str) -> bool:
        try:
            return httpx.get(f"{self.urls[name]}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> dict[str, bool]:
        """Every service still running and ready."""
        return {name: self.processes[name].poll() is None and self.ready(name) for name in SERVICES}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(self._forget())

    async def _forget(self) -> None:
        """Delete this run's topics and Redis keys: leave the broker and Redis as we found them."""
        from aiokafka.admin import AIOKafkaAdminClient
        from redis.asyncio import Redis

        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            await admin.start()
            doomed = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
            for start in range(0, len(doomed), 100):
                await admin.delete_topics(doomed[start : start + 100], timeout_ms=30_000)
        except Exception as exc:
            print(f"fuzz: could not delete the topics {self.prefix}*: {exc!r}", file=sys.stderr)
        finally:
            await admin.close()
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in redis.scan_iter(match=f"{self.redis_prefix}*", count=1000)]
            for start in range(0, len(keys), 1000):
                await redis.delete(*keys[start : start + 1000])
        finally:
            await redis.aclose()


@contextlib.contextmanager
def running() -> Iterator[Platform]:
    platform = Platform(prefix=f"fuzz{uuid.uuid4().hex[:8]}.")
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()

"""What the benchmark runs on: Kafka and Redis (started if none answers), the bench's own topics, Redis keys and
consumer groups (all under one run prefix, deleted at the end), and the services as subprocesses whose resident
memory is read from ``/proc/<pid>/status``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from shared.catalogue import load_catalogue
from shared.kafka import client_options, subscriber_options
from shared.settings import KafkaSettings, ServiceSettings
from shared.topics import Topics, TopicSpec, ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NO_FLUSH = str(2**63 - 1)
SERVICES = ("intake", "routing", "notifications", "analytics")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and of its living descendants (uvicorn's worker processes, INTAKE_WORKERS)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += process_cpu_s(current) or 0.0
        pending.extend(children.get(current, ()))
    return total


def kafka_classpath() -> str:
    return subprocess.run(
        [str(ROOT / "deploy/kafka/kafka.sh"), "classpath"], check=True, capture_output=True, text=True
    ).stdout.strip()


class Infrastructure:
    """Use the Kafka and Redis that answer on 127.0.0.1, or start them (and stop them at the end)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def ensure(self) -> None:
        if not answers(9092):
            say("no Kafka on 127.0.0.1:9092: starting one (deploy/kafka/kafka.sh)")
            subprocess.run([str(ROOT / "deploy/kafka/kafka.sh"), "start"], check=True)
            self.started.append("kafka")
        if not answers(6379):
            say("no Redis on 127.0.0.1:6379: starting one (deploy/redis.sh)")
            subprocess.run([str(ROOT / "deploy/redis.sh"), "start"], check=True)
            self.started.append("redis")
        subprocess.run([str(ROOT / "deploy/kafka/kafka.sh"), "wait"], check=True)
        subprocess.run([str(ROOT / "deploy/redis.sh"), "wait"], check=True)

    def stop(self) -> None:
        for what in reversed(self.started):
            script = "deploy/kafka/kafka.sh" if what == "kafka" else "deploy/redis.sh"
            subprocess.run([str(ROOT / script), "stop"], check=False)


class Cluster:
    """The three-broker cluster of deploy/kafka/cluster.sh (SASL, replication 3): used if it answers, else started
    and stopped again at the end (its data kept under var/cluster)."""

    SCRIPT = ROOT / "deploy/kafka/cluster.sh"

    def __init__(self) -> None:
        self.started = False

    def ensure(self) -> dict[str, str]:
        """Start it unless it answers; return its superuser's KAFKA_* settings (``cluster.sh env``)."""
        if not answers(19092):
            say("no three-broker cluster on 127.0.0.1:19092: starting one (deploy/kafka/cluster.sh up)")
            subprocess.run([str(self.SCRIPT), "up"], check=True)
            self.started = True
        subprocess.run([str(self.SCRIPT), "wait"], check=True)
        printed = subprocess.run([str(self.SCRIPT), "env"], check=True, capture_output=True, text=True).stdout
        env: dict[str, str] = {}
        for line in printed.splitlines():
            for word in shlex.split(line.removeprefix("export ")):
                name, _, value = word.partition("=")
                env[name] = value
        return env

    @staticmethod
    def settings(env: dict[str, str]) -> KafkaSettings:
        found = {name.removeprefix("KAFKA_").lower(): value for name, value in env.items()}
        return KafkaSettings(**found, publish_timeout_s=30)  # a busy three-node cluster: the bench's own writes wait

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(self.SCRIPT), "down"], check=False)


@dataclass
class Space:
    """One isolated data space of the run: a topic prefix, a Redis key prefix and consumer group ids."""

    run: str
    name: str
    flush_messages: str | None = None

    @property
    def topic_prefix(self) -> str:
        return f"{self.run}.{self.name}."

    @property
    def redis_prefix(self) -> str:
        return f"{self.run}:{self.name}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def group_id(self, service: str) -> str:
        return f"{self.run}-{self.name}-{service}"

    def subscription_group(self, service: str, topic: str) -> str:
        return subscriber_options(self.group_id(service), topic)["group_id"]

    async def create_topics(self, kafka: KafkaSettings) -> None:
        settings = kafka.model_copy(update={"topic_prefix": self.topic_prefix})
        catalogue = load_catalogue(ServiceSettings().catalogue_path)
        specs = self.topics.specs(settings, catalogue.organisation_ids)
        if self.flush_messages:
            specs = [
                TopicSpec(s.name, s.partitions, {**s.config, "flush.messages": self.flush_messages}) for s in specs
            ]
        await ensure_topics(settings, specs)
        await wait_for_leaders(settings, [spec.name for spec in specs])


async def wait_for_leaders(kafka: KafkaSettings, topics: list[str], timeout_s: float = 60.0) -> None:
    """Until every partition of ``topics`` has a leader that every broker knows of (a cluster under load takes a
    few seconds after creating them; a producer meanwhile hears "not found" and "not leader")."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with admin_client(kafka) as admin:
            described = await admin.describe_topics(topics)
        waiting = [
            t["topic"]
            for t in described
            if t.get("error_code") or not t["partitions"] or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no leader after {timeout_s:.0f}s for the partitions of {', '.join(waiting[:5])}")
        await asyncio.sleep(0.5)


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen
    log: Path
    samples_mb: list[float] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self, field_name: str) -> float | None:
        """A memory figure of /proc/<pid>/status in MB (VmRSS: now; VmHWM: the peak so far)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def rss_mb(self) -> float | None:
        return self.status("VmRSS")

    def cpu_s(self) -> float:
        """CPU seconds the process (and its worker processes) used (user + system, /proc/<pid>/stat): the basis of
        CPU per event, which stays the same on a busy machine where rates do not."""
        return process_tree_cpu_s(self.pid)

    def peak_mb(self) -> float | None:
        return self.status("VmHWM")


@dataclass(frozen=True)
class ServiceCommand:
    """How to start a service: which tree, which interpreter, what extra environment."""

    root: Path = ROOT
    python: str = PYTHON
    env: tuple[tuple[str, str], ...] = ()


def replica_label(name: str, index: int) -> str:
    """``routing`` for the first replica, ``routing-2``, ``routing-3`` ... for the others."""
    return name if index == 0 else f"{name}-{index + 1}"


class Services:
    """The four services as subprocesses (``python -m services.<name>``) in one data space; each may run as several
    replicas in its consumer groups (``replicas``, as ``<SERVICE>_REPLICAS`` does for ``make run``)."""

    def __init__(
        self,
        space: Space,
        log_dir: Path,
        smtp_port: int,
        command: ServiceCommand | None = None,
        replicas: dict[str, int] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.command = command or ServiceCommand()
        self.extra_env = extra_env or {}
        self.space = space
        self.log_dir = log_dir
        self.smtp_port = smtp_port
        self.replicas = {name: max(1, (replicas or {}).get(name, 1)) for name in SERVICES}
        self.running: dict[str, ServiceProcess] = {}
        self.peaks_mb: dict[str, float] = {}
        self.rest_mb: dict[str, float] = {}
        self.ports = {replica_label(name, i): free_port() for name in SERVICES for i in range(self.replicas[name])}

    def labels(self, name: str) -> list[str]:
        """The running processes of one service (its replicas)."""
        return [replica_label(name, i) for i in range(self.replicas[name]) if replica_label(name, i) in self.running]

    def cpu_s(self, name: str) -> float:
        """CPU seconds used so far by every replica of ``name``."""
        return sum(self.running[label].cpu_s() for label in self.labels(name))

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_TOPIC_PREFIX": self.space.topic_prefix,
                "REDIS_KEY_PREFIX": self.space.redis_prefix,
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports['analytics']}",
                "INTAKE_RATE_LIMIT_PER_MINUTE": str(10**9),
                "INTAKE_SMTP_ENABLED": "false",
                "ANALYTICS_INTAKE_URL": f"http://127.0.0.1:{self.ports['intake']}",
                "NOTIFICATIONS_PUBLIC_URL": f"http://127.0.0.1:{self.ports['notifications']}",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(self.smtp_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name in SERVICES:
            env[f"{name.upper()}_PORT"] = str(self.ports[name])  # the first replica's: the others are told below
            env[f"{name.upper()}_GROUP_ID"] = self.space.group_id(name)
            env[f"{name.upper()}_HOST"] = "127.0.0.1"
        env.update(self.extra_env)  # another cluster (the scaling phase), a setting of one phase
        env.update(dict(self.command.env))
        return env

    def start(self, *names: str) -> None:
        """Start every replica of each service: one consumer group, each its own port (and routing its own
        instance name, so its own Kafka transactional id)."""
        base = self.environment()
        for name in names:
            for index in range(self.replicas[name]):
                label = replica_label(name, index)
                env = {**base, f"{name.upper()}_PORT": str(self.ports[label])}
                if name == "routing":
                    env["ROUTING_INSTANCE"] = f"bench-{index + 1}"
                log = self.log_dir / f"{self.space.name}-{label}.log"
                with log.open("ab") as out:
                    process = subprocess.Popen(
                        [self.command.python, "-m", f"services.{name}"],
                        cwd=self.command.root,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                self.running[label] = ServiceProcess(label, self.ports[label], process, log)

    async def wait_ready(self, *names: str, timeout_s: float = 90.0) -> None:
        from bench.httpload import ConnectionLost, HttpConnection

        for name in names:
            proc = self.running[name]
            deadline = time.monotonic() + timeout_s
            request = f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{proc.port}\r\n\r\n".encode()
            while True:
                if proc.process.poll() is not None:
                    tail = proc.log.read_text(errors="replace").splitlines()[-20:]
                    raise RuntimeError(f"{name} exited ({proc.process.returncode}); log:\n" + "\n".join(tail))
                with contextlib.suppress(OSError, ConnectionLost):
                    conn = await HttpConnection.open("127.0.0.1", proc.port)
                    try:
                        status, _ = await asyncio.wait_for(conn.request(request), 5)
                    finally:
                        conn.close()
                    if status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout_s:.0f}s (see {proc.log})")
                await asyncio.sleep(0.3)

    def record_rest(self) -> None:
        for name, proc in self.running.items():  # name: a replica's label
            rss = proc.rss_mb()
            if rss is not None:
                self.rest_mb[name] = max(self.rest_mb.get(name, 0.0), rss)

    def sample(self) -> None:
        for proc in self.running.values():
            if (rss := proc.rss_mb()) is not None:
                proc.samples_mb.append(rss)

    def stop(self, *names: str) -> None:
        names = names or tuple(self.running)
        for name in names:
            proc = self.running.get(name)
            if proc is None:
                continue
            if (peak := proc.peak_mb()) is not None:
                self.peaks_mb[name] = max(self.peaks_mb.get(name, 0.0), peak)
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for name in names:
            proc = self.running.pop(name, None)
            if proc is None:
                continue
            try:
                proc.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()


@contextlib.asynccontextmanager
async def admin_client(kafka: KafkaSettings):
    admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=30_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions_of(kafka: KafkaSettings, topics: list[str]) -> list[TopicPartition]:
    async with admin_client(kafka) as admin:
        described = await admin.describe_topics(topics)
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def end_offsets(kafka: KafkaSettings, topics: list[str]) -> dict[str, int]:
    """Sum of the end offsets of each topic (= records written: idempotent producers, no transactions)."""
    from aiokafka import AIOKafkaConsumer

    partitions = await partitions_of(kafka, topics) if topics else []
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        totals = dict.fromkeys(topics, 0)
        for tp, offset in (await consumer.end_offsets(partitions)).items() if partitions else ():
            totals[tp.topic] += offset
        return totals
    finally:
        await consumer.stop()


async def committed(admin: AIOKafkaAdminClient, groups: list[str]) -> int:
    """Sum of the committed offsets of the groups (all partitions start at 0 in the bench's topics)."""
    total = 0
    for group in groups:
        with contextlib.suppress(Exception):
            offsets = await admin.list_consumer_group_offsets(group)
            total += sum(meta.offset for meta in offsets.values() if meta.offset > 0)
    return total


async def cleanup(kafka: KafkaSettings, run: str, *, groups: bool = True) -> None:
    """Delete every topic, consumer group (unless ``groups`` is False: Kafka's group tool is run without SASL
    settings, so not against the cluster) and Redis key of this run."""
    async with admin_client(kafka) as admin:
        topics = [t for t in await admin.list_topics() if t.startswith(run)]
        for start in range(0, len(topics), 50):
            with contextlib.suppress(Exception):
                await admin.delete_topics(topics[start : start + 50], timeout_ms=30_000)
        found = [g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(run)] if groups else []
    if found:
        command = ["java", "-cp", kafka_classpath(), "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"]
        command += ["--bootstrap-server", kafka.bootstrap_servers, "--delete"]
        for group in found:
            command += ["--group", group]
        await asyncio.to_thread(subprocess.run, command, check=False, capture_output=True, timeout=120)
    redis = Redis.from_url(ServiceSettings().redis_url)
    try:
        batch = []
        async for key in redis.scan_iter(match=f"{run}:*", count=2000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.delete(*batch)
                batch = []
        if batch:
            await redis.delete(*batch)
    finally:
        await redis.aclose()
    say(f"deleted {len(topics)} topics, {len(found)} consumer groups and the Redis keys of {run}")

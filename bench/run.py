"""``make bench`` (``python -m bench.run``): how fast the whole platform is, against its ceiling.

Starts (or reuses) Kafka and Redis, runs the four services as subprocesses on the bench's own topics, Redis keys
and consumer groups (one prefix per run, deleted at the end), measures, and prints a table and, last, the line
``intake_ideas_per_s=… e2e_p99_ms=… routing_events_per_s=… routing_vs_raw=… rss_mb_max=…``.

Phases (see bench/README.md for what each figure means):

1. ceiling: Kafka's ProducerPerformance (with and without a flush per write) and ConsumerPerformance, and a
   minimal aiokafka consume-and-produce loop (batched, and one message at a time), same record size;
2. consumers: ``ideas.submitted.v2`` pre-filled with N events (their submitters sealed under data keys that the
   run's keyring made, as intake's would), then routing, notifications and analytics, one at a time with fresh
   groups, each timed while it works through the full topics;
3. intake: a fixed number of HTTP clients back to back (closed loop) against intake alone;
4. pipeline: all four services; a search for the highest sustained rate (upwards from a low one), then ideas
   offered at a fixed rate (open loop): latency from the 202 to the routed event, the first notification and
   the analytics projection.

Every duration can be set (flags or ``BENCH_*`` variables); ``--quick`` is a 3-4 minute run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench import ceiling
from bench.httpload import bench_tokens, closed_loop, encode_requests, open_loop, sample_ideas
from bench.pipeline import STAGES, Tracker
from bench.stack import (
    NO_FLUSH,
    PYTHON,
    ROOT,
    Cluster,
    Infrastructure,
    ServiceCommand,
    Services,
    Space,
    admin_client,
    cleanup,
    committed,
    end_offsets,
    free_port,
    say,
)
from bench.stats import fmt, latency_summary
from shared.events import Envelope, IdeaSubmitted, PersonRef
from shared.kafka import client_options, event_headers
from shared.keyring import Keyring
from shared.oidc import OidcSettings
from shared.sealing import DataKey
from shared.settings import KafkaSettings, ServiceSettings
from shared.topics import TopicSpec, ensure_topics

CONSUMED = {
    "intake": ("intake_raw", "submitted", "routed", "status_changed", "engagement", "people_erasures"),
    "routing": ("submitted", "routing_commands", "people_erasures"),
    "notifications": ("submitted", "routed", "status_changed", "engagement", "preferences", "people_erasures"),
    "analytics": ("submitted", "routed", "status_changed", "engagement", "notifications_sent", "people_erasures"),
}
SUSTAINED_P99_MS = 1000.0
CPU_TARGETS_US = {
    "routing_cpu_us_per_event": 250.0,
    "notifications_cpu_us_per_event": 400.0,
    "analytics_cpu_us_per_event": 200.0,
    "intake_cpu_us_per_idea": 500.0,
}
"""Issue 19's targets: CPU microseconds per consumed event, and per idea accepted by intake. Notifications' figure
includes building its e-mails and handing them to the bench's SMTP sink (the sink's own CPU is another process's)."""


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("BENCH_QUICK") == "1"
    preset = (
        {"warmup": 3, "duration": 10, "step": 8, "drain": 6000, "java": 150_000}
        if quick
        else {"warmup": 10, "duration": 30, "step": 30, "drain": 30_000, "java": 500_000}
    )
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short phases (3-4 minutes in all)")
    p.add_argument("--warmup", type=float, default=env_float("BENCH_WARMUP_S", preset["warmup"]), help="s")
    p.add_argument("--duration", type=float, default=env_float("BENCH_DURATION_S", preset["duration"]), help="s")
    p.add_argument(
        "--step-duration", type=float, default=env_float("BENCH_STEP_S", preset["step"]), help="s per searched rate"
    )
    p.add_argument("--concurrency", type=int, default=int(env_float("BENCH_CONCURRENCY", 32)), help="HTTP clients")
    p.add_argument("--rate", type=float, default=env_float("BENCH_RATE", 200), help="offered ideas/s, pipeline")
    p.add_argument("--max-steps", type=int, default=int(env_float("BENCH_MAX_STEPS", 5)), help="rate search steps")
    p.add_argument("--drain-events", type=int, default=int(env_float("BENCH_DRAIN_EVENTS", preset["drain"])))
    p.add_argument("--java-records", type=int, default=int(env_float("BENCH_JAVA_RECORDS", preset["java"])))
    p.add_argument(
        "--flush-messages",
        default=os.environ.get("BENCH_FLUSH_MESSAGES"),
        help="flush.messages of the services' bench topics (default: the broker's log.flush.interval.messages)",
    )
    p.add_argument(
        "--skip",
        default=os.environ.get("BENCH_SKIP", ""),
        help="phases to leave out: ceiling,consumers,intake,pipeline,search,scaling",
    )
    p.add_argument(
        "--scaling",
        action="store_true",
        default=os.environ.get("BENCH_SCALING") == "1",
        help="also run routing as 1, 2 and 3 replicas on the three-broker cluster (started if it does not answer; "
        "make bench does)",
    )
    p.add_argument(
        "--scaling-replicas",
        default=os.environ.get("BENCH_SCALING_REPLICAS", "1,2,3"),
        help="routing replicas tried on the three-broker cluster (phase scaling)",
    )
    p.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="routing, notifications or analytics as N processes in one consumer group in the consumers and "
        "pipeline phases (also ROUTING_REPLICAS=N ... as for make run; intake: --service-env INTAKE_WORKERS=N)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy each service under load (pip install '.[bench]')")
    p.add_argument("--keep", action="store_true", help="keep the run's topics, groups and Redis keys")
    p.add_argument(
        "--services-root",
        default=os.environ.get("BENCH_SERVICES_ROOT"),
        help="run the services from another tree (a patched copy) instead of this one",
    )
    p.add_argument(
        "--services-python", default=os.environ.get("BENCH_SERVICES_PYTHON"), help="interpreter of the services"
    )
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the services, e.g. LOG_LEVEL=WARNING (repeatable)",
    )
    args = p.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    replicas = {name: os.environ.get(f"{name.upper()}_REPLICAS") for name in ("routing", "notifications", "analytics")}
    for item in args.replicas:
        name, _, count = item.partition("=")
        if name not in replicas:
            p.error(f"--replicas {item}: SERVICE is routing, notifications or analytics (intake: INTAKE_WORKERS)")
        replicas[name] = count
    try:
        args.replicas = {name: int(count) for name, count in replicas.items() if count}
    except ValueError:
        p.error(f"--replicas / <SERVICE>_REPLICAS: a whole number of processes, not {replicas}")
    if any(count < 1 for count in args.replicas.values()):
        p.error("--replicas / <SERVICE>_REPLICAS: at least 1")
    args.scaling_replicas = [int(n) for n in str(args.scaling_replicas).split(",") if n.strip()]
    if not args.scaling_replicas or min(args.scaling_replicas) < 1:
        p.error("--scaling-replicas: a comma-separated list of numbers of at least 1, e.g. 1,2,3")
    return args


@dataclass(frozen=True)
class Drain:
    """A consumer's drain of full topics: events consumed per second and CPU microseconds per event (all its
    replicas' CPU between the first and the last sample that saw commits, over the events committed between)."""

    rate: float | None
    cpu_us: float | None
    events: int
    total: int
    window_s: float

    @classmethod
    def of(cls, samples: list[tuple[float, int, float]], total: int) -> Drain:
        """From the last sample before the first commit (the service started, its first batch being handled: its
        start-up's CPU left out, its first batch's counted) to the last sample."""
        before = [s for s in samples if s[1] == 0]
        started = [s for s in samples if s[1] > 0]
        window = before[-1:] + started
        if len(window) < 2 or window[-1][1] <= window[0][1]:
            return cls(None, None, started[-1][1] if started else 0, total, 0.0)
        (t0, c0, cpu0), (t1, c1, cpu1) = window[0], window[-1]
        return cls((c1 - c0) / (t1 - t0), 1e6 * (cpu1 - cpu0) / (c1 - c0), c1, total, t1 - t0)


@dataclass
class Report:
    rows: list[tuple[str, list[tuple[str, ...]]]] = field(default_factory=list)
    summary: dict[str, float | None] = field(default_factory=dict)

    def section(self, title: str, header: tuple[str, ...]) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = [header]
        self.rows.append((title, rows))
        return rows

    def render(self) -> str:
        out = []
        for title, rows in self.rows:
            out.append(f"\n== {title} ==")
            table = [r for r in rows if len(r) > 1]  # a row of one cell is a note under the table, not a row
            widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(max(len(r) for r in table))]
            for row in rows:
                if len(row) == 1:
                    out.append(row[0])
                    continue
                cells = [c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
                out.append("  ".join(cells).rstrip())
        return "\n".join(out)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kafka = KafkaSettings()
        self.redis_url = ServiceSettings().redis_url
        self.run = f"bench-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        self.log_dir = ROOT / "var" / "bench" / self.run
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.report = Report()
        self.peaks_mb: dict[str, float] = {}
        self.rest_mb: dict[str, float] = {}
        self.record_size = 0
        self.raw_rate: float | None = None
        self.raw_cpu_us: float | None = None
        self.deliveries: tuple[int, int] | None = None  # notifications' drain: reported deliveries, still queued
        self.mailsink: subprocess.Popen | None = None
        self.smtp_port = free_port()
        self.command = ServiceCommand(
            root=Path(args.services_root).resolve() if args.services_root else ROOT,
            python=args.services_python or PYTHON,
            env=tuple(tuple(item.split("=", 1)) for item in args.service_env),
        )

    def space(self, name: str) -> Space:
        return Space(self.run, name, self.args.flush_messages)

    # --- helpers ----------------------------------------------------------------------------------------

    def start_mailsink(self) -> None:
        log = (self.log_dir / "mailsink.log").open("ab")
        self.mailsink = subprocess.Popen(
            [PYTHON, "-m", "bench.mailsink", str(self.smtp_port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )

    def stop_mailsink(self) -> None:
        if self.mailsink and self.mailsink.poll() is None:
            self.mailsink.terminate()
            self.mailsink.wait(10)

    @contextlib.asynccontextmanager
    async def sampling(self, services: Services):
        async def loop() -> None:
            while True:
                services.sample()
                await asyncio.sleep(0.5)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def collect_memory(self, services: Services) -> None:
        for name, peak in services.peaks_mb.items():
            self.peaks_mb[name] = max(self.peaks_mb.get(name, 0.0), peak)
        for name, rest in services.rest_mb.items():
            self.rest_mb[name] = max(self.rest_mb.get(name, 0.0), rest)

    def profiler(self, pid: int, label: str, seconds: float) -> subprocess.Popen | None:
        if not self.args.profile:
            return None
        spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
        if spy is None:
            say("py-spy not found: pip install -e '.[bench]'")
            return None
        out = self.log_dir / f"profile-{label}.txt"
        command = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "-f", "raw", "-o", str(out)]
        return subprocess.Popen([*command, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def dead_letters(self, space: Space) -> int:
        async with admin_client(self.kafka) as admin:
            dlqs = [t for t in await admin.list_topics() if t.startswith(space.topic_prefix) and t.endswith(".dlq")]
        return sum((await end_offsets(self.kafka, dlqs)).values())

    # --- pre-fill ---------------------------------------------------------------------------------------

    async def data_keys(self, space: Space, people: set[str], kafka: KafkaSettings) -> dict[str, DataKey]:
        """Each person's data key in the space's keyring (made and recorded in its people.keys.v1, as intake makes
        them on a person's first idea), so that the services open the sealed submitters as they would intake's."""
        settings = ServiceSettings(
            kafka=kafka.model_copy(update={"topic_prefix": space.topic_prefix}),
            redis_url=self.redis_url,
            redis_prefix=space.redis_prefix,
        )
        redis = Redis.from_url(self.redis_url)
        keyring = Keyring.from_settings(redis, settings, space.topics.people_keys)
        keys: dict[str, DataKey] = {}
        try:
            ordered = sorted(people)
            for start in range(0, len(ordered), 100):
                chunk = ordered[start : start + 100]
                for email, key in zip(chunk, await asyncio.gather(*map(keyring.key_for, chunk)), strict=True):
                    keys[email] = key
        finally:
            await keyring.close()
            await redis.aclose()
        return keys

    async def prefill(self, space: Space, count: int, kafka: KafkaSettings | None = None) -> int:
        """``count`` IdeaSubmitted events as intake writes them (envelope, key, headers; the submitter sealed under
        their data key) on the space's ideas.submitted.v2; returns the mean size."""
        kafka = kafka or self.kafka
        bodies = sample_ideas()
        keys = await self.data_keys(space, {body["submitter"]["email"] for body in bodies}, kafka)
        producer = AIOKafkaProducer(
            **client_options(kafka), acks="all", enable_idempotence=True, linger_ms=20, max_batch_size=262144
        )
        await producer.start()
        size = 0
        try:
            pending = []
            for i in range(count):
                body = bodies[i % len(bodies)]
                person, key = body["submitter"], keys[body["submitter"]["email"]]
                idea_id = f"{secrets.token_hex(4)}-0000-4000-8000-{i:012d}"
                idea = IdeaSubmitted(
                    idea_id=idea_id,
                    title=body["title"],
                    description=body["description"],
                    submitter=PersonRef(
                        pseudonym=key.pseudonym,
                        sealed=key.seal_json({"name": person["name"], "email": person["email"]}),
                        organisation=person["organisation"],
                    ),
                )
                envelope = Envelope.wrap(idea, source="/bench/prefill")
                value = envelope.to_bytes()
                size += len(value)
                headers = [(k, v.encode()) for k, v in event_headers(envelope).items()]
                pending.append(
                    await producer.send(space.topics.submitted, value, key=idea_id.encode(), headers=headers)
                )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return round(size / count)

    # --- phases -----------------------------------------------------------------------------------------

    async def phase_ceiling(self, source_space: Space) -> None:
        args = self.args
        prefix = f"{self.run}.raw."
        flushed, unflushed = f"{prefix}java-flush1", f"{prefix}java-noflush"
        out_flushed, out_unflushed = f"{prefix}out-flush1", f"{prefix}out-noflush"
        broker_default = args.flush_messages
        specs = [
            TopicSpec(flushed, self.kafka.partitions, {"flush.messages": "1"}),
            TopicSpec(unflushed, self.kafka.partitions, {"flush.messages": NO_FLUSH}),
            TopicSpec(out_flushed, self.kafka.partitions, {"flush.messages": "1"}),
            TopicSpec(out_unflushed, self.kafka.partitions, {"flush.messages": NO_FLUSH}),
        ]
        await ensure_topics(self.kafka, specs)
        rows = self.report.section(
            f"ceiling: same broker, {self.record_size} B records, acks=all, idempotent producer",
            ("what", "records/s", "MB/s", "p99 ms"),
        )
        say("ceiling: Kafka ProducerPerformance (flush per write, then none)")
        loop = asyncio.get_running_loop()
        for topic, label in ((flushed, "flush.messages=1"), (unflushed, "no flush per write")):
            r = await loop.run_in_executor(
                None, ceiling.java_producer, self.kafka, topic, args.java_records, self.record_size
            )
            rows.append(
                (f"Kafka ProducerPerformance, {label}", fmt(r.records_per_s), fmt(r.mb_per_s, 1), fmt(r.p99_ms))
            )
        say("ceiling: Kafka ConsumerPerformance")
        r = await loop.run_in_executor(
            None, ceiling.java_consumer, self.kafka, flushed, args.java_records, f"{self.run}-raw-javaconsumer"
        )
        rows.append(("Kafka ConsumerPerformance", fmt(r.records_per_s), fmt(r.mb_per_s, 1), "-"))
        loops = [
            ("batched", True, out_flushed, "flush.messages=1"),
            ("batched", True, out_unflushed, "no flush per write"),
            ("per message", False, out_flushed, "flush.messages=1"),
        ]
        for shape, batched, target, label in loops:
            say(f"ceiling: aiokafka consume-and-produce loop, {shape}, {label}")
            result = await ceiling.raw_loop(
                self.kafka,
                flushed,
                target,
                f"{self.run}-raw-{shape.replace(' ', '')}-{target.rsplit('-', 1)[-1]}",
                batched=batched,
                warmup_s=min(args.warmup, 3),
                duration_s=args.duration,
            )
            what = f"Python aiokafka loop, {shape}{' (500/commit)' if batched else ' (ack+commit each)'}, {label}"
            rows.append((what, fmt(result.events_per_s), fmt(result.events_per_s * self.record_size / 1e6, 1), "-"))
            services_flush = "1" if broker_default in (None, "1") else broker_default
            if batched and (label == "flush.messages=1") == (services_flush == "1"):
                self.raw_rate = result.events_per_s
                self.raw_cpu_us = result.cpu_us_per_event
                self.report.summary["raw_cpu_us_per_event"] = result.cpu_us_per_event

    async def drain(
        self,
        space: Space,
        name: str,
        replicas: int = 1,
        kafka: KafkaSettings | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Drain:
        """Start ``name`` (``replicas`` processes in one group) on full topics and time it until it has consumed
        everything or ``--duration`` seconds passed since its first commit; its CPU is read at every sample."""
        args = self.args
        kafka = kafka or self.kafka
        consumed = [getattr(space.topics, attr) for attr in CONSUMED[name]]
        groups = [space.subscription_group(name, topic) for topic in consumed]
        total = sum((await end_offsets(kafka, consumed)).values())
        services = Services(
            space, self.log_dir, self.smtp_port, self.command, replicas={name: replicas}, extra_env=extra_env
        )
        say(f"consumers: {name} x{replicas} on {total} events")
        services.start(name)
        samples: list[tuple[float, int, float]] = []
        spy = None
        # Routing writes ideas.routed.v1 in transactions: each partition's last transaction leaves a commit marker
        # after its last record, an offset no consumer group ever commits past
        markers = kafka.partitions * sum(1 for topic in consumed if topic == space.topics.routed)
        queue = Redis.from_url(self.redis_url) if name == "notifications" else None
        sent_topic = [space.topics.notifications_sent]
        sent_before = (await end_offsets(kafka, sent_topic))[sent_topic[0]] if queue is not None else 0
        sent_last, sent_still_since = sent_before, time.monotonic()
        try:
            async with self.sampling(services), admin_client(kafka) as admin:
                deadline = time.monotonic() + args.duration + 120
                moved_at, last_done = time.monotonic(), -1
                while time.monotonic() < deadline:
                    done = await committed(admin, groups)
                    now = time.monotonic()
                    samples.append((now, done, services.cpu_s(name)))
                    if done != last_done:
                        moved_at, last_done = now, done
                    started = [s for s in samples if s[1] > 0]
                    if started and spy is None and replicas == 1:
                        spy = self.profiler(services.running[name].pid, name, min(args.duration, 20))
                    consumed_all = done >= total or (done >= total - markers and now - moved_at >= 2)
                    if consumed_all and queue is not None:
                        # notifications: until every e-mail of what it consumed is sent and reported
                        sent = (await end_offsets(kafka, sent_topic))[sent_topic[0]]
                        if sent != sent_last:
                            sent_last, sent_still_since = sent, now
                        waiting = await queue.zcard(f"{space.redis_prefix}:notifications:deliveries:due")
                        consumed_all = waiting == 0 and now - sent_still_since >= 2
                    if consumed_all or (started and now - started[0][0] >= args.duration):
                        break
                    for label in services.labels(name):
                        if services.running[label].process.poll() is not None:
                            raise RuntimeError(f"{label} exited; see {services.running[label].log}")
                    await asyncio.sleep(0.5)
            if queue is not None:
                sent_after = (await end_offsets(kafka, sent_topic))[sent_topic[0]]
                waiting = await queue.zcard(f"{space.redis_prefix}:notifications:deliveries:due")
                self.deliveries = (sent_after - sent_before, int(waiting))
        finally:
            if queue is not None:
                await queue.aclose()
            services.stop()
            if spy is not None:
                spy.wait(60)
            self.collect_memory(services)
        return Drain.of(samples, total)

    async def phase_consumers(self, space: Space) -> None:
        args = self.args
        rows = self.report.section(
            f"consumers draining full topics ({args.drain_events} ideas pre-filled), one at a time, fresh groups",
            ("service", "CPU us/event", "events/s", "vs raw loop", "events", "window s", "all consumed"),
        )
        if self.raw_cpu_us is not None:
            rows.append(("raw aiokafka loop (batched)", fmt(self.raw_cpu_us), fmt(self.raw_rate), "1.00", "", "", ""))
        for name in ("routing", "notifications", "analytics"):
            d = await self.drain(space, name, args.replicas.get(name, 1))
            if d.rate is None:
                rows.append((name, "-", "-", "-", "0", "-", "no"))
                continue
            vs = f"{d.rate / self.raw_rate:.2f}" if self.raw_rate else "-"
            markers = self.kafka.partitions if "routed" in CONSUMED[name] else 0  # commit markers (see drain)
            done = "yes" if d.events >= d.total - markers else f"{d.events}/{d.total}"
            rows.append((name, fmt(d.cpu_us), fmt(d.rate), vs, fmt(d.events), fmt(d.window_s, 1), done))
            self.report.summary[f"{name}_cpu_us_per_event"] = d.cpu_us
            if name == "routing":
                self.report.summary["routing_events_per_s"] = d.rate
                self.report.summary["routing_vs_raw"] = d.rate / self.raw_rate if self.raw_rate else None
        if self.deliveries is not None:
            reported, waiting = self.deliveries
            rows.append(
                (
                    f"notifications: deliveries reported in its window {reported} (e-mail and in-app), "
                    f"{waiting} e-mails still queued at its end",
                )
            )
        dlq = await self.dead_letters(space)
        rows.append(("dead letters written", "", fmt(dlq)))

    async def phase_scaling(self) -> None:
        """Routing as 1, 2 and 3 replicas in one consumer group on the three-broker cluster (deploy/kafka/cluster.sh,
        started if it does not answer and stopped again), each draining its own pre-filled topic."""
        args = self.args
        cluster = Cluster()
        env = cluster.ensure()
        kafka = cluster.settings(env)
        rows = self.report.section(
            f"routing replicas on the three-broker cluster (replication 3, min.insync 2, SASL; {args.drain_events} "
            f"ideas pre-filled per run, {kafka.partitions} partitions)",
            ("replicas", "events/s", "CPU us/event", "speed-up", "events", "window s", "all consumed"),
        )
        single: float | None = None
        try:
            for replicas in args.scaling_replicas:
                space = self.space(f"s{replicas}")
                await space.create_topics(kafka)
                say(f"scaling: pre-filling {space.topics.submitted} on the cluster with {args.drain_events} events")
                await self.prefill(space, args.drain_events, kafka)
                d = await self.drain(space, "routing", replicas, kafka=kafka, extra_env=env)
                if d.rate is None:
                    rows.append((str(replicas), "-", "-", "-", fmt(d.events), "-", "no"))
                    continue
                single = single or (d.rate if replicas == 1 else None)
                speedup = f"{d.rate / single:.2f}" if single else "-"
                done = "yes" if d.events >= d.total else f"{d.events}/{d.total}"
                window = fmt(d.window_s, 1)
                rows.append((str(replicas), fmt(d.rate), fmt(d.cpu_us), speedup, fmt(d.events), window, done))
                self.report.summary[f"routing_x{replicas}_events_per_s"] = d.rate
                self.report.summary[f"routing_x{replicas}_cpu_us_per_event"] = d.cpu_us
        finally:
            if not args.keep:
                with contextlib.suppress(Exception):
                    await cleanup(kafka, self.run, groups=False)
            cluster.stop()

    async def intake_alone(self, space: Space, requests_for, label: str, extra_env: dict[str, str] | None = None):
        """Intake alone under ``--concurrency`` clients back to back; its load and its CPU per accepted idea over
        the measured window (every worker's, with ``INTAKE_WORKERS``)."""
        args = self.args
        services = Services(space, self.log_dir, self.smtp_port, self.command, extra_env=extra_env)
        services.start("intake")
        try:
            await services.wait_ready("intake")
            await asyncio.sleep(2)
            services.record_rest()
            requests = requests_for(services.ports["intake"])
            say(f"intake ({label}): {args.concurrency} clients, {args.warmup:.0f}s warm-up + {args.duration:.0f}s")
            spy = None
            async with self.sampling(services):
                load = asyncio.create_task(
                    closed_loop(
                        "127.0.0.1",
                        services.ports["intake"],
                        requests,
                        concurrency=args.concurrency,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                    )
                )
                await asyncio.sleep(args.warmup)
                cpu_from = services.cpu_s("intake")
                if not extra_env:
                    spy = self.profiler(services.running["intake"].pid, "intake", min(args.duration, 20))
                result = await load
                cpu_used = services.cpu_s("intake") - cpu_from
            if spy is not None:
                spy.wait(60)
        finally:
            services.stop()
            self.collect_memory(services)
        cpu_us = 1e6 * cpu_used / result.accepted if result.accepted else None
        return result, cpu_us

    async def phase_intake(self, space: Space, requests_for, tokens: list[str]) -> None:
        args = self.args
        rows = self.report.section(
            f"intake alone: POST /api/v1/ideas, {args.concurrency} clients back to back (closed loop)",
            ("figure", "CPU us/idea", "accepted/s", "p50 ms", "p99 ms", "max ms", "refused", "errors"),
        )
        runs = [("202 Accepted", None)]
        if tokens:
            # Each client sends the same token every time: intake verifies it once (the RSA check) and remembers it
            # (OIDC_VERIFIED_CACHE_S). With the memory off every request pays the whole verification.
            runs.append(("202, every token verified anew", {"OIDC_VERIFIED_CACHE_S": "0"}))
        for label, extra_env in runs:
            result, cpu_us = await self.intake_alone(space, requests_for, label, extra_env)
            lat = latency_summary(result.latencies_s)
            rows.append(
                (
                    label,
                    fmt(cpu_us),
                    fmt(result.rate),
                    fmt(lat["p50_ms"], 1),
                    fmt(lat["p99_ms"], 1),
                    fmt(lat["max_ms"], 1),
                    fmt(result.refused),
                    fmt(result.errors),
                )
            )
            if extra_env is None:
                self.report.summary["intake_ideas_per_s"] = result.rate
                self.report.summary["intake_cpu_us_per_idea"] = cpu_us
            else:
                self.report.summary["intake_cpu_us_per_idea_token_verified"] = cpu_us
        if not tokens:
            rows.append(("(no tokens from the identity provider: the ideas were anonymous, no token verified)",))

    async def offered(self, tracker: Tracker, port: int, requests, rate: float, warmup: float, duration: float):
        tracker.reset()
        result = await open_loop(
            "127.0.0.1",
            port,
            requests,
            rate=rate,
            warmup_s=warmup,
            duration_s=duration,
            on_accepted=tracker.on_accepted,
        )
        waited = await tracker.wait_complete(timeout_s=max(10.0, duration))
        return result, tracker.latencies(), waited

    async def phase_pipeline(self, space: Space, requests_for) -> None:
        """The search for the highest sustained rate first (upwards from a low rate, so that an overloaded step
        comes last), then the fixed rate, each after the platform has gone quiet."""
        args = self.args
        services = Services(space, self.log_dir, self.smtp_port, self.command, replicas=args.replicas)
        services.start(*("intake", "routing", "notifications", "analytics"))
        tracker = Tracker(self.kafka, space, self.redis_url)
        try:
            await services.wait_ready(*services.running)
            await asyncio.sleep(3)
            services.record_rest()
            await tracker.start()
            requests = requests_for(services.ports["intake"])
            port = services.ports["intake"]
            async with self.sampling(services):
                if "search" not in args.skip:
                    await self.search(space, tracker, port, requests)
                await self.wait_quiet(space, timeout_s=180)
                say(f"pipeline: {args.rate:.0f} ideas/s offered, {args.warmup:.0f}s warm-up + {args.duration:.0f}s")
                result, lat, _ = await self.offered(tracker, port, requests, args.rate, args.warmup, args.duration)
                rows = self.report.section(
                    f"pipeline: {args.rate:.0f} ideas/s offered (open loop), latency from the 202",
                    ("stage", "p50 ms", "p99 ms", "max ms", "ideas", "missing"),
                )
                http = latency_summary(result.latencies_s)
                rows.append(
                    (
                        "202 Accepted (from the scheduled send)",
                        fmt(http["p50_ms"], 1),
                        fmt(http["p99_ms"], 1),
                        fmt(http["max_ms"], 1),
                        fmt(result.accepted),
                        fmt(result.refused + result.errors),
                    )
                )
                names = {
                    "routed": "-> ideas.routed.v1",
                    "notified": "-> notifications.sent.v2 (first)",
                    "projected": "-> analytics projection routed",
                }
                for stage in STAGES:
                    s = lat[stage]
                    rows.append(
                        (
                            names[stage],
                            fmt(s.p50_ms, 1),
                            fmt(s.p99_ms, 1),
                            fmt(s.max_ms, 1),
                            fmt(s.seen),
                            fmt(s.missing),
                        )
                    )
                self.report.summary["e2e_p99_ms"] = lat["routed"].p99_ms
            if result.refused or result.errors:
                answers = ", ".join(f"{status}: {n}" for status, n in sorted(result.statuses.items()) if status != 202)
                label = "not accepted: HTTP status: count; lost connections"
                rows.append((label, answers or "-", "", "", "", fmt(result.errors)))
            dlq = await self.dead_letters(space)
            rows.append(("dead letters written", fmt(dlq)))
        finally:
            with contextlib.suppress(Exception):
                await tracker.stop()
            services.stop()
            self.collect_memory(services)

    def sustained(self, rate: float, result, lat) -> tuple[bool, str]:
        if result.rate < 0.95 * rate:
            return False, f"intake accepted {result.rate:.0f}/s"
        for stage in STAGES:
            if lat[stage].missing:
                return False, f"{lat[stage].missing} not {stage} in time"
            if lat[stage].p99_ms > SUSTAINED_P99_MS:
                return False, f"{stage} p99 {lat[stage].p99_ms:.0f} ms"
        if result.late > 0.05 * result.accepted:
            return False, "load generator late"
        return True, "yes"

    async def wait_quiet(self, space: Space, timeout_s: float) -> bool:
        """Wait until every consumer group of the space has committed everything written to its topics and
        notifications has sent nothing for 3 s (its e-mail queue lives in Redis, not in a topic)."""
        topics = space.topics
        pairs = [(name, getattr(topics, attr)) for name, attrs in CONSUMED.items() for attr in attrs]
        groups = [space.subscription_group(name, topic) for name, topic in pairs]
        deadline = time.monotonic() + timeout_s
        last_sent, still_since = -1, time.monotonic()
        async with admin_client(self.kafka) as admin:
            while True:
                ends = await end_offsets(self.kafka, sorted({topic for _, topic in pairs}))
                target = sum(ends[topic] for _, topic in pairs)
                sent = ends[topics.notifications_sent]
                if sent != last_sent:
                    last_sent, still_since = sent, time.monotonic()
                caught_up = await committed(admin, groups) >= target
                if caught_up and time.monotonic() - still_since >= 3:
                    return True
                if time.monotonic() > deadline:
                    say(f"the platform is still busy after {timeout_s:.0f}s; going on")
                    return False
                await asyncio.sleep(1)

    async def search(self, space: Space, tracker: Tracker, port: int, requests) -> None:
        """Double the rate from rate/8 while it is sustained; then one bisection between the last good and the
        first bad rate (or halve once if the first fails)."""
        args = self.args
        rows = self.report.section(
            f"pipeline: highest sustained rate (each step {args.step_duration:.0f}s; sustained = >=95% accepted, "
            f"everything routed, notified and projected, every p99 < {SUSTAINED_P99_MS:.0f} ms)",
            ("offered/s", "accepted/s", "routed p99", "notified p99", "projected p99", "sustained"),
        )
        tried: dict[float, bool] = {}
        rate = max(10.0, round(args.rate / 8, -1) or 10.0)
        for _ in range(args.max_steps):
            await self.wait_quiet(space, timeout_s=180)
            say(f"pipeline search: {rate:.0f} ideas/s for {args.step_duration:.0f}s")
            result, lat, _ = await self.offered(tracker, port, requests, rate, 2.0, args.step_duration)
            ok, why = self.sustained(rate, result, lat)
            tried[rate] = ok
            rows.append(
                (
                    fmt(rate),
                    fmt(result.rate),
                    fmt(lat["routed"].p99_ms, 1),
                    fmt(lat["notified"].p99_ms, 1),
                    fmt(lat["projected"].p99_ms, 1),
                    why,
                )
            )
            passed = [r for r, good in tried.items() if good]
            failed = [r for r, good in tried.items() if not good]
            if not failed:
                rate *= 2
            elif not passed:
                rate = round(min(failed) / 2)
                if rate < 5 or len(failed) > 1:
                    break
            else:
                low, high = max(passed), min(failed)
                if high / low < 1.3 or len(failed) > 1:
                    break
                rate = round(math.sqrt(low * high))
        best = max((r for r, good in tried.items() if good), default=None)
        rows.append(("highest sustained", fmt(best)))
        self.report.summary["pipeline_max_ideas_per_s"] = best

    def memory_section(self) -> None:
        rows = self.report.section(
            "resident memory (VmRSS at rest after start; peak = VmHWM over the process's life, load included)",
            ("service", "at rest MB", "peak MB"),
        )
        for name in ("intake", "routing", "notifications", "analytics"):
            rows.append((name, fmt(self.rest_mb.get(name), 1), fmt(self.peaks_mb.get(name), 1)))
        self.report.summary["rss_mb_max"] = max(self.peaks_mb.values()) if self.peaks_mb else None

    # --- the whole run ----------------------------------------------------------------------------------

    async def main(self) -> None:
        args = self.args
        say(f"run {self.run}: logs under {self.log_dir}")
        self.start_mailsink()
        bodies = sample_ideas()
        try:
            drain = self.space("d")
            await drain.create_topics(self.kafka)
            await asyncio.sleep(2)  # let the new partitions' leaders settle before the pre-fill
            if "consumers" not in args.skip or "ceiling" not in args.skip:
                say(f"pre-filling {drain.topics.submitted} with {args.drain_events} events")
                self.record_size = await self.prefill(drain, args.drain_events)
            if "ceiling" not in args.skip:
                await self.phase_ceiling(drain)
            if "consumers" not in args.skip:
                await self.phase_consumers(drain)
            # Access tokens last 15 minutes in the local realm: enough for the HTTP phases of one run
            tokens = bench_tokens(OidcSettings().issuer_url) if {"intake", "pipeline"} - set(args.skip) else []
            if "intake" not in args.skip:
                intake = self.space("i")
                await intake.create_topics(self.kafka)
                await self.phase_intake(
                    intake, lambda port: encode_requests("127.0.0.1", port, "/api/v1/ideas", bodies, tokens), tokens
                )
            if "pipeline" not in args.skip:
                pipeline = self.space("p")
                await pipeline.create_topics(self.kafka)
                await self.phase_pipeline(
                    pipeline, lambda port: encode_requests("127.0.0.1", port, "/api/v1/ideas", bodies, tokens)
                )
            if args.scaling and "scaling" not in args.skip:
                await self.phase_scaling()
            self.memory_section()
        finally:
            self.stop_mailsink()
            if not args.keep:
                with contextlib.suppress(Exception):
                    await cleanup(self.kafka, self.run)
        self.print_report()

    def targets(self) -> str:
        """CPU per event against issue 19's targets."""
        lines = ["\n== CPU per event against the targets =="]
        for key, target in CPU_TARGETS_US.items():
            value = self.report.summary.get(key)
            verdict = "not measured" if value is None else ("met" if value <= target else "not met")
            shown = "-" if value is None else f"{value:.0f}"
            lines.append(f"{key:<34} {shown:>6} us  target <= {target:.0f} us  {verdict}")
        return "\n".join(lines)

    def print_report(self) -> None:
        args = self.args
        print(
            f"\nKiruna innovation platform benchmark {self.run} on {os.cpu_count()} cores "
            f"(shared with whatever else runs: figures are noisy); warm-up {args.warmup:.0f}s, "
            f"phases {args.duration:.0f}s, search steps {args.step_duration:.0f}s; "
            f"services' topics flush.messages={args.flush_messages or 'broker default'}"
        )
        if args.replicas:
            print("replicas: " + ", ".join(f"{name} x{count}" for name, count in sorted(args.replicas.items())))
        if self.command != ServiceCommand():
            print(f"services from {self.command.root} with {self.command.python}, extra env {dict(self.command.env)}")
        if args.profile:
            from bench.profiling import summarise

            for path in sorted(self.log_dir.glob("profile-*.txt")):
                print("\n" + summarise(path, 10, min(args.duration, 20)))
        print(self.report.render())
        (self.log_dir / "report.json").write_text(json.dumps(self.report.summary, indent=2))
        s = self.report.summary

        def v(key: str, digits: int = 0) -> str:
            value = s.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "nan"
            return f"{value:.{digits}f}"

        print(self.targets())
        cpu = " ".join(f"{key}={v(key)}" for key in CPU_TARGETS_US)
        print(
            f"\n{cpu} raw_cpu_us_per_event={v('raw_cpu_us_per_event')} "
            f"intake_ideas_per_s={v('intake_ideas_per_s')} e2e_p99_ms={v('e2e_p99_ms', 1)} "
            f"routing_events_per_s={v('routing_events_per_s')} routing_vs_raw={v('routing_vs_raw', 2)} "
            f"rss_mb_max={v('rss_mb_max')}"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    infrastructure = Infrastructure()
    infrastructure.ensure()
    try:
        asyncio.run(Bench(args).main())
    finally:
        infrastructure.stop()


if __name__ == "__main__":
    main()

"""The faults of issue 15, one function each: inject, hold for the fault's duration (the only sleeps of the suite:
"down for 3 s"), restore, and mark the moment of restoring (recovery is measured from it)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.stack import SERVICES, admin_client
from chaos.scene import Scene
from chaos.stack import Cluster, SingleKafka, rebuild
from chaos.waiting import until

Fault = Callable[[Scene], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    fault: Fault
    cluster: bool = False


async def down_for(
    scene: Scene, what: str, kill: Callable[[], Awaitable[None]], start: Callable[[], Awaitable[None]], seconds: float
) -> None:
    """Kill, stay down for the fault's duration, start again."""
    await kill()
    scene.progress(f"{what}, restarting in {seconds:.0f} s")
    await asyncio.sleep(seconds)
    await start()


def kill_service(name: str) -> Fault:
    async def fault(scene: Scene) -> None:
        down = scene.options.service_down_s
        await scene.platform.kill9(name)
        scene.progress(f"{name} killed (kill -9), restarting in {down:.0f} s")
        await asyncio.sleep(down)
        await scene.platform.restart(name)
        scene.restored(f"{name} restarted")

    return fault


async def kill_kafka(scene: Scene) -> None:
    kafka = scene.kafka
    assert isinstance(kafka, SingleKafka)
    before = scene.load.unavailable
    await down_for(scene, "Kafka killed (kill -9)", kafka.kill9, kafka.start, scene.options.kafka_down_s)
    scene.notes.append(f"503 answers while Kafka was down: {scene.load.unavailable - before}")
    scene.restored("Kafka restarted")


async def stall_kafka(scene: Scene) -> None:
    kafka = scene.kafka
    assert isinstance(kafka, SingleKafka)
    stall = scene.options.stall_s
    kafka.pause()
    scene.progress(f"Kafka stopped (SIGSTOP) for {stall:.0f} s, beyond the consumers' 10 s session timeout")
    try:
        await asyncio.sleep(stall)
    finally:
        kafka.resume()
    scene.restored("Kafka continued (SIGCONT)")


async def kill_redis(scene: Scene) -> None:
    redis = scene.redis
    await down_for(scene, "Redis killed (kill -9)", redis.kill9, redis.start, scene.options.redis_down_s)
    scene.restored("Redis restarted from its append-only file")


async def flush_redis(scene: Scene) -> None:
    """README, "Operating it": Redis lost; intake, routing and analytics rebuild while they run, notifications
    with notifications stopped."""
    platform = scene.platform
    platform.services.stop("notifications")
    scene.progress("notifications stopped; FLUSHALL")
    scene.redis.flushall()
    for service in ("intake", "routing", "analytics", "notifications"):
        scene.progress(f"Redis emptied; rebuilding {service}")
        seconds = await asyncio.to_thread(rebuild, platform, service)
        scene.notes.append(f"{service} rebuild: {seconds:.1f} s")
    await platform.restart("notifications")
    scene.restored("every service rebuilt, notifications restarted")


async def smtp_down(scene: Scene) -> None:
    sink = scene.sink

    async def start() -> None:
        sink.start()
        await sink.wait()

    await down_for(scene, "mail sink killed", sink.kill9, start, scene.options.smtp_down_s)
    scene.restored("mail sink back")


async def leaders(scene: Scene) -> Counter[int]:
    """Brokers by the number of partitions of the submitted topic they lead (the partitions intake writes)."""
    async with admin_client(scene.kafka_settings) as admin:
        [described] = await admin.describe_topics([scene.platform.space.topics.submitted])
    return Counter(p["leader"] for p in described["partitions"] if p["leader"] >= 0)


async def in_sync(scene: Scene, replicas: int) -> bool:
    async with admin_client(scene.kafka_settings) as admin:
        [described] = await admin.describe_topics([scene.platform.space.topics.submitted])
    return all(len(p["isr"]) >= replicas for p in described["partitions"])


async def cluster_failover(scene: Scene) -> None:
    """The leader of most written partitions killed and restarted; then two brokers at once, so that one remains
    and ``min.insync.replicas=2`` cannot be met: intake must answer 503, never 202."""
    cluster = scene.kafka
    assert isinstance(cluster, Cluster)
    down = scene.options.kafka_down_s
    [(leader, led)] = (await leaders(scene)).most_common(1)
    await cluster.kill9(leader)
    scene.notes.append(f"killed broker {leader}, leader of {led} of the submitted topic's partitions")
    scene.progress(f"broker {leader} (leader of {led} partitions) killed, restarting in {down:.0f} s")
    await asyncio.sleep(down)
    await cluster.up()
    scene.progress(f"broker {leader} restarted; waiting for its replicas to be in sync again")
    await until(
        lambda: in_sync(scene, 3), what="every partition of the submitted topic with 3 in-sync replicas", timeout_s=120
    )
    [(first, _)] = (await leaders(scene)).most_common(1)
    second = next(n for n in Cluster.NODES if n != first)
    before = scene.load.unavailable
    accepted_before = scene.load.accepted
    await cluster.kill9(first)
    await cluster.kill9(second)
    scene.progress(f"brokers {first} and {second} killed: one broker left, writes must be refused; {down:.0f} s")
    await asyncio.sleep(down)
    refused = scene.load.unavailable - before
    scene.notes.append(
        f"one broker left for {down:.0f} s: {refused} x 503, {scene.load.accepted - accepted_before} x 202 "
        "(answers to requests sent before the second kill may still be 202)"
    )
    await cluster.up()
    scene.restored(f"brokers {first} and {second} restarted")


SCENARIOS = (
    *(
        Scenario(f"kill-{name}", f"kill -9 of {name} under load, restarted after a few seconds", kill_service(name))
        for name in SERVICES
    ),
    Scenario("kill-kafka", "kill -9 of the single-node Kafka under load, restarted: 503 meanwhile", kill_kafka),
    Scenario("redis-kill", "kill -9 of Redis, restarted from its append-only file", kill_redis),
    Scenario("redis-flush", "Redis emptied (FLUSHALL), then every service's rebuild", flush_redis),
    Scenario("smtp-down", "the mail server down for a minute, then back", smtp_down),
    Scenario("kafka-stall", "Kafka stopped (SIGSTOP) beyond the session timeout, then continued", stall_kafka),
    Scenario("cluster-failover", "three brokers: the leader killed, then two at once", cluster_failover, cluster=True),
)

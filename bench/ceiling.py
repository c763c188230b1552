"""The ceiling on the same broker in the same run: Kafka's own producer and consumer performance tools (Java,
from the jars of deploy/kafka), and a minimal aiokafka consume-and-produce loop that does no work (Python)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.stack import kafka_classpath
from shared.kafka import client_options
from shared.settings import KafkaSettings


@dataclass
class JavaResult:
    records_per_s: float
    mb_per_s: float
    p99_ms: float | None = None
    line: str = ""


def java_producer(kafka: KafkaSettings, topic: str, records: int, size: int) -> JavaResult:
    """``ProducerPerformance`` with the services' producer settings: acks=all, idempotent."""
    command = [
        "java",
        "-Xmx512m",
        "-cp",
        kafka_classpath(),
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={kafka.bootstrap_servers}",
        "acks=all",
        "enable.idempotence=true",
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    line = [x for x in out.splitlines() if "records sent" in x][-1]
    rate = float(re.search(r"([\d.]+) records/sec", line).group(1))
    mb = float(re.search(r"\(([\d.]+) MB/sec\)", line).group(1))
    p99 = re.search(r"([\d.]+) ms 99th", line)
    return JavaResult(rate, mb, float(p99.group(1)) if p99 else None, line.strip())


def java_consumer(kafka: KafkaSettings, topic: str, records: int, group: str) -> JavaResult:
    """``ConsumerPerformance``: fetch rate (excluding the group join) of ``records`` records."""
    command = [
        "java",
        "-Xmx512m",
        "-cp",
        kafka_classpath(),
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        kafka.bootstrap_servers,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--group",
        group,
        "--timeout",
        "60000",
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    header, values = None, None
    for line in out.splitlines():
        if line.startswith("start.time"):
            header = [h.strip() for h in line.split(",")]
        elif header and line.strip():
            values = [v.strip() for v in line.split(",")]
    row = dict(zip(header or [], values or [], strict=False))
    return JavaResult(float(row["fetch.nMsg.sec"]), float(row["fetch.MB.sec"]), None, ", ".join(values or []))


@dataclass
class LoopResult:
    events_per_s: float
    events: int
    elapsed_s: float
    cpu_us_per_event: float | None = None
    """This process's CPU per record over the measured window (the loop runs alone in the bench's process)."""


async def raw_loop(
    kafka: KafkaSettings, source: str, target: str, group: str, *, batched: bool, warmup_s: float, duration_s: float
) -> LoopResult:
    """Consume ``source`` from the start and produce every record to ``target`` (acks=all, idempotent, like the
    services), committing offsets after the writes are acknowledged; no parsing, no work.

    ``batched``: ``getmany`` up to 500 records, send them all, wait for all acks, one commit per batch (what a
    Python consumer can reach). Otherwise one record at a time: await its ack, commit it (the shape of a
    FastStream subscriber with ``AckPolicy.NACK_ON_ERROR``)."""
    options = client_options(kafka)
    consumer = AIOKafkaConsumer(
        source, **options, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    count = total = 0
    first = last = measure_from = deadline = None
    cpu_from = cpu_to = None
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=2000, max_records=500 if batched else 1)
            if not batches:
                break  # the source is exhausted
            now = time.monotonic()
            if measure_from is None:
                first = now
                measure_from = now + warmup_s
                deadline = measure_from + duration_s
            if now >= deadline:
                break
            if cpu_from is None and now >= measure_from:
                cpu_from = time.process_time()
            if batched:
                futures = [
                    await producer.send(target, record.value, key=record.key)
                    for records in batches.values()
                    for record in records
                ]
                await asyncio.gather(*futures)
                await consumer.commit()
                n = len(futures)
            else:
                n = 0
                for tp, records in batches.items():
                    for record in records:
                        await producer.send_and_wait(target, record.value, key=record.key)
                        await consumer.commit({tp: record.offset + 1})
                        n += 1
            total += n
            last = time.monotonic()
            cpu_to = time.process_time()
            if now >= measure_from:
                count += n
    finally:
        await producer.stop()
        await consumer.stop()
    if count == 0 and first is not None and last is not None:
        # The whole source went by within the warm-up: report the whole run rather than nothing.
        elapsed = last - first
        return LoopResult(total / elapsed if elapsed else 0.0, total, elapsed)
    elapsed = time.monotonic() - measure_from if measure_from else 0.0
    cpu_us = 1e6 * (cpu_to - cpu_from) / count if cpu_from is not None and cpu_to is not None and count else None
    return LoopResult(count / elapsed if elapsed else 0.0, count, elapsed, cpu_us)

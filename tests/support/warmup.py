"""``python -m tests.support.warmup``: wait until a (fresh) broker serves consumer groups, so that the first tests do
not pay for the creation of its internal offsets topic and the election of a group coordinator."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def warm_up(bootstrap: str, timeout_s: float = 120.0) -> float:
    started = time.monotonic()
    topic = f"warmup.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"warm-up")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"{topic}.group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            await asyncio.wait_for(consumer.getone(), timeout=timeout_s)
            await consumer.commit()  # needs the group coordinator and the offsets topic
        finally:
            await consumer.stop()
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    return time.monotonic() - started


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # it retries loudly while the new topic propagates
    seconds = asyncio.run(warm_up(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")))
    print(f"kafka: serving consumer groups (warm-up took {seconds:.1f}s)", file=sys.stderr)

"""Automatic pipelining (shared/redis_pipelining.py) on the real Redis: commands issued together share one
round trip, every caller gets its own reply or its own error, and what must not wait behind others does not."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.redis_pipelining import AutoPipelineRedis
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.kafka  # needs the real Redis, which `make test` starts with Kafka


@pytest.fixture
async def redis(redis_prefix):
    client = AutoPipelineRedis(
        connection_pool=BlockingConnectionPool.from_url(REDIS_URL, decode_responses=True, max_connections=4)
    )
    yield client
    await client.aclose()


async def test_concurrent_commands_share_one_round_trip_and_each_gets_its_reply(redis, redis_prefix):
    keys = [f"{redis_prefix}:n:{i}" for i in range(200)]
    await asyncio.gather(*(redis.set(key, i) for i, key in enumerate(keys)))
    sent = redis.pipelines_sent
    values = await asyncio.gather(*(redis.get(key) for key in keys))
    assert values == [str(i) for i in range(200)]
    assert redis.pipelines_sent == sent + 1  # 200 GETs, one pipeline
    # replies are parsed as for a single command (callbacks applied: HGETALL -> dict, EXISTS -> int)
    await redis.hset(f"{redis_prefix}:h", mapping={"a": "1", "b": "2"})
    mapping, exists, missing = await asyncio.gather(
        redis.hgetall(f"{redis_prefix}:h"), redis.exists(keys[0]), redis.exists(f"{redis_prefix}:none")
    )
    assert mapping == {"a": "1", "b": "2"} and exists == 1 and missing == 0


async def test_an_error_fails_only_its_own_caller(redis, redis_prefix):
    await redis.set(f"{redis_prefix}:string", "text")
    results = await asyncio.gather(
        redis.incr(f"{redis_prefix}:counter"),
        redis.hget(f"{redis_prefix}:string", "field"),  # WRONGTYPE
        redis.get(f"{redis_prefix}:string"),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == "text"
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])


async def test_scripts_transactions_and_blocking_commands_still_work(redis, redis_prefix):
    # a script new to the server (its text names this test): the first calls meet NOSCRIPT and load it
    script = redis.register_script(f"-- {redis_prefix}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    totals = await asyncio.gather(*(script(keys=[f"{redis_prefix}:s"], args=[2]) for _ in range(10)))
    assert sorted(totals) == list(range(2, 22, 2))
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(f"{redis_prefix}:s")
        pipe.multi()
        pipe.incr(f"{redis_prefix}:s")
        assert await pipe.execute() == [21]
    # a blocking pop does not hold up the commands issued beside it
    waiting = asyncio.create_task(redis.blpop([f"{redis_prefix}:queue"], timeout=5))
    await asyncio.sleep(0.05)
    assert await asyncio.wait_for(redis.get(f"{redis_prefix}:s"), timeout=1) == "21"
    await redis.rpush(f"{redis_prefix}:queue", "job")
    assert tuple(await waiting) == (f"{redis_prefix}:queue", "job")


async def test_a_lost_connection_fails_every_waiting_caller():
    client = AutoPipelineRedis(connection_pool=BlockingConnectionPool.from_url("redis://127.0.0.1:1/0", timeout=1))
    results = await asyncio.gather(*(client.get(f"k{i}") for i in range(5)), return_exceptions=True)
    assert all(isinstance(result, RedisConnectionError) for result in results), results
    await client.aclose()

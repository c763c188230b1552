"""Automatic pipelining: Redis commands issued at the same time by concurrent handlers travel together.

A batch subscriber handles dozens of events at once and each handler awaits its own Redis commands
(``EXISTS`` of its idempotency key, ``HSET`` of its state ...). One command per round trip costs, in redis-py,
a connection taken from the pool, a timeout scope, a write and a read: half of routing's CPU in the profile of
``make bench``. :class:`AutoPipelineRedis` queues every plain command issued during one turn of the event loop
and sends the queue as one pipeline (``transaction=False``) on the next turn; each caller gets its own reply or
its own error. Nothing changes for callers: the same methods, the same replies, the same order per caller.
(Lettuce and ioredis do the same and call it auto-pipelining.)

Left alone, because they must not wait behind others or must hold a connection: blocking commands (``BLPOP``
...), explicit pipelines and transactions (``pipeline()``, ``WATCH``/``MULTI``: they use their own
connection), pub/sub. A connection error fails every command of the pipeline, as it would have failed each
of them alone; a command error (``WRONGTYPE`` ...) fails only its own caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

UNBATCHED = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        "WAIT",
        "WAITAOF",
        "WATCH",
        "UNWATCH",
        "MULTI",
        "EXEC",
        "DISCARD",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "MONITOR",
        "CLIENT",
        "SELECT",
        "AUTH",
        "HELLO",
        "QUIT",
        "RESET",
    }
)


class AutoPipelineRedis(Redis):
    """A ``redis.asyncio.Redis`` whose plain commands are pipelined with those issued in the same loop turn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self.pipelines_sent = 0
        """Pipelines of two or more commands sent so far (the tests read it)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = str(args[0]).upper()
        if name in UNBATCHED or self.single_connection_client:
            return await super().execute_command(*args, **options)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((args, options, reply))
        return await reply

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(queued))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send(self, queued: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(queued) == 1:
                args, options, _ = queued[0]
                replies = [await super().execute_command(*args, **options)]
            else:
                async with self.pipeline(transaction=False) as pipe:
                    for args, options, _ in queued:
                        pipe.execute_command(*args, **options)
                    replies = await pipe.execute(raise_on_error=False)
                self.pipelines_sent += 1
        except BaseException as exc:  # the connection failed (or we are cancelled): every caller hears it
            for _, _, reply in queued:
                if not reply.done():
                    reply.set_exception(exc if isinstance(exc, Exception) else ConnectionError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, reply), value in zip(queued, replies, strict=True):
            if reply.done():  # its caller was cancelled
                continue
            if isinstance(value, Exception):
                reply.set_exception(value)
            else:
                reply.set_result(value)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        await super().aclose(close_connection_pool)

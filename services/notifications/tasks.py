"""Background tasks as the app's ``service_app(background=...)`` takes them: started after the broker, stopped
before it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def in_background(name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run ``run()`` as a task while the context is open; cancel it (and wait for it) on the way out."""
    task = asyncio.create_task(run(), name=name)
    try:
        yield
    finally:
        await stop([task])


async def stop(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks and wait until they have ended. The cancel is repeated: a cancel that lands while redis-py
    reconnects can be turned into a timeout and retried away, and then the task would run on for ever."""
    for task in tasks:
        for _ in range(50):
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
            if task.done():
                break

"""Deleting a service's keys before a rebuild: SCAN (never KEYS, which blocks Redis) and delete in batches."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis


async def delete_matching(redis: Redis, pattern: str, *, keep: Callable[[str], bool] = lambda key: False) -> int:
    """Delete every key matching the glob ``pattern`` unless ``keep(key)``. Returns how many were deleted."""
    deleted = 0
    batch: list[str] = []
    async for key in redis.scan_iter(match=pattern, count=1000):
        if keep(key):
            continue
        batch.append(key)
        if len(batch) >= 500:
            deleted += await redis.delete(*batch)
            batch = []
    if batch:
        deleted += await redis.delete(*batch)
    return deleted

"""Every wait of the suite is on a condition, with a deadline and a sentence saying what was awaited."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


class Timeout(AssertionError):
    """A condition was not met in time; the message names it and its last value."""


async def until(
    check: Callable[[], Any | Awaitable[Any]], *, what: str, timeout_s: float, interval_s: float = 0.3
) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy; a check that raises counts as "not
    yet" (a service restarting refuses connections) until the deadline, where its last error is reported."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
            if inspect.isawaitable(last):
                last = await last
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise Timeout(f"waited {timeout_s:.0f} s for {what}; last: {last!r}"[:600])
        await asyncio.sleep(interval_s)

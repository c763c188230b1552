"""One rate limit for every service's doors: writes (POST, PUT, PATCH, DELETE) and the expensive queries (the
figures, the dashboard, the inbox search) each have a budget per minute, counted in Redis per signed-in person
(bearer token or session), or per address for everyone else. 429 with ``Retry-After`` and a JSON body above it.

The address is the peer's, or, when the peer is a trusted proxy (``TRUSTED_PROXIES``), the right-most address of
``X-Forwarded-For`` that is not a trusted proxy: the service factory resolves it once, before this runs
(``shared/service.py``), so a client that writes its own ``X-Forwarded-For`` changes nothing."""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import parse_qs

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request

from shared.http_problems import problem
from shared.identity import UNSAFE, Identity
from shared.sealing import pseudonym

# A fixed window that starts at a bucket's first hit: the count, and the milliseconds until the window ends.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
# Single scripts rather than MULTI blocks: they share round trips with the other requests' commands.

WINDOW_S = 60


class Limiter:
    """Counts hits per bucket in Redis, keys with a TTL (nothing to clean up)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.prefix = prefix
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, limit: int, window_s: int = WINDOW_S) -> int | None:
        """Count one hit in ``bucket``; ``None`` while within ``limit``, else the seconds until it may try again."""
        count, ttl_ms = await self._hit(keys=[f"{self.prefix}:{bucket}"], args=[window_s * 1000])
        if int(count) > limit:
            return max(1, math.ceil(int(ttl_ms) / 1000))
        return None


def expensive_query(scope: dict[str, Any]) -> bool:
    """The reads that cost a computation over many ideas: analytics' figures, its dashboard (both languages) and
    the search (``/api/v1/ideas?q=``) and the similar ideas asked as people write (``/api/v1/ideas/similar``)."""
    path: str = scope["path"]
    if path.startswith("/api/v1/stats/") or path in ("/dashboard", "/en/dashboard", "/api/v1/ideas/similar"):
        return True
    return path == "/api/v1/ideas" and "q" in parse_qs(scope.get("query_string", b"").decode("latin-1"))


class RateLimits:
    """Pure ASGI middleware (inside the session middleware, which it reads): every write and every expensive
    query counts against its budget; over it, 429 before any work is done. A request whose credentials do not
    verify (a bad bearer token, a cross-site session write) counts against its address. If Redis is away the
    request passes: the limit must not turn a Redis outage into refusals of reads that need no Redis."""

    def __init__(
        self,
        app: Any,
        *,
        limiter: Limiter,
        identity: Identity,
        writes_per_minute: int,
        queries_per_minute: int,
        logger: logging.Logger,
        pepper: bytes,
    ) -> None:
        self.app = app
        self.pepper = pepper
        self.limiter = limiter
        self.identity = identity
        self.budgets = {"writes": writes_per_minute, "queries": queries_per_minute}
        self.logger = logger

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in UNSAFE:
            kind = "writes"
        elif scope["method"] in ("GET", "HEAD") and expensive_query(scope):
            kind = "queries"
        else:
            await self.app(scope, receive, send)
            return
        limit = self.budgets[kind]
        who = await self.who(Request(scope))
        try:
            wait = await self.limiter.hit(f"{kind}:{who}", limit)
        except RedisError as exc:
            self.logger.warning("rate limit not counted: redis unavailable", extra={"error": repr(exc)})
            wait = None
        if wait is None:
            await self.app(scope, receive, send)
            return
        subject = "person" if who.startswith("person:") else "address"
        response = problem(
            429,
            f"Too many {kind} from this {subject}: at most {limit} per minute. Try again in {wait} s.",
            retry_after_s=wait,
            limit_per_minute=limit,
        )
        response.headers["Retry-After"] = str(wait)
        await response(scope, receive, send)

    async def who(self, request: Request) -> str:
        """``person:<pseudonym>`` for a verified principal (no user name in Redis), else ``address:<address>``."""
        try:
            principal = await self.identity.principal(request)
        except Exception:  # unverifiable credentials: the route refuses them; the address still pays
            principal = None
        if principal is not None:
            return f"person:{pseudonym(self.pepper, principal.email or principal.id)}"
        return f"address:{request.client.host if request.client else 'unknown'}"

"""HTTP request counts and latencies on the service's registry, with bounded labels: the method, the route
template (``/api/v1/ideas/{idea_id}``, never the idea id itself) and the status class (``2xx`` ... ``5xx``)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"
"""The route label of a request that matched no route (a 404 or a probe): its path is never a label."""

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """Pure ASGI middleware around the whole app, so every answer is counted (a 413 from an inner
    middleware, a 500 from an unhandled error). Server-sent event streams count when they end."""

    def __init__(self, app: Any, *, service: str, requests: Counter, duration: Histogram) -> None:
        self.app = app
        self.service = service
        self.requests = requests
        self.duration = duration

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            route = route_template(scope)
            self.requests.labels(self.service, method, route, f"{status // 100}xx").inc()
            # and the route's 5xx at 0, so its first 5xx is an increase (KirunaHttpErrors; shared/metrics.py)
            self.requests.labels(self.service, method, route, "5xx")
            self.duration.labels(self.service, method, route).observe(time.perf_counter() - started)


def route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return UNMATCHED
    return path


def instrument(app: FastAPI, *, service: str, registry: CollectorRegistry) -> None:
    """Wrap the app's whole middleware stack (built on its first call) in :class:`HttpMetrics`."""
    requests = Counter(
        "kiruna_http_requests",
        "HTTP requests answered, by method, route template and status class",
        ["service", "method", "route", "status"],
        registry=registry,
    )
    duration = Histogram(
        "kiruna_http_request_duration_seconds",
        "Time to answer an HTTP request (until the last byte of the body), by method and route template",
        ["service", "method", "route"],
        buckets=BUCKETS,
        registry=registry,
    )
    build = app.build_middleware_stack

    def build_with_metrics() -> Any:
        return HttpMetrics(build(), service=service, requests=requests, duration=duration)

    app.build_middleware_stack = build_with_metrics  # type: ignore[method-assign]

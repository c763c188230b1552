"""Security headers on every answer of every service (installed by ``service_app``): no MIME sniffing, no
referrer sent to other sites, never framed by another site, and in production HSTS. A route that sets its own
header (a page's fuller Content-Security-Policy) keeps it."""

from __future__ import annotations

from typing import Any

HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """Pure ASGI middleware (no extra task per request, unlike ``@app.middleware``)."""

    def __init__(self, app: Any, *, production: bool) -> None:
        self.app = app
        self.headers = (*HEADERS, HSTS) if production else HEADERS

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

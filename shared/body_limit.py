"""One body limit for every service (``<SERVICE>_MAX_BODY_BYTES``): the bytes actually received are counted, so a
body sent without a length (chunked) is bounded like one that announces it. 413 with a JSON body above it."""

from __future__ import annotations

from typing import Any

from shared.http_problems import problem


class BodyTooLarge(Exception):
    """Raised into the app by ``receive`` once the body passes the limit; the middleware answers 413."""


class BodyLimit:
    """Pure ASGI middleware (not ``@app.middleware("http")``, which runs every request through extra tasks and
    streams). A body announced larger than ``max_bytes`` is refused before it is read; otherwise the bytes are
    counted as the app reads them, and the read that passes the limit stops the app: whatever it would have
    answered to the broken read is replaced by the 413."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        received = 0
        over = started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise BodyTooLarge(f"more than {self.max_bytes} bytes")
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to the broken read: the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await self.refuse(scope, receive, send)

    async def refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        detail = f"Request body too large: at most {self.max_bytes} bytes are accepted"
        response = problem(413, detail, "(body)", max_bytes=self.max_bytes)
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)

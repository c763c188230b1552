"""Serve an ASGI app over real HTTP on a free 127.0.0.1 port, in-process, for tests that need a real client
(a browser). The app's lifespan runs inside uvicorn, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


def bind(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port: reserve it first when an app must know its own URL (or another app's)
    before it starts, then pass it to :func:`serving`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serving(
    app: Any, *, sock: socket.socket | None = None, host: str = "127.0.0.1", startup_timeout: float = 30.0
) -> AsyncIterator[str]:
    """``async with serving(app) as base_url:`` - the app answers at ``base_url`` until the block ends.
    The socket is bound before uvicorn starts (or given, from :func:`bind`), so the port cannot be taken."""
    sock = sock or bind(host)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        proxy_headers=False,  # as shared/runner.py: the app reads X-Forwarded-For from TRUSTED_PROXIES only
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{port}")
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped the server
                raise RuntimeError("uvicorn stopped before it started")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {startup_timeout}s")
            await asyncio.sleep(0.05)
        yield url_of(sock)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=startup_timeout)
        sock.close()

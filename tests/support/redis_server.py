"""A redis-server of a test's own, on a free port, to kill (-9) and start again under a running service."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.kafka import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


@contextlib.asynccontextmanager
async def redis_server(port: int, data_dir: Path | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    """A redis-server on ``port``: without persistence, or with its append-only file in ``data_dir`` (a server
    started again on the same directory comes back with what the first one acknowledged)."""
    persistence = ("--appendonly", "no") if data_dir is None else ("--appendonly", "yes", "--dir", str(data_dir))
    server = await asyncio.create_subprocess_exec(
        shutil.which("redis-server") or "redis-server",
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: answers(port), timeout=20)
        yield server
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

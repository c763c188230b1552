"""Our own HTTP load generator: keep-alive HTTP/1.1 over asyncio protocols, no client library.

It shares the two cores with what it measures, so it does as little as possible per request: requests are
encoded once up front, responses are parsed just enough (status, Content-Length, body). About 20 µs of CPU
per request, against 100+ µs for httpx.

- :func:`closed_loop` — a fixed number of clients, each sends its next request when the last was answered.
- :func:`open_loop` — requests are sent on a fixed schedule whatever the answers (no coordinated omission):
  latency counts from the scheduled moment, and connections are added when all are busy.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDEA_FILES = (ROOT.parent / "shared" / "data" / "sample-ideas.jsonl", ROOT / "tests" / "data" / "routing-heldout.jsonl")
ORGANISATIONS = ("kiruna-kommun", "tekniska-verken", "kirunabostader")


class ConnectionLost(Exception):
    pass


def sample_ideas() -> list[dict]:
    """The realistic ideas of the repository (Swedish and English), as API bodies with a submitter each."""
    texts = []
    for path in IDEA_FILES:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    texts.append((record["title"], record.get("description", "")))
    if not texts:
        texts = [("Fjärrvärme till det nya badhuset", "Anslut badhuset till fjärrvärmenätet när det byggs om.")]
    bodies = []
    for i in range(max(1000, len(texts))):
        title, description = texts[i % len(texts)]
        bodies.append(
            {
                "title": title,
                "description": description,
                "submitter": {
                    "name": f"Bench Person {i % 1000}",
                    "email": f"bench.person{i % 1000}@kiruna.se",
                    "organisation": ORGANISATIONS[i % len(ORGANISATIONS)],
                },
            }
        )
    random.Random(8).shuffle(bodies)
    return bodies


def encode_requests(host: str, port: int, path: str, bodies: list[dict], tokens: list[str]) -> list[bytes]:
    """The HTTP requests of the ideas: the submitter is a signed-in person (bearer tokens in turn, as intake takes
    it from the token, never the body); without tokens the ideas are anonymous."""
    out = []
    for i, body in enumerate(bodies):
        idea = {k: v for k, v in body.items() if k != "submitter"} | ({} if tokens else {"anonymous": True})
        payload = json.dumps(idea, ensure_ascii=False).encode()
        auth = f"Authorization: Bearer {tokens[i % len(tokens)]}\r\n" if tokens else ""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        out.append(head + payload)
    return out


def bench_tokens(issuer: str, users: tuple[str, ...] = ("anna.svensson", "per.niemi")) -> list[str]:
    """Access tokens of the local realm's employees (client kiruna-cli, password grant; the local realm only), for
    the bench's submitters; none when the provider does not answer (the ideas are then anonymous)."""
    import httpx

    password = "kiruna-local"  # every local user's; the local realm only
    tokens = []
    try:
        for user in users:
            answer = httpx.post(
                f"{issuer}/protocol/openid-connect/token",
                data={"grant_type": "password", "client_id": "kiruna-cli", "username": user, "password": password},
                timeout=10,
            )
            answer.raise_for_status()
            tokens.append(answer.json()["access_token"])
    except httpx.HTTPError as exc:
        print(f"bench: no tokens from {issuer} ({exc!r}): the ideas are sent anonymously")
        return []
    return tokens


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        _, protocol = await asyncio.get_running_loop().create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionLost(repr(exc)))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))
        if b"connection: close" in head and self.transport is not None:
            self.transport.close()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed or self.transport is None:
            raise ConnectionLost("closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class LoadResult:
    started: float = 0.0
    elapsed_s: float = 0.0
    accepted: int = 0
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    late: int = 0  # open loop: requests sent more than 10 ms after their scheduled moment
    connections: int = 0

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 202)


Accepted = Callable[[bytes, float], None]
"""Called with the 202's body and the moment (time.monotonic) it arrived."""


async def closed_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    on_accepted: Accepted | None = None,
) -> LoadResult:
    """``concurrency`` clients, each with its own connection, back to back for warm-up plus duration;
    only the last ``duration_s`` are counted."""
    result = LoadResult()
    now = time.monotonic()
    measure_from = now + warmup_s
    deadline = measure_from + duration_s

    async def client(index: int) -> None:
        conn = await HttpConnection.open(host, port)
        i = index
        try:
            while True:
                sent = time.monotonic()
                if sent >= deadline:
                    return
                try:
                    status, body = await conn.request(requests[i % len(requests)])
                except ConnectionLost:
                    result.errors += 1
                    conn = await HttpConnection.open(host, port)
                    continue
                i += concurrency
                done = time.monotonic()
                if sent < measure_from:
                    continue
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 202:
                    result.accepted += 1
                    result.latencies_s.append(done - sent)
                    if on_accepted is not None:
                        on_accepted(body, done)
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    result.started = measure_from
    result.elapsed_s = time.monotonic() - measure_from
    result.connections = concurrency
    return result


async def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    rate: float,
    warmup_s: float,
    duration_s: float,
    on_accepted: Accepted | None = None,
    max_connections: int = 1024,
) -> LoadResult:
    """Requests at a fixed rate (evenly spaced) for warm-up plus duration; only the last ``duration_s`` count.
    Latency is measured from each request's scheduled moment, so a stalled server cannot hide its queue."""
    result = LoadResult()
    idle: deque[HttpConnection] = deque()
    opened = 0
    in_flight: set[asyncio.Task] = set()
    start = time.monotonic()
    measure_from = start + warmup_s
    total = int((warmup_s + duration_s) * rate)
    interval = 1.0 / rate

    async def one(index: int, scheduled: float) -> None:
        nonlocal opened
        conn = None
        while idle and conn is None:
            conn = idle.pop()
            if conn.closed:  # the server closed it while it was idle (keep-alive timeout): as any client, skip it
                conn = None
        if conn is None:
            opened += 1
            conn = await HttpConnection.open(host, port)
        try:
            status, body = await conn.request(requests[index % len(requests)])
        except ConnectionLost:
            result.errors += 1
            return
        done = time.monotonic()
        if not conn.closed:
            idle.append(conn)
        if scheduled < measure_from:
            return
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 202:
            result.accepted += 1
            result.latencies_s.append(done - scheduled)
            if on_accepted is not None:
                on_accepted(body, done)

    index = 0
    while index < total:
        now = time.monotonic()
        due = min(total, int((now - start) / interval) + 1)
        while index < due:
            scheduled = start + index * interval
            if scheduled >= measure_from and now - scheduled > 0.010:
                result.late += 1
            if len(in_flight) >= max_connections:
                break  # the generator's own limit: counted as late, sent when a connection frees up
            task = asyncio.create_task(one(index, scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            index += 1
        await asyncio.sleep(max(0.0, start + index * interval - time.monotonic()))
    if in_flight:
        await asyncio.wait(in_flight, timeout=30)
    result.started = measure_from
    result.elapsed_s = time.monotonic() - measure_from
    result.connections = opened
    for conn in idle:
        conn.close()
    return result

"""People's live streams (server-sent events) of new feed items, and the one Redis subscription that feeds them.

A delivered in-app item is announced on ``<prefix>:notifications:live:<pseudonym>`` (store.py); a person's erasure
is announced there too, and ends their open streams in every process. Each process holds ONE
pattern subscription to those channels, on a Redis connection of its own (not from the pool that the handlers
share), and fans every message out in-process to the open streams of its person through bounded queues: a stream
costs a queue, not a Redis connection, so open browser tabs cannot starve the handlers. A client too slow to take
its items (its queue full) is dropped rather than holding up the others; its browser reconnects and resumes with
``Last-Event-ID`` from the feed. Streams are capped per person and in all (429 with ``Retry-After``). When the
subscription is lost, every stream is ended the same way, so that nothing announced meanwhile is missed.

Items are announced only for people with a stream open somewhere: a stream marks its person as listened to
(``NotificationStore.listening``, ``live-on:<pseudonym>``) before it is answered, and the process renews the marks
of its open streams every third of their life (``LISTENING_S``), so the subscription reads no announcement of the
many people nobody is watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from services.notifications.store import END_OF_STREAM, LISTENING_S
from services.notifications.tasks import stop

END = None  # put on a stream's queue: the stream ends (dropped, or the service stops)
ERASED = END_OF_STREAM  # announced on the channel of a person erased (store.py)

PING_S = 30.0
"""The subscription pings Redis when it has read nothing for this long (a silently dead connection shows)."""

Listening = Callable[[list[str]], Awaitable[None]]
"""Marks people as listened to for ``LISTENING_S``: their items are announced (``NotificationStore.listening``)."""


class TooManyStreams(Exception):
    """A cap on open streams is reached: the person's own, or the service's."""

    def __init__(self, detail: str, setting: str) -> None:
        super().__init__(detail)
        self.detail, self.setting = detail, setting


@dataclass(eq=False)
class LiveStream:
    """One open stream: its person (pseudonym) and the items waiting to be sent (JSON text; ``END`` ends it)."""

    person: str
    queue: asyncio.Queue[str | None]
    closed: bool = field(default=False)


@dataclass(frozen=True)
class LiveMetrics:
    open: Gauge
    ended: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LiveMetrics:
        return cls(
            open=Gauge("kiruna_notification_live_streams", "Open live streams (server-sent events)", registry=registry),
            ended=Counter(
                "kiruna_notification_live_streams_refused_or_dropped",
                "Live streams refused (cap-person, cap-all) or dropped (slow client, subscription lost, erased)",
                ["reason"],
                registry=registry,
            ),
        )


class LiveStreams:
    """The open streams of this process, fed by one Redis pattern subscription."""

    def __init__(
        self,
        *,
        channel_prefix: str,
        per_person: int,
        max_streams: int,
        queue_size: int,
        metrics: LiveMetrics | None = None,
        listening: Listening | None = None,
    ) -> None:
        self.channel_prefix = channel_prefix
        self.mark_listening = listening
        self.per_person = per_person
        self.max_streams = max_streams
        self.queue_size = queue_size
        self.metrics = metrics
        self.subscribed = asyncio.Event()
        self._by_person: dict[str, set[LiveStream]] = {}
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    # --- streams ----------------------------------------------------------------------------------

    def open(self, person: str) -> LiveStream:
        """A new stream of ``person``'s items, or :class:`TooManyStreams`."""
        mine = self._by_person.get(person, set())
        if len(mine) >= self.per_person:
            self._count_ended("cap-person")
            raise TooManyStreams(
                f"Too many open streams: you have {len(mine)} open streams already, the most a person may have "
                f"(NOTIFICATIONS_STREAMS_PER_PERSON); close one (another tab or window) or try again later",
                "streams_per_person",
            )
        if self._count >= self.max_streams:
            self._count_ended("cap-all")
            raise TooManyStreams(
                f"Too many open streams: the service has {self._count} open, its most "
                f"(NOTIFICATIONS_STREAMS_MAX); try again later",
                "streams_max",
            )
        stream = LiveStream(person, asyncio.Queue(maxsize=self.queue_size))
        self._by_person.setdefault(person, set()).add(stream)
        self._count += 1
        if self.metrics:
            self.metrics.open.set(self._count)
        return stream

    async def open_announced(self, person: str) -> LiveStream:
        """:meth:`open`, and make sure the person's new items are announced from now on (before the stream is
        answered: what is delivered after this returns reaches the stream)."""
        stream = self.open(person)
        if self.mark_listening is not None:
            try:
                await self.mark_listening([person])
            except BaseException:
                self.close(stream)
                raise
        return stream

    def close(self, stream: LiveStream) -> None:
        """Forget the stream (again is harmless)."""
        if stream.closed:
            return
        stream.closed = True
        mine = self._by_person.get(stream.person)
        if mine is not None:
            mine.discard(stream)
            if not mine:
                del self._by_person[stream.person]
        self._count -= 1
        if self.metrics:
            self.metrics.open.set(self._count)

    def dispatch(self, channel: str, data: str) -> int:
        """Hand one announced item to every open stream of the channel's person; a stream whose queue is full
        is ended (its client is too slow). Returns how many streams took it."""
        if not channel.startswith(self.channel_prefix):
            return 0
        person = channel[len(self.channel_prefix) :]
        if data == ERASED:  # the person was erased: their streams end, in every process
            for stream in list(self._by_person.get(person, ())):
                self._end(stream, "erased")
            return 0
        taken = 0
        for stream in list(self._by_person.get(person, ())):
            try:
                stream.queue.put_nowait(data)
                taken += 1
            except asyncio.QueueFull:
                self._end(stream, "slow-client")
        return taken

    def end_all(self, reason: str) -> None:
        for streams in list(self._by_person.values()):
            for stream in list(streams):
                self._end(stream, reason)

    def _end(self, stream: LiveStream, reason: str) -> None:
        while not stream.queue.empty():
            stream.queue.get_nowait()
        stream.queue.put_nowait(END)
        self.close(stream)
        self._count_ended(reason)

    def _count_ended(self, reason: str) -> None:
        if self.metrics:
            self.metrics.ended.labels(reason).inc()

    # --- the one subscription ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def listening(
        self, connect: Callable[[], Redis], logger: logging.Logger, *, first_wait_s: float = 5.0
    ) -> AsyncIterator[None]:
        """Keep the pattern subscription (on a connection from ``connect()``, not from the shared pool) while
        the context is open; at the end, end every open stream."""
        task = asyncio.create_task(self._subscription(connect, logger), name="notifications-live-subscription")
        renewing = asyncio.create_task(self._renewing(logger), name="notifications-live-listening")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), timeout=first_wait_s)  # usually at once
        try:
            yield
        finally:
            await stop([task, renewing])
            self.end_all("service-stopping")

    async def _renewing(self, logger: logging.Logger, every_s: float = LISTENING_S / 3) -> None:
        """Keep the open streams' people marked as listened to (the marks expire after ``LISTENING_S``)."""
        if self.mark_listening is None:
            return
        while True:
            await asyncio.sleep(every_s)
            people = list(self._by_person)
            if not people:
                continue
            try:
                await self.mark_listening(people)
            except Exception as exc:  # Redis away: the subscription is lost too, and its streams end
                logger.warning("could not renew the live streams' marks", extra={"error": repr(exc)})

    async def _subscription(self, connect: Callable[[], Redis], logger: logging.Logger) -> None:
        pattern = _glob_escape(self.channel_prefix) + "*"
        pause = 0.1
        while True:
            redis = connect()
            pubsub = redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                self.subscribed.set()
                pause = 0.1
                pinged = time.monotonic()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=PING_S)
                    if message is None:
                        # Nothing for PING_S, or only the answer to a ping (it reads as None as well: pinging on
                        # every None kept this loop pinging thousands of times a second, a third of a core).
                        if time.monotonic() - pinged >= PING_S:
                            await pubsub.ping()  # a silently dead connection shows here
                            pinged = time.monotonic()
                    elif message["type"] == "pmessage":
                        self.dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("live subscription lost; reconnecting", extra={"error": repr(exc)})
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await redis.aclose()
            # what was announced meanwhile is not lost: clients reconnect and resume from the feed (Last-Event-ID)
            self.end_all("subscription-lost")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    # --- the response -----------------------------------------------------------------------------

    def response(
        self,
        stream: LiveStream,
        backlog: list[dict],
        *,
        limit: int | None,
        ping_s: float,
        send_timeout_s: float,
    ) -> EventSourceResponse:
        """Server-sent events: first the ``backlog`` (oldest first), then the stream's items as they come."""
        return _LiveResponse(
            self._events(stream, backlog, limit),
            on_close=lambda: self.close(stream),
            ping=ping_s,
            send_timeout=send_timeout_s,
            headers={"Cache-Control": "no-cache"},
        )

    async def _events(self, stream: LiveStream, backlog: list[dict], limit: int | None) -> AsyncIterator[Any]:
        sent: set[str] = set()
        try:
            yield ServerSentEvent(retry=3000, comment="kiruna notifications")
            for item in backlog:
                if limit is not None and len(sent) >= limit:
                    return
                sent.add(item["notification_id"])
                yield _frame(item["notification_id"], json.dumps(item))
            while limit is None or len(sent) < limit:
                data = await stream.queue.get()
                if data is END:
                    return
                nid = json.loads(data)["notification_id"]
                if nid in sent:
                    continue  # in the backlog already
                sent.add(nid)
                yield _frame(nid, data)
        finally:
            self.close(stream)


class _LiveResponse(EventSourceResponse):
    """Frees the stream's place however the response ends, even if its body never started (a client gone)."""

    def __init__(self, *args: Any, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _frame(notification_id: str, data: str) -> ServerSentEvent:
    return ServerSentEvent(data=data, id=notification_id, event="notification")


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)

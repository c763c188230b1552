"""Bounded retries, then the dead-letter topic: a message that cannot be parsed or keeps failing is
republished to ``<topic>.dlq`` with its original key, value and headers plus the error and where it came
from, and the consumer carries on. Nothing is dropped silently: if the dead-letter write itself fails, the
exception reaches the ack policy, the offset is not committed and the message comes back.

The headers are text for operators: every e-mail address in them (an SMTP error naming its recipient, a header of
another front end) is masked (``a***@kiruna.se``, shared/logs.py ``masked``), as in the log lines. The value stays
byte for byte, so it can be republished: the events of the ``.v2`` topics carry their personal fields sealed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from faststream import BaseMiddleware
from faststream.exceptions import HandlerException
from pydantic import ValidationError

from shared.logs import masked

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

    from shared.metrics import ServiceMetrics

MALFORMED = (ValidationError, json.JSONDecodeError, UnicodeDecodeError)
"""Errors that no retry can cure: the message goes to the dead-letter topic at once."""

MAX_ERROR_HEADER = 2000
OUTAGE_MAX_BACKOFF_S = 10.0
"""Longest wait between two tries while Kafka or Redis is away."""


def dependency_away(exc: BaseException) -> str | None:
    """``"redis"`` or ``"kafka"`` when ``exc`` says that dependency is unreachable or not answering (not the
    message's fault), else None. Looks through the exception's causes (a handler may wrap the error)."""
    from redis.exceptions import BusyLoadingError, TryAgainError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from shared.kafka import KafkaUnavailable

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (RedisConnectionError, RedisTimeoutError, BusyLoadingError, TryAgainError)):
            return "redis"
        if isinstance(current, KafkaUnavailable):
            return "kafka"
        current = current.__cause__ or current.__context__
    return None


T = TypeVar("T")


class PermanentError(Exception):
    """Raised by a handler for input it can never process (an unknown person, a template error)."""


class DeadLetters:
    """The policy of every subscriber, one-message or batch: retry a failing handler with exponential backoff
    and jitter, then republish the record to ``<topic>.dlq``. Input that no retry can cure (``MALFORMED``,
    ``PermanentError``) is dead-lettered at once."""

    def __init__(
        self,
        *,
        service: str,
        attempts: int,
        backoff_s: float,
        metrics: ServiceMetrics,
        logger: logging.Logger,
        outage_max_backoff_s: float = OUTAGE_MAX_BACKOFF_S,
    ) -> None:
        self.service = service
        self.outage_max_backoff_s = outage_max_backoff_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.metrics = metrics
        self.logger = logger
        self.broker: KafkaBroker | None = None

    def bind(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def handle(self, record: Any, call: Callable[[], Awaitable[T]]) -> T | None:
        """``await call()`` for ``record`` under the policy; ``None`` when the record was dead-lettered.
        Raises only what must stop the commit: a failed dead-letter write (or FastStream's own exceptions).

        A failure because Kafka or Redis is away (:func:`dependency_away`) is not the message's fault: the handler
        waits for the dependency (backing off up to ``OUTAGE_MAX_BACKOFF_S``, for as long as the outage lasts,
        the consumer paused meanwhile) and those tries are not counted against the message. Only a message that
        fails on its own merits uses up its attempts and is dead-lettered."""
        delay = self.backoff_s
        outage_delay = self.backoff_s or 0.1
        attempt = 0
        waits = 0
        while True:
            try:
                result = await call()
            except HandlerException:
                raise
            except (*MALFORMED, PermanentError) as exc:
                await self.dead_letter(
                    record, exc, "malformed" if isinstance(exc, MALFORMED) else "rejected", attempt + 1
                )
                return None
            except Exception as exc:
                if (dependency := dependency_away(exc)) is not None:
                    waits += 1
                    self.metrics.dependency_waits.labels(self.service, record.topic, dependency).inc()
                    if waits == 1 or waits % 10 == 0:
                        self.logger.warning(
                            f"{dependency} away: waiting for it before handling the message again",
                            extra={
                                "topic": record.topic,
                                "partition": record.partition,
                                "offset": record.offset,
                                "waits": waits,
                                "error": masked(repr(exc))[:300],
                            },
                        )
                    await asyncio.sleep(outage_delay * (0.5 + random.random()))
                    outage_delay = min(outage_delay * 2, self.outage_max_backoff_s)
                    continue
                attempt += 1
                if attempt >= self.attempts:
                    await self.dead_letter(record, exc, "failed", attempt)
                    return None
                self.metrics.handler_retries.labels(self.service, record.topic).inc()
                self.logger.warning(
                    "handler failed, retrying",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "attempt": attempt,
                        "error": masked(repr(exc)),
                    },
                )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay *= 2
            else:
                if waits:
                    self.logger.info(
                        "dependency back: message handled",
                        extra={"topic": record.topic, "offset": record.offset, "waits": waits},
                    )
                return result

    async def dead_letter(self, record: Any, exc: BaseException, reason: str, attempts: int) -> None:
        """Republish a consumed record to ``<topic>.dlq``, with where it was read."""
        headers = {name: value.decode("utf-8", "replace") for name, value in (record.headers or ())}
        headers.update(
            {
                "x-dlq-source-partition": str(record.partition),
                "x-dlq-source-offset": str(record.offset),
                "x-dlq-attempts": str(attempts),
            }
        )
        await self._send(record.topic, record.value or b"", record.key, headers, exc, reason)
        self.logger.error(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "error": _describe(exc)[:300],
            },
        )

    async def dead_letter_value(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        exc: BaseException,
        *,
        reason: str = "rejected",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Dead-letter what is not a consumed record (an event that waited in Redis: ``rejected``; a delivery given
        up: ``delivery-failed``) on ``<topic>.dlq``, with the platform's headers on top of ``headers``."""
        await self._send(topic, value, key, dict(headers or {}), exc, reason)
        self.logger.error(
            "event dead-lettered", extra={"topic": topic, "reason": reason, "error": masked(str(exc))[:300]}
        )

    async def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str], exc: BaseException, reason: str
    ) -> None:
        assert self.broker is not None, "DeadLetters.bind(broker) was not called"
        headers.update(
            {
                "x-dlq-reason": reason,
                "x-dlq-error": _describe(exc),
                "x-dlq-error-type": type(exc).__name__,
                "x-dlq-source-topic": topic,
                "x-dlq-service": self.service,
            }
        )
        headers = {name: masked(text) for name, text in headers.items()}
        headers["x-dlq-error"] = headers["x-dlq-error"][:MAX_ERROR_HEADER]
        await self.broker.publish(value, topic=f"{topic}.dlq", key=key, headers=headers)
        self.metrics.dead_letters.labels(self.service, topic, reason).inc()


class DeadLetterMiddleware(BaseMiddleware):
    """Subscriber middleware applying :class:`DeadLetters` to one-message subscribers (batch subscribers apply
    it to each of their records themselves, see ``shared.batch``)."""

    class factory:
        def __init__(self, policy: DeadLetters) -> None:
            self.policy = policy

        def __call__(self, msg: Any, /, *, context: Any) -> DeadLetterMiddleware:
            return DeadLetterMiddleware(msg, context=context, policy=self.policy)

    def __init__(self, msg: Any, /, *, context: Any, policy: DeadLetters) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        record = msg.raw_message
        if isinstance(record, tuple):  # a batch: its subscriber handles each record's failures
            return await call_next(msg)
        return await self.policy.handle(record, lambda: call_next(msg))


def _describe(exc: BaseException) -> str:
    """The error for a header or a log line, with every e-mail address masked."""
    if isinstance(exc, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(message)'}: {error['msg']}" for error in exc.errors()
        )
    else:
        text = f"{type(exc).__name__}: {exc}"
    return masked(text)

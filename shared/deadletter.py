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

T = TypeVar("T")


class PermanentError(Exception):
    """Raised by a handler for input it can never process (an unknown person, a template error)."""


class DeadLetters:
    """The policy of every subscriber, one-message or batch: retry a failing handler with exponential backoff
    and jitter, then republish the record to ``<topic>.dlq``. Input that no retry can cure (``MALFORMED``,
    ``PermanentError``) is dead-lettered at once."""

    def __init__(
        self, *, service: str, attempts: int, backoff_s: float, metrics: ServiceMetrics, logger: logging.Logger
    ) -> None:
        self.service = service
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.metrics = metrics
        self.logger = logger
        self.broker: KafkaBroker | None = None

    def bind(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def handle(self, record: Any, call: Callable[[], Awaitable[T]]) -> T | None:
        """``await call()`` for ``record`` under the policy; ``None`` when the record was dead-lettered.
        Raises only what must stop the commit: a failed dead-letter write (or FastStream's own exceptions)."""
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                return await call()
            except HandlerException:
                raise
            except (*MALFORMED, PermanentError) as exc:
                await self.dead_letter(record, exc, "malformed" if isinstance(exc, MALFORMED) else "rejected", attempt)
                return None
            except Exception as exc:
                if attempt == self.attempts:
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
        return None

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

"""Bounded retries, then the dead-letter topic: a message that cannot be parsed or keeps failing is
republished to ``<topic>.dlq`` with its original key, value and headers plus the error and where it came
from, and the consumer carries on. Nothing is dropped silently: if the dead-letter write itself fails, the
exception reaches the ack policy, the offset is not committed and the message comes back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faststream import BaseMiddleware
from faststream.exceptions import HandlerException
from pydantic import ValidationError

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

    from shared.metrics import ServiceMetrics

MALFORMED = (ValidationError, json.JSONDecodeError, UnicodeDecodeError)
"""Errors that no retry can cure: the message goes to the dead-letter topic at once."""

MAX_ERROR_HEADER = 2000


class PermanentError(Exception):
    """Raised by a handler for input it can never process (an unknown person, a template error)."""


@dataclass
class _Policy:
    service: str
    attempts: int
    backoff_s: float
    metrics: ServiceMetrics
    logger: logging.Logger
    broker: KafkaBroker | None = field(default=None)


class DeadLetterMiddleware(BaseMiddleware):
    """Subscriber middleware: retry with exponential backoff and jitter, then dead-letter."""

    class factory:
        def __init__(self, **policy: Any) -> None:
            self.policy = _Policy(**policy)

        def bind(self, broker: KafkaBroker) -> None:
            self.policy.broker = broker

        def __call__(self, msg: Any, /, *, context: Any) -> DeadLetterMiddleware:
            return DeadLetterMiddleware(msg, context=context, policy=self.policy)

    def __init__(self, msg: Any, /, *, context: Any, policy: _Policy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        record = msg.raw_message
        if isinstance(record, tuple):  # batch subscribers handle their own failures
            return await call_next(msg)
        policy = self.policy
        delay = policy.backoff_s
        for attempt in range(1, policy.attempts + 1):
            try:
                return await call_next(msg)
            except HandlerException:
                raise
            except (*MALFORMED, PermanentError) as exc:
                await self._dead_letter(record, exc, "malformed" if isinstance(exc, MALFORMED) else "rejected", attempt)
                return None
            except Exception as exc:
                if attempt == policy.attempts:
                    await self._dead_letter(record, exc, "failed", attempt)
                    return None
                policy.metrics.handler_retries.labels(policy.service, record.topic).inc()
                policy.logger.warning(
                    "handler failed, retrying",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "attempt": attempt,
                        "error": repr(exc),
                    },
                )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay *= 2
        return None

    async def _dead_letter(self, record: Any, exc: BaseException, reason: str, attempts: int) -> None:
        policy = self.policy
        assert policy.broker is not None, "DeadLetterMiddleware.factory.bind(broker) was not called"
        headers = {name: value.decode("utf-8", "replace") for name, value in (record.headers or ())}
        headers.update(
            {
                "x-dlq-reason": reason,
                "x-dlq-error": _describe(exc)[:MAX_ERROR_HEADER],
                "x-dlq-error-type": type(exc).__name__,
                "x-dlq-source-topic": record.topic,
                "x-dlq-source-partition": str(record.partition),
                "x-dlq-source-offset": str(record.offset),
                "x-dlq-service": policy.service,
                "x-dlq-attempts": str(attempts),
            }
        )
        await policy.broker.publish(record.value or b"", topic=f"{record.topic}.dlq", key=record.key, headers=headers)
        policy.metrics.dead_letters.labels(policy.service, record.topic, reason).inc()
        policy.logger.error(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "error": _describe(exc)[:300],
            },
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(message)'}: {error['msg']}" for error in exc.errors()
        )
    return f"{type(exc).__name__}: {exc}"

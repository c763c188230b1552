"""Structured logs: one JSON object per line, with idea id, event id and correlation id when known.

No e-mail address reaches a log line (issue 13): :class:`MaskEmails`, a filter on the services' one handler,
masks every address (``a***@kiruna.se``, :func:`shared.sealing.mask_email`) in the message, in every extra
field's value and in the exception's text, whichever logger wrote the record (FastStream's, uvicorn's, aiokafka's,
an SMTP library's); :class:`JsonFormatter` masks what it writes as well, so a handler added elsewhere (a test's)
writes no address either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared.sealing import mask_email

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("kiruna_log_context", default=None)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Every log line written inside the block (in this task) carries ``fields`` (``None`` values are left out):
    the consumer side sets ``idea_id``, ``event_id`` and ``correlation_id`` for the message being handled."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_log_fields() -> dict[str, str]:
    """The fields every log line written here and now carries (:func:`log_context`)."""
    return dict(_CONTEXT.get() or {})


def masked(value: Any, depth: int = 0) -> Any:
    """``value`` with every e-mail address in its text masked: strings, bytes (as text), and the strings inside
    lists, tuples, sets and dicts (keys too); other values as they are. What logs, dead-letter headers and span
    attributes may carry."""
    if isinstance(value, str):
        return mask_email(value) if "@" in value else value
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "replace")
        return mask_email(text) if "@" in text else value
    if depth > 5:
        return value
    try:
        if isinstance(value, dict):
            return {masked(k, depth + 1): masked(v, depth + 1) for k, v in value.items()}
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple (a TopicPartition ...)
            return type(value)(*(masked(v, depth + 1) for v in value))
        if isinstance(value, list | tuple | set | frozenset):
            return type(value)(masked(v, depth + 1) for v in value)
    except Exception:  # a container that cannot be rebuilt: its text, masked
        return masked(str(value))
    if isinstance(value, BaseException):
        return masked(repr(value))
    return value


class MaskEmails(logging.Filter):
    """Masks every e-mail address of a record before any formatter sees it: the message (formatted with its
    arguments), every extra field, the exception's and the stack's text. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a message whose arguments do not fit: as it was written
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = masked(message), None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and not name.startswith("_"):
                setattr(record, name, masked(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masked(record.exc_text)
        if record.stack_info:
            record.stack_info = masked(record.stack_info)
        record._kiruna_masked = True  # the formatter need not mask this record's own fields again
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        done = getattr(record, "_kiruna_masked", False)  # MaskEmails saw it: its own fields are masked already
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage() if done else masked(record.getMessage()),
        }
        line.update({k: masked(v) for k, v in (_CONTEXT.get() or {}).items()})
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        line.update(fields if done else {k: masked(v) for k, v in fields.items()})
        if record.exc_text or record.exc_info:
            line["exception"] = masked(record.exc_text or self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = masked(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=lambda v: masked(str(v)))


def configure_logging(service: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(MaskEmails())  # on the handler: it sees every logger's records, propagated ones included
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(service)

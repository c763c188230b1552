"""Why intake refuses a write. Each maps to one HTTP status (problems.py), SMTP reply (mail.py) or DLQ reason."""

from __future__ import annotations


class InvalidField(ValueError):
    """A field breaks a rule that only intake can check (the catalogue, the lifecycle): 422."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class NotFound(Exception):
    """404"""


class Forbidden(Exception):
    """403"""


class Conflict(Exception):
    """409"""


class IdempotencyPending(Exception):
    """409, with Retry-After: a request with this Idempotency-Key is being handled right now (or its attempt
    crashed and its short lease has not run out yet). The retry must come back later, never wait here."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"a request with this Idempotency-Key is in progress; try again in {retry_after_s} s")

"""Why intake refuses a write. Each maps to one HTTP status (problems.py), SMTP reply (mail.py) or DLQ reason."""

from __future__ import annotations

from datetime import datetime


class InvalidField(ValueError):
    """A field breaks a rule that only intake can check (the catalogue, the lifecycle): 422."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class Refusal(Exception):
    """A refusal with a short ``code`` that a page's redirect carries (``?error=<code>``) for the page to explain."""

    code = "refused"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(Refusal):
    """404"""

    code = "not-found"


class Forbidden(Refusal):
    """403"""

    code = "forbidden"


class Conflict(Refusal):
    """409"""

    code = "conflict"


class IdempotencyPending(Exception):
    """409, with Retry-After: a request with this Idempotency-Key is being handled right now (or its attempt
    crashed and its short lease has not run out yet). The retry must come back later, never wait here."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"a request with this Idempotency-Key is in progress; try again in {retry_after_s} s")


class WrongState(Conflict):
    """409: the idea's state does not allow this (editing after an officer acknowledged it, withdrawing a decided
    idea, assigning a closed one); the answer names the state."""

    code = "wrong-state"

    def __init__(self, message: str, current: str, *, code: str | None = None) -> None:
        self.current = current
        super().__init__(message, code=code)


class ChallengeClosed(Conflict):
    """409: the challenge an idea answers stopped taking answers; the answer says when."""

    code = "challenge-closed"

    def __init__(self, challenge_id: str, closed_at: datetime) -> None:
        self.challenge_id, self.closed_at = challenge_id, closed_at
        super().__init__(
            f"challenge_id: the challenge {challenge_id} closed at {closed_at.isoformat()} and takes no more ideas"
        )

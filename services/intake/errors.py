"""Why intake refuses a write. Each maps to one HTTP status (app.py), SMTP reply (mail.py) or DLQ reason."""

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

"""Intake's refusals of a status change. The lifecycle itself (which state may follow which, which moves need a
reason) is the platform's, defined once in :mod:`shared.lifecycle`; this module only says no, in intake's terms:
a :class:`TransitionError` (409) or an :class:`InvalidField` (422). Pure."""

from __future__ import annotations

from services.intake.errors import InvalidField
from shared.events import IdeaState as S
from shared.lifecycle import NEEDS_REASON, allowed_transitions


def check_transition(current: S, target: S, *, reason: str | None, merged_into: str | None, idea_id: str) -> None:
    """Raise :class:`TransitionError` (state conflict) or :class:`InvalidField` (missing field) when not allowed."""
    allowed = allowed_transitions(current)
    if target not in allowed:
        raise TransitionError(current, target, allowed)
    if target in NEEDS_REASON and not (reason and reason.strip()):
        raise InvalidField("reason", f"required when moving an idea to {target.value}")
    if target is S.MERGED:
        if not merged_into:
            raise InvalidField("merged_into", "required when moving an idea to merged (the idea it duplicates)")
        if merged_into == idea_id:
            raise InvalidField("merged_into", "an idea cannot be merged into itself")


class TransitionError(Exception):
    def __init__(self, current: S, target: S, allowed: tuple[S, ...]) -> None:
        self.current, self.target, self.allowed = current, target, allowed
        listed = ", ".join(s.value for s in allowed) or "none (the idea is closed)"
        super().__init__(
            f"cannot move an idea from {current.value} to {target.value}; allowed from {current.value}: {listed}"
        )

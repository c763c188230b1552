"""The idea lifecycle of the design, as data: which state may follow which. Pure."""

from __future__ import annotations

from services.intake.errors import InvalidField
from shared.events import IdeaState as S

_FORWARD: dict[S, tuple[S, ...]] = {
    S.SUBMITTED: (S.ACKNOWLEDGED,),  # the innovation office may take an idea that routing has not placed yet
    S.ROUTED: (S.ACKNOWLEDGED,),
    S.ACKNOWLEDGED: (S.IN_ASSESSMENT,),
    S.IN_ASSESSMENT: (S.ACCEPTED,),
    S.ACCEPTED: (S.IN_PILOT, S.IMPLEMENTED),
    S.IN_PILOT: (S.IMPLEMENTED,),
    S.IMPLEMENTED: (S.SPREAD,),
    S.SPREAD: (S.SPREAD,),  # taken up by yet another organisation
    S.DECLINED: (),
    S.MERGED: (),
}
TERMINAL = frozenset({S.DECLINED, S.MERGED})
NEEDS_REASON = frozenset({S.DECLINED, S.MERGED})


def allowed_transitions(current: S) -> tuple[S, ...]:
    """Where an idea may go from ``current``: forward along the lifecycle, or to declined/merged from any
    state that is not already final."""
    if current in TERMINAL:
        return ()
    return (*_FORWARD[current], S.DECLINED, S.MERGED)


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

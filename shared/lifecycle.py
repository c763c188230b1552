"""The idea lifecycle of the design, defined once for every service: the states in order, which state may follow
which, the phases the dashboard groups them in, and the response-time stages measured against the catalogue's
targets. Pure data and functions (DESIGN.md, "Idea lifecycle")."""

from __future__ import annotations

from shared.catalogue import Targets
from shared.events import IdeaState as S

MAIN_LINE: tuple[S, ...] = (
    S.SUBMITTED,
    S.ROUTED,
    S.ACKNOWLEDGED,
    S.IN_ASSESSMENT,
    S.ACCEPTED,
    S.IN_PILOT,
    S.IMPLEMENTED,
    S.SPREAD,
)
"""The main line, in order: the stages of the funnel."""
EXITS: tuple[S, ...] = (S.DECLINED, S.MERGED)
"""Where an officer may take any idea that is not final off the main line; final."""
WITHDRAWN: S = S.WITHDRAWN
"""The submitter took their idea back (only while it is open, :data:`WITHDRAWABLE`); final, counted apart."""
ALL_STATES: tuple[S, ...] = (*MAIN_LINE, *EXITS, WITHDRAWN)
TERMINAL = frozenset({*EXITS, WITHDRAWN})
NEEDS_REASON = frozenset(EXITS)
"""Moves that need a reason the submitter can read (and ``merged_into`` for merged)."""

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
    S.WITHDRAWN: (),
}

# The dashboard's three phases of an idea
OPEN_PHASE: tuple[S, ...] = (S.SUBMITTED, S.ROUTED, S.ACKNOWLEDGED, S.IN_ASSESSMENT)
PROGRESS_PHASE: tuple[S, ...] = (S.ACCEPTED, S.IN_PILOT, S.IMPLEMENTED, S.SPREAD)
CLOSED_PHASE: tuple[S, ...] = (*EXITS, WITHDRAWN)

AWAITING_ACKNOWLEDGEMENT = frozenset({S.SUBMITTED, S.ROUTED})
"""No officer has acknowledged the idea yet: its acknowledgement target is still running."""
EDITABLE = AWAITING_ACKNOWLEDGEMENT
"""The submitter may correct the title and description until an officer acknowledges the idea."""
WITHDRAWABLE = frozenset(OPEN_PHASE)
"""The submitter may withdraw an idea that is still open (nothing decided yet)."""

# Response-time stages: the states that show a stage was reached (a closed idea has been answered). A withdrawn
# idea reached no stage by an officer's hand: it is left out of the response times (the targets stop running).
RESPONSE_STAGES: dict[str, frozenset[S]] = {
    "acknowledged": frozenset(ALL_STATES) - AWAITING_ACKNOWLEDGEMENT - {WITHDRAWN},
    "assessed": frozenset(ALL_STATES) - AWAITING_ACKNOWLEDGEMENT - {S.ACKNOWLEDGED, WITHDRAWN},
    "decided": frozenset({S.ACCEPTED, S.IN_PILOT, S.IMPLEMENTED, S.SPREAD, *EXITS}),
}
STAGE_STATES: dict[str, frozenset[S]] = {
    "acknowledged": AWAITING_ACKNOWLEDGEMENT,
    "assessed": frozenset({*AWAITING_ACKNOWLEDGEMENT, S.ACKNOWLEDGED}),
    "decided": frozenset({*AWAITING_ACKNOWLEDGEMENT, S.ACKNOWLEDGED, S.IN_ASSESSMENT}),
}
"""While an idea is in one of these states, the stage's target is still running (a deadline may be warned of)."""


def allowed_transitions(current: S | str) -> tuple[S, ...]:
    """Where an idea may go from ``current``: forward along the lifecycle, or to declined/merged from any state
    that is not already final."""
    current = S(current)
    if current in TERMINAL:
        return ()
    return (*_FORWARD[current], *EXITS)


def target_days(targets: Targets, stage: str) -> int:
    """The catalogue's target for a response-time stage, in working days."""
    return {
        "acknowledged": targets.acknowledged_within_working_days,
        "assessed": targets.assessed_within_working_days,
        "decided": targets.decided_within_working_days,
    }[stage]

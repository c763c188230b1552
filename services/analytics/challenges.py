"""Challenges on the read side: what is kept of a ``ChallengeOpened``, whether a challenge is open, what the public
sees of it, and its figures. Pure: no I/O, no clock (``now`` is passed).

A challenge has no close event: it is open while ``now < closes_at`` (``shared/events.py``, ``ChallengeOpened``).
Its ideas are those whose ``IdeaSubmitted.challenge_id`` names it (the projection's ``idx:challenge:<id>``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.analytics.domain import IdeaSummary, parse_time
from shared.lifecycle import ALL_STATES

PUBLIC_FIELDS = (
    "challenge_id",
    "question",
    "description",
    "organisation",
    "audience",
    "areas",
    "opens_at",
    "closes_at",
    "language",
)
"""What anyone sees of a challenge: everything but who opened it (an officer's id is not for the public)."""


def challenge_record(envelope: dict[str, Any]) -> dict[str, Any]:
    """What the projection keeps of a ``ChallengeOpened`` event (as JSON): its data, and the event's id and time
    (the newest event of a challenge wins)."""
    return {**envelope["data"], "event_id": envelope["id"], "time": envelope["time"]}


def is_open(challenge: dict[str, Any], now: datetime) -> bool:
    """Open until its closing time; it closes by itself."""
    return now < parse_time(challenge["closes_at"])


def concerns(challenge: dict[str, Any], organisation: str) -> bool:
    """Whether a challenge is the organisation's: asked by it, or asking its staff (its audience names it, or is
    the whole group)."""
    audience = challenge.get("audience") or []
    return (
        challenge.get("organisation") == organisation
        or not audience
        or any(a.get("organisation") == organisation for a in audience)
    )


def public_challenge(challenge: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The challenge as the API and the pages show it to anyone, with ``open`` and its page's ``url``."""
    shown = {name: challenge.get(name) for name in PUBLIC_FIELDS}
    shown["audience"] = list(shown["audience"] or [])
    shown["areas"] = list(shown["areas"] or [])
    shown["open"] = is_open(challenge, now)
    shown["url"] = f"/challenges/{challenge['challenge_id']}"
    return shown


def challenge_figures(ideas: Iterable[IdeaSummary]) -> dict[str, Any]:
    """A challenge's figures: its ideas, the distinct people who answered (by pseudonym; an anonymous idea is
    counted apart, as no one), the organisations its ideas went to (ideas per organisation) and its ideas per
    state (every state of the lifecycle, withdrawn included)."""
    ideas = [idea for idea in ideas if idea.submitted]
    organisations: Counter[str] = Counter()
    for idea in ideas:
        organisations.update(idea.organisations)
    states = Counter(idea.state for idea in ideas if idea.state)
    return {
        "ideas": len(ideas),
        "participants": len({idea.submitter_key for idea in ideas if idea.submitter_key and not idea.anonymous}),
        "anonymous_ideas": sum(1 for idea in ideas if idea.anonymous or not idea.submitter_key),
        "organisations": dict(sorted(organisations.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_state": {state.value: states[state.value] for state in ALL_STATES},
    }

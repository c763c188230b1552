"""In-memory fakes of routing's ports (services/routing/handlers.py): routing's store over dicts with the same async
interface as the Redis one (services/routing/store.py), including the events it has handled. The publisher and
the clock are intake's fakes (tests/fakes/intake.py): nothing in them is intake's."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from tests.fakes.common import FakePublisher, FixedClock

__all__ = ["FakePublisher", "FakeRoutingStore", "FixedClock"]


class FakeRoutingStore:
    def __init__(self) -> None:
        self.ideas: dict[str, dict[str, str]] = {}
        """idea id -> {"title", "description", "rerouted"?}, as the Redis hash."""
        self.pending_feedback: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        self.handled_events: set[str] = set()

    async def remember_text(self, idea_id: str, title: str, description: str) -> None:
        await asyncio.sleep(0)
        self.ideas.setdefault(idea_id, {}).update(title=title, description=description)

    async def arrive_all(
        self, submissions: list[tuple[str, str, str, str, dict[str, list[str]]]]
    ) -> list[tuple[bool, dict[str, Any] | None, bool, tuple[str, str] | None]]:
        await asyncio.sleep(0)
        arrivals = []
        for idea_id, title, description, event_id, hints in submissions:
            done = event_id in self.handled_events
            fields = self.ideas.setdefault(idea_id, {})
            fields.setdefault("title", title)
            fields.setdefault("description", description)
            fields.update(submitted="1", hints=json.dumps(hints or {}))
            held = copy.deepcopy(self.pending_feedback.get(idea_id))
            overtaken = (fields["title"], fields["description"]) if "edited" in fields else None
            arrivals.append((done, held, "rerouted" in fields, overtaken))
        return arrivals

    async def edit(self, idea_id: str, title: str, description: str) -> tuple[bool, dict[str, list[str]], bool]:
        await asyncio.sleep(0)
        fields = self.ideas.setdefault(idea_id, {})
        fields.update(title=title, description=description, edited="1")
        return "submitted" in fields, json.loads(fields.get("hints", "{}")), "rerouted" in fields

    async def handled(self, event_id: str) -> bool:
        await asyncio.sleep(0)
        return event_id in self.handled_events

    async def mark_handled(self, event_id: str) -> None:
        await asyncio.sleep(0)
        self.handled_events.add(event_id)

    async def mark_all_handled(self, event_ids: list[str]) -> None:
        await asyncio.sleep(0)
        self.handled_events.update(event_ids)

    async def text(self, idea_id: str) -> tuple[str, str] | None:
        await asyncio.sleep(0)
        fields = self.ideas.get(idea_id, {})
        return (fields["title"], fields.get("description", "")) if "title" in fields else None

    async def mark_rerouted(self, idea_id: str) -> None:
        await asyncio.sleep(0)
        self.ideas.setdefault(idea_id, {})["rerouted"] = "1"

    async def hold_feedback(self, idea_id: str, entry: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.pending_feedback[idea_id] = copy.deepcopy(entry)

    async def save_feedback(self, idea_id: str, entry: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.feedback[idea_id] = copy.deepcopy(entry)
        self.pending_feedback.pop(idea_id, None)

    async def feedback_entries(self) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return sorted((copy.deepcopy(e) for e in self.feedback.values()), key=lambda e: (e["time"], e["idea_id"]))

    async def feedback_count(self) -> int:
        await asyncio.sleep(0)
        return len(self.feedback)

    async def clear(self) -> None:
        await asyncio.sleep(0)
        self.ideas.clear()
        self.pending_feedback.clear()
        self.feedback.clear()

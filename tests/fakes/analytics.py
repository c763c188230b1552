"""An in-memory fake of analytics' projection store (services/analytics/store.py): the same async interface and
the same rules over dicts, so that the handlers and the read model can be tested in milliseconds with no Redis.

Like the real store, an idea's timeline keeps the first entry of each event id (``HSETNX``), its summary is a pure
function of all its entries, and the summary and indexes are written only if no entry was added since they were
computed (the real store's compare-and-set script; here a check after a yield to the event loop, so that
concurrent records of one idea interleave as they could against Redis)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from services.analytics.domain import IdeaSummary, parse_time, summarise


class FakeProjectionStore:
    def __init__(self) -> None:
        self.events: dict[str, dict[str, str]] = defaultdict(dict)
        """idea id -> event id -> entry (JSON text, as Redis holds it)."""
        self.summary_documents: dict[str, str] = {}
        self.created: dict[str, float] = {}
        """idea id -> creation time (the score of the ``ideas`` sorted set)."""
        self.indexes: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.writes = 0
        """Summaries written (each refresh that won its compare-and-set)."""

    # --- writes ---

    async def record(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> int:
        added = sum(1 for entry in entries if self._add(idea_id, entry))
        await self.refresh(idea_id)
        return added

    async def add_entries(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        return sum(1 for idea_id, entry in entries if self._add(idea_id, entry))

    async def refresh(self, idea_id: str) -> IdeaSummary | None:
        while True:
            raw = list(self.events.get(idea_id, {}).values())
            if not raw:
                return None
            old_raw = self.summary_documents.get(idea_id)
            summary = summarise(idea_id, [json.loads(value) for value in raw])
            old = IdeaSummary.from_json(json.loads(old_raw)).index_keys() if old_raw else set()
            new = summary.index_keys()
            await asyncio.sleep(0)  # another record of the idea may run here, as between Redis round trips
            if len(self.events[idea_id]) != len(raw):
                continue  # an entry was added meanwhile: compute again
            self.summary_documents[idea_id] = json.dumps(summary.to_json(), sort_keys=True)
            self.created[idea_id] = parse_time(summary.created_at).timestamp()
            for key in old - new:
                self._leave(key, idea_id)
            for key in new:
                self.indexes[key].add(idea_id)
            self.writes += 1
            return summary

    async def wipe(self) -> int:
        count = len(self.events) + len(self.summary_documents) + (1 if self.created else 0)
        count += len(self.indexes)
        for held in (self.events, self.summary_documents, self.created, self.indexes):
            held.clear()
        return count

    # --- reads ---

    async def entries(self, idea_id: str) -> list[dict[str, Any]]:
        return [json.loads(value) for value in self.events.get(idea_id, {}).values()]

    async def idea_ids(
        self,
        *,
        organisation: str | None = None,
        unit: str | None = None,
        area: str | None = None,
        state: str | None = None,
    ) -> list[str]:
        ordered = self._newest_first(self.created)
        wanted = [("org", organisation), ("unit", unit), ("area", area), ("state", state)]
        sets = [self.indexes.get(key, set()) for key in wanted if key[1]]
        if not sets:
            return ordered
        members = set.intersection(*sets)
        return [idea_id for idea_id in ordered if idea_id in members]

    async def submitted_by(self, key: str) -> list[str]:
        members = self.indexes.get(("submitter", key), set())
        return self._newest_first({i: self.created[i] for i in members if i in self.created})

    async def summaries(self, idea_ids: list[str] | None = None, **narrow: str | None) -> list[IdeaSummary]:
        if idea_ids is None:
            idea_ids = await self.idea_ids(**narrow)
        return [
            IdeaSummary.from_json(json.loads(self.summary_documents[i]))
            for i in idea_ids
            if i in self.summary_documents
        ]

    async def counts(self) -> dict[str, int]:
        return {"ideas": len(self.created), "events": sum(len(events) for events in self.events.values())}

    # --- the dicts ---

    def _add(self, idea_id: str, entry: dict[str, Any]) -> bool:
        timeline = self.events[idea_id]
        if entry["event_id"] in timeline:
            return False
        timeline[entry["event_id"]] = json.dumps(entry)
        return True

    def _leave(self, key: tuple[str, str], idea_id: str) -> None:
        members = self.indexes.get(key)
        if members is not None:
            members.discard(idea_id)
            if not members:
                del self.indexes[key]  # Redis drops an empty set

    @staticmethod
    def _newest_first(scores: dict[str, float]) -> list[str]:
        """Like ``ZREVRANGE``: highest score first, ties by id, also descending."""
        return [idea_id for idea_id, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]

"""An in-memory fake of analytics' projection store (services/analytics/store.py): the same async interface and
the same rules over dicts, so that the handlers and the read model can be tested in milliseconds with no Redis.

Like the real store, an idea's timeline keeps the first entry of each event id (``HSETNX``), its summary is a pure
function of all its entries, counted entries (engagement, notifications) are absorbed into a submitted idea's
summary and anything else refolds it from all its entries, and the summary, new entries, people and indexes are
written only if nothing was added or written since they were read (the real store's compare-and-set script; here
a check after a yield to the event loop, so that concurrent records of one idea interleave as they could against
Redis). An erasure (``forget_person``) drops the person's sealed values from the ideas that hold them and refolds
those ideas, as the real store does."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.analytics.domain import (
    COUNTED_KINDS,
    IdeaSummary,
    absorb,
    absorbs,
    parse_time,
    people,
    scrubbed,
    sealed_owners,
    summarise,
)
from services.analytics.store import Changes


class FakeProjectionStore:
    def __init__(self) -> None:
        self.events: dict[str, dict[str, str]] = defaultdict(dict)
        """idea id -> event id -> entry (JSON text, as Redis holds it)."""
        self.summary_documents: dict[str, str] = {}
        self.created: dict[str, float] = {}
        """idea id -> creation time (the score of the ``ideas`` sorted set)."""
        self.indexes: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.people: dict[tuple[str, str], set[str]] = defaultdict(set)
        """(idea id, "supporters" or "followers") -> pseudonyms."""
        self.held: dict[str, set[str]] = defaultdict(set)
        """pseudonym -> the ideas whose events hold a sealed value of theirs (``person:<pseudonym>:ideas``)."""
        self.changes = 0
        """The version: summaries written and wipes."""
        self.changed: dict[str, int] = {}
        """idea id -> the version its summary was last written at (the ``changes`` sorted set)."""
        self.epoch = ""
        self.challenge_documents: dict[str, dict[str, Any]] = {}
        self.writes = 0
        """Summaries written (each fold that won its compare-and-set)."""
        self.refolded = 0
        """Entries read and folded by full refolds (the work that grows with an idea's history)."""

    # --- writes ---

    async def record_ideas(self, ideas: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, int]:
        return {idea_id: await self.record(idea_id, entries) for idea_id, entries in ideas.items()}

    async def record(self, idea_id: str, entries: Sequence[dict[str, Any]]) -> int:
        unique = list({entry["event_id"]: entry for entry in entries}.values())
        counted_only = all(entry["kind"] in COUNTED_KINDS for entry in unique)
        self._remember_people((idea_id, entry) for entry in unique)
        while True:
            read = self._read(idea_id)
            timeline = self.events.get(idea_id, {})
            new = [entry for entry in unique if entry["event_id"] not in timeline]
            supporters, followers = people(new)
            after = (
                len(self.people.get((idea_id, "supporters"), set()) | supporters),
                len(self.people.get((idea_id, "followers"), set()) | followers),
            )
            summary = IdeaSummary.from_json(json.loads(read[0])) if read[0] else None
            if counted_only and absorbs(summary, read[2], read[3]):
                if not new:
                    return 0
                folded = absorb(summary, new, supporters=after[0], followers=after[1])
                await asyncio.sleep(0)  # another record of the idea may run here, as between Redis round trips
                if self._write(idea_id, read, folded, new, (supporters, followers), move=False):
                    return len(new)
            elif await self._refold(idea_id, read, new) is not None:
                return len(new)

    async def add_entries(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        entries = list(entries)
        self._remember_people(entries)
        return sum(1 for idea_id, entry in entries if self._add(idea_id, entry))

    def _remember_people(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for idea_id, entry in entries:
            for owner in sealed_owners(entry):
                self.held[owner].add(idea_id)

    async def forget_person(self, pseudonym: str, *, keep_key: str | None = None) -> int:
        changed, kept = 0, set()
        for idea_id in sorted(self.held.pop(pseudonym, set())):
            timeline = self.events.get(idea_id, {})
            still_held = False
            rewritten = False
            for event_id, value in list(timeline.items()):
                entry = json.loads(value)
                after = scrubbed(entry, pseudonym, keep_key=keep_key)
                if after is not entry:
                    timeline[event_id] = json.dumps(after)
                    rewritten = True
                still_held = still_held or pseudonym in sealed_owners(after)
            if rewritten:
                await self.refresh(idea_id)
                changed += 1
            if still_held:
                kept.add(idea_id)
        if kept:
            self.held[pseudonym] = kept
        else:
            self.indexes.pop(("submitter", pseudonym), None)
        return changed

    async def refresh(self, idea_id: str) -> IdeaSummary | None:
        while True:
            read = self._read(idea_id)
            if not read[1]:
                return None
            if summary := await self._refold(idea_id, read, []):
                return summary

    async def _refold(self, idea_id: str, read: tuple, new: list[dict[str, Any]]) -> IdeaSummary | None:
        everything = [json.loads(value) for value in self.events.get(idea_id, {}).values()] + new
        if not everything:
            return None
        self.refolded += len(everything)
        summary = summarise(idea_id, everything)
        await asyncio.sleep(0)  # another record of the idea may run here, as between Redis round trips
        return summary if self._write(idea_id, read, summary, new, people(everything), move=True) else None

    def _read(self, idea_id: str) -> tuple[str, int, int, int]:
        return (
            self.summary_documents.get(idea_id, ""),
            len(self.events.get(idea_id, {})),
            len(self.people.get((idea_id, "supporters"), ())),
            len(self.people.get((idea_id, "followers"), ())),
        )

    def _write(
        self,
        idea_id: str,
        read: tuple,
        summary: IdeaSummary,
        new: list[dict[str, Any]],
        people_to_add: tuple[set[str], set[str]],
        *,
        move: bool,
    ) -> bool:
        """The compare-and-set: nothing of the idea changed since ``read``."""
        if self._read(idea_id) != read:
            return False
        old_raw = self.summary_documents.get(idea_id)
        for entry in new:
            self._add(idea_id, entry)
        for kind, added in zip(("supporters", "followers"), people_to_add, strict=True):
            if added:
                self.people[idea_id, kind] |= added
        self.summary_documents[idea_id] = json.dumps(summary.to_json(), sort_keys=True)
        self.changes += 1
        self.changed[idea_id] = self.changes
        self.writes += 1
        if move:
            self.created[idea_id] = parse_time(summary.created_at).timestamp()
            old = IdeaSummary.from_json(json.loads(old_raw)).index_keys() if old_raw else set()
            new_keys = summary.index_keys()
            for key in old - new_keys:
                self._leave(key, idea_id)
            for key in new_keys:
                self.indexes[key].add(idea_id)
        return True

    async def wipe(self) -> int:
        count = len(self.events) + len(self.summary_documents) + (1 if self.created else 0)
        count += len(self.indexes)
        count += len(self.people) + len(self.held)
        count += len(self.challenge_documents)
        for held in (self.events, self.summary_documents, self.created, self.indexes, self.people, self.held):
            held.clear()
        self.changed.clear()
        self.challenge_documents.clear()
        self.changes += 1
        self.epoch = uuid.uuid4().hex
        return count

    async def record_challenge(self, challenge: dict[str, Any]) -> bool:
        known = self.challenge_documents.get(challenge["challenge_id"])
        if known is not None and (parse_time(known["time"]), known["event_id"]) >= (
            parse_time(challenge["time"]),
            challenge["event_id"],
        ):
            return False
        self.challenge_documents[challenge["challenge_id"]] = json.loads(json.dumps(challenge))
        self.changes += 1
        return True

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
        challenge: str | None = None,
        assignee: str | None = None,
        unassigned: str | None = None,
    ) -> list[str]:
        ordered = self._newest_first(self.created)
        wanted = [
            ("org", organisation),
            ("unit", unit),
            ("area", area),
            ("state", state),
            ("challenge", challenge),
            ("assignee", assignee),
        ]
        sets = [self.indexes.get(key, set()) for key in wanted if key[1]]
        members = set.intersection(*sets) if sets else None
        excluded = self.indexes.get(("assigned", unassigned), set()) if unassigned else set()
        return [i for i in ordered if (members is None or i in members) and i not in excluded]

    async def index_sizes(self, dimension: str, values: list[str]) -> dict[str, int]:
        return {value: len(self.indexes.get((dimension, value), ())) for value in values}

    async def submitted_by(self, pseudonym: str) -> list[str]:
        members = self.indexes.get(("submitter", pseudonym), set())
        return self._newest_first({i: self.created[i] for i in members if i in self.created})

    async def version(self) -> str:
        return str(self.changes)

    async def summaries(self, idea_ids: list[str] | None = None, **narrow: str | None) -> list[IdeaSummary]:
        if idea_ids is None:
            idea_ids = await self.idea_ids(**narrow)
        return [
            IdeaSummary.from_json(json.loads(self.summary_documents[i]))
            for i in idea_ids
            if i in self.summary_documents
        ]

    async def summary_texts(self, idea_ids: list[str]) -> list[str]:
        return [self.summary_documents[i] for i in idea_ids if i in self.summary_documents]

    async def summary(self, idea_id: str) -> IdeaSummary | None:
        raw = self.summary_documents.get(idea_id)
        return IdeaSummary.from_json(json.loads(raw)) if raw else None

    async def people_of(self, idea_id: str) -> tuple[set[str], set[str]]:
        return set(self.people.get((idea_id, "supporters"), ())), set(self.people.get((idea_id, "followers"), ()))

    async def changes_since(self, seen: int) -> Changes:
        changed = sorted((version, idea_id) for idea_id, version in self.changed.items() if version > seen)
        return Changes(self.epoch, [idea_id for _, idea_id in changed], max((v for v, _ in changed), default=seen))

    async def challenge(self, challenge_id: str) -> dict[str, Any] | None:
        return self.challenge_documents.get(challenge_id)

    async def challenges(self) -> list[dict[str, Any]]:
        return sorted(
            self.challenge_documents.values(),
            key=lambda c: (parse_time(c["opens_at"]), c["challenge_id"]),
            reverse=True,
        )

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

"""In-memory fakes of intake's ports (services/intake/handlers.py): a publisher that records what it was given per
topic, intake's store over dicts with the same async interface and the same rules as the Redis one
(services/intake/store.py and its Lua scripts), and a clock that stands still.

Every store method yields to the event loop once before it reads or writes, as a Redis round trip would, so that
concurrent use cases interleave as they can against Redis; each method is atomic after that yield, as each Lua
script and command is."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from services.intake.store import IdeaRecord, IdempotencyMismatch
from shared.events import IdeaState


class FakeIntakeStore:
    """services.intake.store.IntakeStore over dicts. ``ideas`` holds each idea's hash as Redis would."""

    def __init__(self) -> None:
        self.ideas: dict[str, dict[str, str]] = {}
        self.supporters: dict[str, set[str]] = defaultdict(set)
        self.idempotency: dict[str, dict[str, Any]] = {}
        """Idempotency-Key -> {"status", "fingerprint", "answer"?}; ``ttls`` holds the expiry asked for."""
        self.ttls: dict[str, int] = {}
        self.rate: dict[tuple[str, int], int] = defaultdict(int)
        self.minute = 0
        """The rate limit's current window (a test moves it on)."""

    # --- ideas -----------------------------------------------------------------------------------------------

    async def idea(self, idea_id: str) -> IdeaRecord | None:
        await asyncio.sleep(0)
        fields = self.ideas.get(idea_id)
        if not fields or "state" not in fields:
            return None
        organisations = frozenset(json.loads(fields.get("organisations", "[]")))
        return IdeaRecord(idea_id, IdeaState(fields["state"]), organisations)

    async def record_submitted(self, idea_id: str, time_iso: str) -> None:
        await asyncio.sleep(0)
        fields = self.ideas.setdefault(idea_id, {})
        if "state" not in fields:
            fields.update(state=IdeaState.SUBMITTED.value, state_time=time_iso)

    async def record_routed(self, idea_id: str, organisations: list[str], time_iso: str) -> None:
        await asyncio.sleep(0)
        fields = self.ideas.setdefault(idea_id, {})
        if fields.get("routed_time") is None or fields["routed_time"] <= time_iso:
            fields.update(organisations=json.dumps(sorted(organisations)), routed_time=time_iso)
        fields.setdefault("state", IdeaState.ROUTED.value)
        fields.setdefault("state_time", time_iso)
        if fields["state"] == IdeaState.SUBMITTED.value:
            fields["state"] = IdeaState.ROUTED.value

    async def record_state(self, idea_id: str, state: IdeaState, time_iso: str) -> None:
        await asyncio.sleep(0)
        fields = self.ideas.setdefault(idea_id, {})
        if fields.get("state_time") is None or fields["state_time"] <= time_iso:
            fields.update(state=state.value, state_time=time_iso)

    async def move(self, idea_id: str, expected: IdeaState, target: IdeaState, time_iso: str) -> bool:
        await asyncio.sleep(0)
        fields = self.ideas.get(idea_id)
        if fields is None or fields.get("state") != expected.value:
            return False
        fields.update(state=target.value, state_time=time_iso)
        return True

    async def forget_ideas(self) -> int:
        await asyncio.sleep(0)
        forgotten = len(self.ideas) + sum(1 for people in self.supporters.values() if people)
        self.ideas.clear()
        self.supporters.clear()
        return forgotten

    # --- supports -------------------------------------------------------------------------------------------

    async def add_support(self, idea_id: str, person: str) -> bool:
        await asyncio.sleep(0)
        if person in self.supporters[idea_id]:
            return False
        self.supporters[idea_id].add(person)
        return True

    async def remove_support(self, idea_id: str, person: str) -> None:
        await asyncio.sleep(0)
        self.supporters[idea_id].discard(person)

    # --- Idempotency-Key ------------------------------------------------------------------------------------

    async def reserve(self, idempotency_key: str, fingerprint: str, ttl_s: int) -> tuple[bool, dict | None]:
        for _ in range(1000):  # the real store waits up to 30 s for the first request to finish
            await asyncio.sleep(0)
            stored = self.idempotency.get(idempotency_key)
            if stored is None:
                self.idempotency[idempotency_key] = {"status": "pending", "fingerprint": fingerprint}
                self.ttls[idempotency_key] = ttl_s
                return True, None
            if stored["fingerprint"] != fingerprint:
                raise IdempotencyMismatch()
            if stored["status"] == "done":
                return False, stored["answer"]
        raise TimeoutError("the first request with this Idempotency-Key did not finish")

    async def complete(self, idempotency_key: str, fingerprint: str, answer: dict, ttl_s: int) -> None:
        await asyncio.sleep(0)
        self.idempotency[idempotency_key] = {"status": "done", "fingerprint": fingerprint, "answer": answer}
        self.ttls[idempotency_key] = ttl_s

    async def release(self, idempotency_key: str) -> None:
        await asyncio.sleep(0)
        self.idempotency.pop(idempotency_key, None)
        self.ttls.pop(idempotency_key, None)

    # --- rate limit -----------------------------------------------------------------------------------------

    async def hit(self, client: str, limit: int) -> int | None:
        await asyncio.sleep(0)
        self.rate[(client, self.minute)] += 1
        return 60 if self.rate[(client, self.minute)] > limit else None

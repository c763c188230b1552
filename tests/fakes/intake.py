"""In-memory fakes of intake's ports (services/intake/handlers.py, services/intake/people.py): intake's store over
dicts with the same async interface and the same rules as the Redis one
(services/intake/store.py and its Lua scripts), and the history the export reads (the publisher, the clock and the
keyring are every service's: tests/fakes/common.py).

Every store method yields to the event loop once before it reads or writes, as a Redis round trip would, so that
concurrent use cases interleave as they can against Redis; each method is atomic after that yield, as each Lua
script and command is."""

from __future__ import annotations

import asyncio
import json
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError

from services.intake.errors import IdempotencyPending
from services.intake.store import IdeaRecord, IdempotencyMismatch, Reservation
from shared.events import IdeaState


class FakeIntakeStore:
    """services.intake.store.IntakeStore over dicts. ``ideas`` holds each idea's hash as Redis would."""

    def __init__(self) -> None:
        self.ideas: dict[str, dict[str, str]] = {}
        self.supporters: dict[str, set[str]] = defaultdict(set)
        """idea id -> the pseudonyms of its supporters; ``supported_by`` is each pseudonym's index of ideas."""
        self.supported_by: dict[str, set[str]] = defaultdict(set)
        self.idempotency: dict[str, dict[str, Any]] = {}
        """(scope pseudonym, Idempotency-Key) -> {"status", "fingerprint", "answer", "lease_until"}; ``ttls`` holds
        the expiry asked for, ``pointers`` each offered idea id's key, ``records_of`` each named idea's submitter's
        (pseudonym's) keys."""
        self.records_of: dict[str, set[str]] = defaultdict(set)
        self.ttls: dict[str, int] = {}
        self.pointers: dict[str, str] = {}
        self.counts: dict[tuple[str, int, int], int] = defaultdict(int)
        self.now = 0.0
        """Seconds on the store's clock (Redis's TIME): a test moves it on to end leases and windows."""
        self.failing: set[str] = set()
        """Methods that fail as Redis does when it is away (``{"record_submitted", "complete"}``)."""

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
        self._check("record_submitted")
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
        forgotten += sum(1 for ideas in self.supported_by.values() if ideas)
        self.ideas.clear()
        self.supporters.clear()
        self.supported_by.clear()
        return forgotten

    # --- supports -------------------------------------------------------------------------------------------

    async def add_support(self, idea_id: str, pseudonym: str) -> bool:
        await asyncio.sleep(0)
        self.supported_by[pseudonym].add(idea_id)
        if pseudonym in self.supporters[idea_id]:
            return False
        self.supporters[idea_id].add(pseudonym)
        return True

    async def remove_support(self, idea_id: str, pseudonym: str) -> None:
        await asyncio.sleep(0)
        self.supporters[idea_id].discard(pseudonym)
        self.supported_by[pseudonym].discard(idea_id)

    # --- a person's erasure ---------------------------------------------------------------------------------

    async def forget_person(self, pseudonym: str) -> int:
        await asyncio.sleep(0)
        forgotten = 0
        for idea_id in self.supported_by.pop(pseudonym, set()):
            if pseudonym in self.supporters[idea_id]:
                self.supporters[idea_id].discard(pseudonym)
                forgotten += 1
        for key in self.records_of.pop(pseudonym, set()):
            record = self.idempotency.pop(key, None)
            self.ttls.pop(key, None)
            if record is not None:
                self.pointers.pop(record["answer"].get("idea_id", ""), None)
                forgotten += 1
        return forgotten

    # --- Idempotency-Key ------------------------------------------------------------------------------------

    async def reserve(
        self,
        idempotency_key: str,
        fingerprint: str,
        ttl_s: int,
        *,
        answer: dict | None = None,
        lease_s: float = 10.0,
        person: str | None = None,
    ) -> Reservation:
        await asyncio.sleep(0)
        answer = answer or {}
        stored = self.idempotency.get(idempotency_key)
        if stored is None:
            if person:
                self.records_of[person].add(idempotency_key)
            self.idempotency[idempotency_key] = {
                "status": "pending",
                "fingerprint": fingerprint,
                "answer": answer,
                "lease_until": self.now + lease_s,
            }
            self.ttls[idempotency_key] = ttl_s
            self.pointers[answer.get("idea_id", "")] = idempotency_key
            return Reservation(first=True, answer=answer)
        if stored["fingerprint"] != fingerprint:
            raise IdempotencyMismatch()
        if stored["status"] == "done":
            return Reservation(first=False, answer=stored["answer"])
        if stored["lease_until"] > self.now:
            raise IdempotencyPending(max(1, math.ceil(stored["lease_until"] - self.now)))
        stored["lease_until"] = self.now + lease_s
        return Reservation(first=True, answer=stored["answer"])

    async def complete(self, idempotency_key: str) -> None:
        await asyncio.sleep(0)
        self._check("complete")
        if self.idempotency.get(idempotency_key, {}).get("status") == "pending":
            self.idempotency[idempotency_key]["status"] = "done"

    async def release(self, idempotency_key: str) -> None:
        await asyncio.sleep(0)
        if self.idempotency.get(idempotency_key, {}).get("status") == "pending":
            self.idempotency[idempotency_key]["lease_until"] = 0.0

    async def settle(self, idea_id: str) -> bool:
        await asyncio.sleep(0)
        key = self.pointers.get(idea_id)
        if key is None or self.idempotency.get(key, {}).get("status") != "pending":
            return False
        self.idempotency[key]["status"] = "done"
        return True

    def expire(self, idempotency_key: str) -> None:
        """The key's record expires (its TTL ran out, or Redis was lost)."""
        self.idempotency.pop(idempotency_key, None)
        self.ttls.pop(idempotency_key, None)

    def _check(self, method: str) -> None:
        if method in self.failing:
            raise RedisConnectionError(f"fake Redis outage in {method}")

    # --- the mail door's counters ---------------------------------------------------------------------------

    async def count(self, name: str, limit: int, window_s: int) -> int | None:
        await asyncio.sleep(0)
        self.counts[(name, window_s, int(self.now // window_s))] += 1
        if self.counts[(name, window_s, int(self.now // window_s))] > limit:
            return max(1, math.ceil((int(self.now // window_s) + 1) * window_s - self.now))
        return None


class FakeHistory:
    """The event log as the export reads it (``shared/replay.py read_batches``): the records of what a
    :class:`tests.fakes.common.FakePublisher` published (and any ``tombstone``), per topic, in batches.
    ``unavailable`` makes it fail as an unreachable Kafka does; ``slow_s`` makes each batch take that long."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        self.tombstones: list[tuple[str, str]] = []
        self.unavailable = False
        self.slow_s = 0.0
        self.read: list[list[str]] = []

    def tombstone(self, topic: str, key: str) -> None:
        self.tombstones.append((topic, key))

    async def __call__(self, topics: Sequence[str]) -> AsyncIterator[list[Any]]:
        self.read.append(list(topics))
        if self.unavailable:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]")
        for topic in topics:
            await asyncio.sleep(self.slow_s)
            records = [
                FakeRecord(topic, envelope.subject.encode(), envelope.to_bytes())
                for envelope in self.publisher.on(topic)
            ]
            records += [FakeRecord(topic, key.encode(), None) for t, key in self.tombstones if t == topic]
            if records:
                yield records


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    key: bytes | None
    value: bytes | None

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
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError

from services.intake.errors import IdempotencyPending
from services.intake.following import follow
from services.intake.handlers import Intake
from services.intake.store import ANONYMOUS, IdeaRecord, IdeaText, IdempotencyMismatch, Reservation
from shared.catalogue import load_catalogue
from shared.events import ChallengeOpened, Envelope, IdeaRouted, IdeaState, RoutingTarget
from shared.similarity import Suggestion
from shared.topics import Topics
from tests.fakes.common import FakeKeyring, FakePublisher, FixedClock


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
        self.submitted_by: dict[str, set[str]] = defaultdict(set)
        """pseudonym -> the ideas they submitted (their erasure unlinks them)."""
        self.challenges_by_id: dict[str, ChallengeOpened] = {}
        self.changes: dict[str, int] = {}
        """idea id -> the number of its last change of text or state (``change_number`` the last of all)."""
        self.change_number = 0

    # --- ideas -----------------------------------------------------------------------------------------------

    def _changed(self, idea_id: str) -> None:
        self.change_number += 1
        self.changes[idea_id] = self.change_number

    async def idea(self, idea_id: str) -> IdeaRecord | None:
        await asyncio.sleep(0)
        return IdeaRecord.of(idea_id, self.ideas.get(idea_id, {}))

    async def record_submitted(
        self,
        idea_id: str,
        time_iso: str,
        *,
        title: str | None = None,
        description: str = "",
        submitter: str | None = None,
        challenge_id: str | None = None,
    ) -> None:
        await asyncio.sleep(0)
        self._check("record_submitted")
        fields = self.ideas.setdefault(idea_id, {})
        if "state" not in fields:
            fields.update(state=IdeaState.SUBMITTED.value, state_time=time_iso)
        if title is None:
            return
        await self.record_text(idea_id, title, description, time_iso)
        fields["submitter"] = submitter or ANONYMOUS
        if challenge_id:
            fields["challenge"] = challenge_id
        if submitter and submitter != ANONYMOUS:
            self.submitted_by[submitter].add(idea_id)

    async def record_text(self, idea_id: str, title: str, description: str, time_iso: str) -> bool:
        await asyncio.sleep(0)
        fields = self.ideas.setdefault(idea_id, {})
        if fields.get("text_time") is not None and fields["text_time"] > time_iso:
            return False
        fields.update(title=title, description=description, text_time=time_iso)
        self._changed(idea_id)
        return True

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
            self._changed(idea_id)

    async def move(self, idea_id: str, expected: IdeaState, target: IdeaState, time_iso: str) -> bool:
        await asyncio.sleep(0)
        fields = self.ideas.get(idea_id)
        if fields is None or fields.get("state") != expected.value:
            return False
        fields.update(state=target.value, state_time=time_iso)
        self._changed(idea_id)
        return True

    async def record_assignment(self, idea_id: str, organisation: str, assignee: str | None, time_iso: str) -> bool:
        await asyncio.sleep(0)
        fields = self.ideas.setdefault(idea_id, {})
        at = fields.get(f"assigned_time:{organisation}")
        if at is not None and at > time_iso:
            return False
        fields.update({f"assignee:{organisation}": assignee or "", f"assigned_time:{organisation}": time_iso})
        return True

    async def record_merge(self, idea_id: str, merged_into: str) -> int:
        await asyncio.sleep(0)
        self.ideas.setdefault(idea_id, {})["merged_into"] = merged_into
        carried = 0
        for pseudonym in list(self.supporters[idea_id]):
            carried += await self.add_support(merged_into, pseudonym)
        return carried

    async def changed_texts(self, after: int) -> tuple[int, list[str]]:
        await asyncio.sleep(0)
        changed = sorted((n, idea_id) for idea_id, n in self.changes.items() if n > after)
        return (changed[-1][0] if changed else after), [idea_id for _, idea_id in changed]

    async def texts(self, idea_ids: Iterable[str]) -> list[IdeaText]:
        await asyncio.sleep(0)
        found = []
        for idea_id in idea_ids:
            fields = self.ideas.get(idea_id, {})
            state = IdeaState(fields["state"]) if "state" in fields else None
            found.append(IdeaText(idea_id, state, fields.get("title", ""), fields.get("description", "")))
        return found

    async def forget_ideas(self) -> int:
        await asyncio.sleep(0)
        forgotten = len(self.ideas) + sum(1 for people in self.supporters.values() if people)
        forgotten += sum(1 for ideas in self.supported_by.values() if ideas)
        forgotten += sum(1 for ideas in self.submitted_by.values() if ideas) + len(self.challenges_by_id)
        self.ideas.clear()
        self.supporters.clear()
        self.supported_by.clear()
        self.submitted_by.clear()
        self.challenges_by_id.clear()
        self.changes.clear()
        return forgotten

    # --- challenges -----------------------------------------------------------------------------------------

    async def record_challenge(self, challenge: ChallengeOpened) -> None:
        await asyncio.sleep(0)
        self.challenges_by_id[challenge.challenge_id] = challenge

    async def challenge(self, challenge_id: str) -> ChallengeOpened | None:
        await asyncio.sleep(0)
        return self.challenges_by_id.get(challenge_id)

    async def challenges(self) -> list[ChallengeOpened]:
        await asyncio.sleep(0)
        return list(self.challenges_by_id.values())

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
        for idea_id in self.submitted_by.pop(pseudonym, set()):
            if self.ideas.get(idea_id, {}).get("submitter") == pseudonym:
                self.ideas[idea_id]["submitter"] = ANONYMOUS
                forgotten += 1
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

    async def reserved(self, idempotency_key: str) -> bool:
        await asyncio.sleep(0)
        return idempotency_key in self.idempotency

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


class FakeSimilarityIndex:
    """``shared.similarity.SimilarityIndex`` as a test directs it: it holds what it was given (``ideas``) and
    suggests what the test put in ``answers`` (title -> suggestions) among the ideas it holds, so that the tests of
    intake's use of the index do not depend on the engine's scores."""

    def __init__(self) -> None:
        self.ideas: dict[str, tuple[str, str]] = {}
        self.answers: dict[str, list[Suggestion]] = {}
        self.asked: list[tuple[str, str]] = []

    def add(self, idea_id: str, title: str, description: str) -> None:
        self.ideas[idea_id] = (title, description)

    def remove(self, idea_id: str) -> None:
        del self.ideas[idea_id]  # as strict as can be: removing an idea the index does not hold is a test failure

    def __contains__(self, idea_id: object) -> bool:
        return idea_id in self.ideas

    def __len__(self) -> int:
        return len(self.ideas)

    def suggest(self, title: str, description: str, *, exclude: Iterable[str] = (), limit: int = 3) -> list[Suggestion]:
        self.asked.append((title, description))
        skip = set(exclude)
        held = [s for s in self.answers.get(title, []) if s.idea_id in self.ideas and s.idea_id not in skip]
        return held[:limit]


@dataclass
class IntakeOnFakes:
    """Intake's use cases over in-memory fakes of every port, with a fixed clock."""

    publisher: FakePublisher = field(default_factory=FakePublisher)
    store: FakeIntakeStore = field(default_factory=FakeIntakeStore)
    clock: FixedClock = field(default_factory=FixedClock)
    keyring: FakeKeyring = field(default_factory=FakeKeyring)

    def __post_init__(self) -> None:
        self.topics = Topics()
        self.intake = Intake(
            self.publisher,
            self.store,
            load_catalogue(),
            self.keyring,
            topics=self.topics,
            public_base_url="http://status.test",
            idempotency_ttl_s=3600,
            clock=self.clock,
        )

    async def follow(self, payload: Any) -> None:
        """What intake's subscribers do with an event of another service (or its own) that they follow."""
        self.clock.advance(seconds=1)
        await follow(self.store, self.keyring, Envelope.wrap(payload, source="/tests", time=self.clock()))

    async def routed(self, idea_id: str, *organisations: str) -> None:
        targets = tuple(RoutingTarget(organisation=org) for org in organisations)
        await self.follow(IdeaRouted(idea_id=idea_id, organisations=targets, reason="test"))

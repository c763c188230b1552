"""The suite's load: ideas at a steady open-loop rate through intake's JSON API, each by its own person with their
own token, each with an Idempotency-Key that its retries keep (503, 409 while a first attempt holds the key, 429,
a refused or dropped connection), honouring Retry-After up to a cap. Every 202 is recorded: what the platform has
acknowledged is what the invariants hold it to."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import httpx

from bench.httpload import sample_ideas
from chaos.issuer import Person

RETRIED = frozenset({409, 429, 500, 502, 503, 504})


@dataclass
class Submission:
    person: Person
    body: dict
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    idea_id: str | None = None
    accepted_at: float | None = None
    attempts: int = 0
    refusal: str | None = None
    """Why the client gave up (a 4xx other than the retried ones, or its patience ran out)."""


@dataclass
class LoadState:
    """What the progress line and the scenario's trigger read while the load runs."""

    total: int
    sent: int = 0
    accepted: int = 0
    unavailable: int = 0  # 503 answers
    connection_errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    last_accepted_at: float = 0.0
    submissions: list[Submission] = field(default_factory=list)
    done: bool = False
    sending_s: float | None = None
    """How long sending every first attempt took: at the rate asked, ``total / rate``; longer when the
    generator (it shares the cores) fell behind."""

    @property
    def achieved_rate(self) -> float | None:
        return self.total / self.sending_s if self.sending_s else None

    @property
    def gave_up(self) -> list[Submission]:
        return [s for s in self.submissions if s.idea_id is None and s.refusal]

    def accepted_ideas(self) -> dict[str, Person]:
        return {s.idea_id: s.person for s in self.submissions if s.idea_id is not None}


def retry_delay(answer: httpx.Response | None, cap_s: float) -> float:
    """Retry-After (seconds) when given, else half a second; never above ``cap_s``."""
    try:
        wanted = float(answer.headers.get("retry-after", "0.5")) if answer is not None else 0.5
    except ValueError:
        wanted = 0.5
    return max(0.05, min(wanted, cap_s))


class Load:
    def __init__(
        self, url: str, tokens: dict[int, str], *, ideas: int, rate: float, retry_cap_s: float, patience_s: float
    ) -> None:
        self.url = url.rstrip("/") + "/api/v1/ideas"
        self.rate, self.retry_cap_s, self.patience_s = rate, retry_cap_s, patience_s
        self.tokens = tokens
        texts = sample_ideas()
        self.state = LoadState(total=ideas)
        for i in range(ideas):
            text = texts[i % len(texts)]
            body = {"title": text["title"], "description": text["description"]}
            self.state.submissions.append(Submission(Person(i + 1), body))

    async def run(self) -> LoadState:
        # httpcore scans its whole pool for every request: with hundreds of connections (a storm of retries while
        # intake is down) the client, not the platform, used the CPU. 64 connections carry 40/s at 1.5 s each.
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=httpx.Timeout(20, connect=3), limits=limits) as http:
            start = time.monotonic()
            tasks = []
            for i, submission in enumerate(self.state.submissions):
                await asyncio.sleep(max(0.0, start + i / self.rate - time.monotonic()))
                tasks.append(asyncio.create_task(self.submit(http, submission)))
            self.state.sending_s = time.monotonic() - start
            await asyncio.gather(*tasks)
        self.state.done = True
        return self.state

    async def submit(self, http: httpx.AsyncClient, submission: Submission) -> None:
        state = self.state
        state.sent += 1
        give_up_at = time.monotonic() + self.patience_s
        headers = {
            "Authorization": f"Bearer {self.tokens[submission.person.number]}",
            "Idempotency-Key": submission.key,
        }
        while True:
            submission.attempts += 1
            answer: httpx.Response | None = None
            try:
                answer = await http.post(self.url, json=submission.body, headers=headers)
            except httpx.TransportError:
                state.connection_errors += 1
            if answer is not None:
                state.statuses[answer.status_code] = state.statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 503:
                    state.unavailable += 1
                if answer.status_code == 202:
                    submission.idea_id = answer.json()["idea_id"]
                    submission.accepted_at = state.last_accepted_at = time.monotonic()
                    state.accepted += 1
                    return
                if answer.status_code not in RETRIED:
                    submission.refusal = f"{answer.status_code}: {answer.text[:200]}"
                    return
            if time.monotonic() >= give_up_at:
                submission.refusal = f"no 202 within {self.patience_s:.0f} s ({submission.attempts} attempts)"
                return
            await asyncio.sleep(retry_delay(answer, self.retry_cap_s))

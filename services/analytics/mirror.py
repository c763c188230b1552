"""What every replica keeps in memory of every idea's text: the search index (``search.py``) and the similar-ideas
index (``shared/similarity.py``), caught up from the projection before each use.

The projection in Redis is written by whichever replica consumed an event (a consumer group shares the partitions
out), so a replica cannot keep its indexes by its own handlers alone. Instead every summary written gets the next
``version`` in the projection's ``changes`` sorted set (``store.py``): before a search or a suggestion the mirror
reads the ideas changed since the version it has seen (one round trip; none changed: nothing more) and re-indexes
those whose text or state changed. A wipe (the rebuild) changes the projection's ``epoch``: the mirror then starts
again from nothing. A background task keeps it current between requests (``ANALYTICS_INDEX_SYNC_INTERVAL_S``) and
loads every idea at start, in a worker thread when there are many.

The similar-ideas index holds every idea that is not merged or withdrawn (final: a suggestion of those would lead
nowhere); declined ideas stay (it is worth knowing that the same idea was declined). The search index holds every
idea.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from services.analytics.search import SearchIndex
from services.analytics.store import Projections
from shared.events import IdeaState

NOT_SUGGESTED = frozenset({IdeaState.MERGED.value, IdeaState.WITHDRAWN.value})
"""Final states whose ideas are never suggested as similar."""
_IN_A_THREAD = 200
"""Re-indexing more ideas than this at once runs in a worker thread (the first load), so requests go on."""
_CHUNK = 250
"""Summaries read from Redis (one ``MGET``) and indexed at a time."""
_PAUSE_S = 0.01
"""Between two chunks of a large load, the indexing thread rests: requests get the interpreter meanwhile."""


class Similar(Protocol):
    """``shared.similarity.SimilarityIndex`` as the mirror uses it."""

    def add(self, idea_id: str, title: str, description: str) -> None: ...

    def remove(self, idea_id: str) -> None: ...

    def __contains__(self, idea_id: object) -> bool: ...

    def suggest(self, title: str, description: str, *, exclude: Iterable[str] = (), limit: int = 3) -> list[Any]: ...


class NoSuggestions:
    """A similar-ideas index that never suggests anything: the read model's when it is given none (the figures'
    tools and tests that do not look at suggestions); the service uses ``shared.similarity.SimilarityIndex``."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def add(self, idea_id: str, title: str, description: str) -> None:
        self._ids.add(idea_id)

    def remove(self, idea_id: str) -> None:
        self._ids.discard(idea_id)

    def __contains__(self, idea_id: object) -> bool:
        return idea_id in self._ids

    def suggest(self, title: str, description: str, *, exclude: Iterable[str] = (), limit: int = 3) -> list[Any]:
        return []


@dataclass(frozen=True)
class Known:
    """What the mirror knows of one idea: enough to show a suggestion, and to tell whether to re-index it."""

    title: str
    description: str
    state: str | None

    @property
    def suggested(self) -> bool:
        return self.state not in NOT_SUGGESTED


class IdeaMirror:
    def __init__(self, store: Projections, similar: Similar, logger: logging.Logger | None = None) -> None:
        self.store = store
        self.similar = similar
        self.search_index = SearchIndex()
        self.known: dict[str, Known] = {}
        self.logger = logger or logging.getLogger("analytics")
        self._seen = 0
        self._epoch: str | None = None
        self._lock = asyncio.Lock()
        self.reindexed = 0
        """Ideas (re-)indexed since the start: for the tests of the bound."""

    async def search(self, q: str) -> set[str]:
        """The ids of the ideas whose text matches every content word of ``q`` (``search.py``)."""
        async with self._current():
            return self.search_index.search(q)

    async def matching(self, q: str | None) -> set[str] | frozenset[str]:
        """The submitted ideas (those with a text) that match ``q``, or every one without ``q``."""
        async with self._current():
            return self.search_index.search(q) if q else frozenset(self.known)

    async def similar_to(
        self, title: str, description: str, *, exclude: Iterable[str] = (), limit: int = 3
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` ideas that say the same as this text (above the engine's threshold), best first:
        ``{"idea_id", "title", "state", "score", "shared_words", "url"}``."""
        async with self._current():
            found = self.similar.suggest(title, description, exclude=tuple(exclude), limit=limit)
            return [self._shown(suggestion) for suggestion in found if suggestion.idea_id in self.known]

    async def similar_to_each(
        self, texts: Iterable[tuple[str, str, str]], *, limit: int = 3
    ) -> dict[str, list[dict[str, Any]]]:
        """For each ``(idea id, title, description)``, the ideas that say the same (the idea itself left out): one
        catching up for them all (the inbox's page)."""
        async with self._current():
            return {
                idea_id: [
                    self._shown(s)
                    for s in self.similar.suggest(title, description, exclude=(idea_id,), limit=limit)
                    if s.idea_id in self.known
                ]
                for idea_id, title, description in texts
            }

    def _shown(self, suggestion: Any) -> dict[str, Any]:
        known = self.known[suggestion.idea_id]
        return {
            "idea_id": suggestion.idea_id,
            "title": known.title,
            "state": known.state,
            "score": round(float(suggestion.score), 3),
            "shared_words": list(suggestion.shared_words),
            "url": f"/ideas/{suggestion.idea_id}",
        }

    @contextlib.asynccontextmanager
    async def _current(self) -> AsyncIterator[None]:
        """Caught up, and held so that no catching up changes the indexes while they are read."""
        async with self._lock:
            await self._catch_up()
            yield

    async def sync(self) -> int:
        """Catch up with the projection now. Returns the ideas re-indexed."""
        async with self._lock:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        changes = await self.store.changes_since(self._seen)
        if changes.epoch != self._epoch:
            if self._epoch is not None or self._seen:  # wiped (a rebuild): start again from nothing
                self.logger.info("projection wiped: indexes of ideas reloaded", extra={"epoch": changes.epoch})
            self._clear()
            self._epoch = changes.epoch
            changes = await self.store.changes_since(0)
        if not changes.idea_ids:
            return 0
        many = len(changes.idea_ids) > _IN_A_THREAD
        count = 0
        for start in range(0, len(changes.idea_ids), _CHUNK):
            documents = await self.store.summary_texts(changes.idea_ids[start : start + _CHUNK])
            if many:  # read and index in a worker thread, a chunk at a time: the service answers meanwhile
                count += await asyncio.to_thread(self._index_documents, documents)
                await asyncio.sleep(_PAUSE_S)
            else:
                count += self._index_documents(documents)
        self._seen = changes.version
        return count

    def _index_documents(self, documents: Iterable[str]) -> int:
        """Index the ideas of these stored summaries (JSON text) whose text or state changed. Only the fields the
        indexes use are read (no ``IdeaSummary`` is made: most changes are of counts, and skipped)."""
        count = 0
        for document in documents:
            summary = json.loads(document)
            if not summary.get("submitted"):
                continue  # no text yet (an event before the submission)
            idea_id = summary["idea_id"]
            now = Known(summary.get("title", ""), summary.get("description", ""), summary.get("state"))
            before = self.known.get(idea_id)
            if before == now:
                continue  # a count changed, not the text or the state
            self.known[idea_id] = now
            text_changed = before is None or (before.title, before.description) != (now.title, now.description)
            if text_changed:
                self.search_index.add(idea_id, now.title, now.description)
            if now.suggested and (text_changed or idea_id not in self.similar):
                self.similar.add(idea_id, now.title, now.description)
            elif not now.suggested and idea_id in self.similar:
                self.similar.remove(idea_id)
            count += 1
        self.reindexed += count
        return count

    def _clear(self) -> None:
        for idea_id in list(self.known):
            if idea_id in self.similar:
                self.similar.remove(idea_id)
        self.known.clear()
        self.search_index.clear()
        self._seen = 0

    @contextlib.asynccontextmanager
    async def keeping_current(self, interval_s: float) -> AsyncIterator[None]:
        """A background task of the service: load every idea at start, then catch up every ``interval_s``."""

        async def loop() -> None:
            while True:
                try:
                    await self.sync()
                except Exception as exc:  # Redis away: the next round (or the next request) tries again
                    self.logger.warning("indexes of ideas not caught up", extra={"error": repr(exc)})
                await asyncio.sleep(interval_s)

        task = asyncio.create_task(loop(), name="analytics-idea-mirror")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

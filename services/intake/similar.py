"""Similar ideas for the web form without JavaScript (issue 18): after a first submit, the form comes back with up
to three existing ideas that say the same thing, and the person may submit anyway.

Each intake replica keeps its own :class:`shared.similarity.SimilarityIndex` of the ideas it knows that are still
worth pointing to (not merged, withdrawn or declined). The texts live in intake's idea records in Redis (written
from ``IdeaSubmitted`` and ``IdeaEdited`` by whichever replica follows that partition, or by the request itself),
and every change of a text or a state is numbered there (``IntakeStore.changed_texts``): before each suggestion
the replica reads the changes since the last one it applied, so every replica's index follows every partition,
a restart loads the index from Redis, and a rebuild (which rewrites the texts) reaches running replicas by itself.
With JavaScript the form asks analytics' ``GET /api/v1/ideas/similar`` as the person types (static/similar.js)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.intake.store import IntakeStore
from shared.events import IdeaState
from shared.similarity import SimilarityIndex

NOT_SUGGESTED = frozenset({IdeaState.MERGED, IdeaState.WITHDRAWN, IdeaState.DECLINED})
"""Ideas no one should be sent to: merged into another, withdrawn by their submitter, or declined."""
MIN_WORDS = 3
"""Fewer words than this in title and description together say too little to compare (as analytics' endpoint)."""
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SimilarIdea:
    idea_id: str
    title: str
    state: str
    score: float
    shared_words: tuple[str, ...]


class SimilarIdeas:
    """A replica's similar-ideas index over intake's store, kept up to date from the store's numbered changes."""

    def __init__(self, store: IntakeStore, *, index: SimilarityIndex | None = None, logger: logging.Logger) -> None:
        self.store = store
        self.index = index if index is not None else SimilarityIndex()
        self.logger = logger
        self.applied = 0
        """The number of the last change applied to the index."""
        self._lock = asyncio.Lock()

    async def catch_up(self) -> int:
        """Apply the changes since the last one applied; returns how many ideas changed."""
        async with self._lock:
            last, changed = await self.store.changed_texts(self.applied)
            for text in await self.store.texts(changed):
                if text.state is None or text.state in NOT_SUGGESTED or not text.title:
                    if text.idea_id in self.index:
                        self.index.remove(text.idea_id)
                else:
                    self.index.add(text.idea_id, text.title, text.description)
            self.applied = last
            return len(changed)

    async def suggest(self, title: str, description: str, *, limit: int = 3) -> list[SimilarIdea]:
        """Up to ``limit`` ideas similar to the text, best first; none for a text of fewer than
        :data:`MIN_WORDS` words or when nothing is similar enough."""
        if len(_WORD.findall(f"{title} {description}")) < MIN_WORDS:
            return []
        await self.catch_up()
        suggestions = self.index.suggest(title, description, limit=limit)
        texts = {text.idea_id: text for text in await self.store.texts(s.idea_id for s in suggestions)}
        found = []
        for suggestion in suggestions:
            text = texts.get(suggestion.idea_id)
            if text is None or text.state is None or text.state in NOT_SUGGESTED:
                continue  # changed since the index last heard
            found.append(
                SimilarIdea(
                    idea_id=suggestion.idea_id,
                    title=text.title,
                    state=text.state.value,
                    score=round(suggestion.score, 2),
                    shared_words=tuple(suggestion.shared_words),
                )
            )
        return found

    @contextlib.asynccontextmanager
    async def loading(self) -> AsyncIterator[None]:
        """Load the index from Redis in the background as the service starts (the first form need not wait);
        Redis away only defers it to the first suggestion."""

        async def load() -> None:
            try:
                loaded = await self.catch_up()
                self.logger.info("similar-ideas index loaded", extra={"ideas": len(self.index), "changes": loaded})
            except Exception as exc:
                self.logger.warning("similar-ideas index not loaded yet", extra={"error": repr(exc)})

        task = asyncio.create_task(load(), name="intake-similar-ideas")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Learning from re-routes: an idea like one that an officer re-routed goes where the officer sent it.

Pure and synchronous. The memory holds, for every re-routed idea, the stems of its content words and the
routing the officer chose. :meth:`FeedbackMemory.suggest` finds the most similar remembered idea (Jaccard
similarity of the stem sets, through an inverted index) and returns its routing when the similarity reaches the
threshold, so only really similar ideas are affected.

Persistence is up to the caller: :meth:`FeedbackMemory.to_dict` gives plain JSON-able data and
:meth:`FeedbackMemory.from_dict` rebuilds the memory from it. The memory can equally be rebuilt from scratch by
replaying the re-route events and calling :meth:`FeedbackMemory.learn` for each, in order (a later re-route of
the same text replaces the earlier one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from shared.events import AreaMatch, RoutingTarget
from shared.language import content_keys

DEFAULT_THRESHOLD = 0.5
MIN_KEYS = 3
"""Texts with fewer content words are neither learned nor matched: too little to compare."""
DEFAULT_CAPACITY = 20_000
FORMAT_VERSION = 1

Suggestion = tuple[tuple[RoutingTarget, ...], tuple[AreaMatch, ...], float]


class FeedbackMemory:
    """Re-routed ideas and where officers sent them; nearest neighbour on stemmed content words."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, capacity: int = DEFAULT_CAPACITY) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.capacity = max(1, capacity)
        self._entries: dict[frozenset[str], tuple[tuple[RoutingTarget, ...], tuple[AreaMatch, ...]]] = {}
        self._index: dict[str, set[frozenset[str]]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._entries)

    def learn(
        self,
        title: str,
        description: str,
        organisations: tuple[RoutingTarget, ...],
        areas: tuple[AreaMatch, ...] = (),
    ) -> bool:
        """Remember that an idea with this text was sent to ``organisations``/``areas``.

        Returns False (and remembers nothing) when the text has too few content words or no organisation is
        given. A re-route of the same text replaces the earlier one; the oldest entries go beyond ``capacity``.
        """
        keys = content_keys(f"{title or ''}\n{description or ''}")
        if len(keys) < MIN_KEYS or not organisations:
            return False
        self._remember(keys, tuple(organisations), tuple(areas))
        return True

    def _remember(
        self, keys: frozenset[str], organisations: tuple[RoutingTarget, ...], areas: tuple[AreaMatch, ...]
    ) -> None:
        if keys in self._entries:
            del self._entries[keys]  # re-insert so that it counts as the newest
        self._entries[keys] = (organisations, areas)
        for key in keys:
            self._index[key].add(keys)
        while len(self._entries) > self.capacity:
            oldest = next(iter(self._entries))
            self._forget(oldest)

    def _forget(self, keys: frozenset[str]) -> None:
        del self._entries[keys]
        for key in keys:
            holders = self._index.get(key)
            if holders is not None:
                holders.discard(keys)
                if not holders:
                    del self._index[key]

    def suggest(self, title: str, description: str) -> Suggestion | None:
        """(organisations, areas, similarity) of the most similar re-routed idea, or None below the threshold."""
        if not self._entries:
            return None
        keys = content_keys(f"{title or ''}\n{description or ''}")
        if len(keys) < MIN_KEYS:
            return None
        shared: dict[frozenset[str], int] = defaultdict(int)
        for key in keys:
            for holder in self._index.get(key, ()):
                shared[holder] += 1
        best: frozenset[str] | None = None
        best_similarity = 0.0
        order = {holder: position for position, holder in enumerate(self._entries)} if len(shared) > 1 else {}
        for holder, common in shared.items():
            similarity = common / (len(keys) + len(holder) - common)
            if similarity > best_similarity or (
                similarity == best_similarity and best is not None and order[holder] > order[best]
            ):
                best, best_similarity = holder, similarity
        if best is None or best_similarity < self.threshold:
            return None
        organisations, areas = self._entries[best]
        return organisations, areas, best_similarity

    # -- persistence ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, oldest entry first."""
        return {
            "version": FORMAT_VERSION,
            "threshold": self.threshold,
            "capacity": self.capacity,
            "entries": [
                {
                    "keys": sorted(keys),
                    "organisations": [t.model_dump(mode="json") for t in organisations],
                    "areas": [a.model_dump(mode="json") for a in areas],
                }
                for keys, (organisations, areas) in self._entries.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedbackMemory:
        """Rebuild a memory from :meth:`to_dict` output; raises ValueError on data it cannot read."""
        if not isinstance(data, Mapping) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"feedback memory: expected a mapping with version {FORMAT_VERSION}")
        memory = cls(
            threshold=float(data.get("threshold", DEFAULT_THRESHOLD)),
            capacity=int(data.get("capacity", DEFAULT_CAPACITY)),
        )
        for position, entry in enumerate(data.get("entries", ())):
            try:
                keys = frozenset(str(key) for key in entry["keys"])
                organisations = tuple(RoutingTarget.model_validate(t) for t in entry["organisations"])
                areas = tuple(AreaMatch.model_validate(a) for a in entry.get("areas", ()))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"feedback memory: entries.{position}: {exc}") from exc
            if keys and organisations:
                memory._remember(keys, organisations, areas)
        return memory

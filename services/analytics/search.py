"""Searching ideas' text with the routing's Swedish and English stemming (``shared/language.py``). Pure, in memory.

Every word of an idea's title and description is indexed under its keys: its Swedish and English Snowball stems
and the base forms of the known words in it (a :class:`~shared.language.Lexicon` of the general Swedish
vocabulary, so an inflected form and a compound's parts are found too: "skolan" and "skolgården" under
"skola"). A query word matches an idea when one of its own keys (stems, and its base form when it is a known word,
never its parts) is among the idea's; every word of the query must match ("snöröjning" finds "snöröjningen",
"skola" finds "skolgården", "snöröjning gångbana" only ideas with both). Stop words of both languages are left
out of queries and ideas alike.

The index is inverted (key -> ideas), so a query costs a few set operations on the postings of its words,
whatever the number of ideas; an idea's keys are computed once when its text changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache

from shared.language import (
    ENGLISH_STOP_WORDS,
    SWEDISH_MORPHEMES,
    SWEDISH_STOP_WORDS,
    Lexicon,
    bounded,
    stem_en,
    stem_sv,
    tokenize,
)

_LEMMA = "="
"""Base forms are kept apart from stems (``=skola`` beside ``skol``)."""


@cache
def _lexicon() -> Lexicon:
    return Lexicon((), "sv", SWEDISH_MORPHEMES)


def _content(tokens: Iterable[str]) -> list[str]:
    return [t for t in tokens if len(t) >= 2 and t not in SWEDISH_STOP_WORDS and t not in ENGLISH_STOP_WORDS]


def query_keys(word: str) -> frozenset[str]:
    """The keys a query word matches under: its stems, and its base form when it is a known word as a whole."""
    keys = {stem_sv(word), stem_en(word)}
    keys |= {_LEMMA + part.lemma for part in _lexicon().lookup(word) if part.whole}
    return frozenset(keys)


def text_keys(title: str, description: str) -> frozenset[str]:
    """The keys an idea is found under: every content word's stems and base forms, a compound's parts included."""
    title, description = bounded(title, description)
    keys: set[str] = set()
    for word in set(_content(tokenize(f"{title}\n{description}"))):
        keys.update(_word_keys(word))
    return frozenset(keys)


@lru_cache(maxsize=100_000)
def _word_keys(word: str) -> tuple[str, ...]:
    """One word's keys in an idea's text (:func:`text_keys`), worked out once per word: ideas share most words."""
    return (stem_sv(word), stem_en(word), *(_LEMMA + part.lemma for part in _lexicon().lookup(word)))


def query_terms(q: str) -> list[frozenset[str]]:
    """One set of keys per content word of the query (each must match); none for a query of only stop words."""
    return [query_keys(word) for word in dict.fromkeys(_content(tokenize(q)))]


class SearchIndex:
    """Ideas' text, inverted: add (or replace) an idea's text, remove it, find the ideas that match a query."""

    def __init__(self) -> None:
        self._keys: dict[str, frozenset[str]] = {}
        self._postings: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, idea_id: object) -> bool:
        return idea_id in self._keys

    def add(self, idea_id: str, title: str, description: str) -> None:
        keys = text_keys(title, description)
        old = self._keys.get(idea_id, frozenset())
        for key in old - keys:
            self._unpost(key, idea_id)
        for key in keys - old:
            self._postings.setdefault(key, set()).add(idea_id)
        self._keys[idea_id] = keys

    def remove(self, idea_id: str) -> None:
        for key in self._keys.pop(idea_id, frozenset()):
            self._unpost(key, idea_id)

    def clear(self) -> None:
        self._keys.clear()
        self._postings.clear()

    def search(self, q: str) -> set[str]:
        """The ids of the ideas that match every content word of ``q`` (none for a query without any)."""
        terms = query_terms(q)
        if not terms:
            return set()
        matches = [set().union(*(self._postings.get(key, ()) for key in term)) for term in terms]
        matches.sort(key=len)
        found = matches[0]
        for more in matches[1:]:
            found &= more
            if not found:
                break
        return found

    def _unpost(self, key: str, idea_id: str) -> None:
        ideas = self._postings.get(key)
        if ideas is not None:
            ideas.discard(idea_id)
            if not ideas:
                del self._postings[key]

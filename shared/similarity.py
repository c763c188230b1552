"""Similar ideas: which earlier ideas say the same thing as a text, in Swedish or English.

Pure and synchronous; the only I/O is reading the synonyms file when the first index is built from it (what it
makes is kept for later indexes of the same file version).

How two ideas are compared:

1. Each idea becomes a weighted bag of *concepts*. Its words are read the way routing reads them
   (:mod:`shared.language`): stop words go, inflections are one stem and one dictionary look-up away, and an
   unknown Swedish compound is split into known parts ("fjärrvärmeläckorna" -> fjärrvärme + läcka), which count
   for less than a whole word. Words of one synonym group (``catalogue/synonyms.toml``: snöröjning, skotta,
   snow clearing...) become one concept, in Swedish and English alike, so an English idea meets its Swedish
   twin. A word the synonyms file does not know stands for itself (its stem). Words the file calls *weak*
   ("bättre", "införa", "new") count for less. Title words weigh more than description words.
2. Concept weights are TF-IDF, learnt incrementally from the indexed ideas: a concept found in many ideas says
   less. A prior of :data:`PRIOR_IDEAS` imaginary ideas that contain nothing keeps the weights sensible while
   the index is small, so the first ideas already work.
3. Similarity is the cosine of two bags (0..1), found through an inverted index from concept to ideas, so a
   look-up touches only the ideas that share a concept with the text. Only ideas scoring at least
   :data:`THRESHOLD` (calibrated on the development set, see ``python -m shared.similarity_eval``) are
   suggested: an empty list means "nothing similar".
"""

from __future__ import annotations

import heapq
import math
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.language import (
    ENGLISH_STOP_WORDS,
    SWEDISH_MORPHEMES,
    SWEDISH_STOP_WORDS,
    Language,
    Lexicon,
    active_languages,
    bounded,
    normalise,
    stem_en,
    stem_sv,
    tokenize,
)

DEFAULT_SYNONYMS_PATH = Path(__file__).resolve().parent.parent / "catalogue" / "synonyms.toml"

THRESHOLD = 0.25
"""Suggestions score at least this (cosine similarity): the middle of the gap between the duplicates' lowest
score (0.34) and the non-duplicates' highest (0.17, but for one near-miss at 0.31) on the development set."""
MIN_SHARED_CONCEPTS = 2
"""A suggestion shares at least this many concepts with the text: one word in common ("skolorna") is a topic, not
the same idea, however short the two texts are."""
TITLE_WEIGHT = 2.0
DESCRIPTION_WEIGHT = 1.0
COMPOUND_WEIGHT = 0.6
"""An unknown compound as a whole ("friskvårdstimme" matches only itself and its inflections)."""
HEAD_PART_WEIGHT = 0.5
MODIFIER_PART_WEIGHT = 0.35
"""Parts of an unknown compound: the last part (its head) says more than the parts before it."""
WEAK_WEIGHT = 0.3
PRIOR_IDEAS = 20
"""Imaginary ideas with no concepts, added to the count of ideas in the IDF so that small indexes work."""
MAX_SHARED_WORDS = 5
REFRESH_SHARE = 0.05
"""Ideas' vector lengths are recomputed when the number of ideas has moved this share since they were last
computed (IDF drifts slowly: a few per cent more ideas change no ranking that matters)."""

_SWEDISH_LETTERS = re.compile(r"[åäö]")


class SynonymsError(ValueError):
    """The synonyms file cannot be read or says something inconsistent."""


@dataclass(frozen=True)
class Suggestion:
    """An indexed idea that says the same thing as the text asked about."""

    idea_id: str
    score: float
    """0..1, higher is more similar; at least :data:`THRESHOLD`."""
    shared_words: tuple[str, ...]
    """The words both ideas share, as written in the suggested idea (at most :data:`MAX_SHARED_WORDS`)."""


# -- the synonyms file ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SynonymGroup:
    """Words of one meaning: Swedish and English base forms or phrases."""

    swedish: tuple[str, ...]
    english: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Synonyms:
    """The contents of a synonyms file."""

    groups: tuple[SynonymGroup, ...]
    weak_sv: tuple[str, ...] = ()
    weak_en: tuple[str, ...] = ()


def parse_synonyms(text: str, source: str = "synonyms") -> Synonyms:
    """Read the TOML of a synonyms file; :class:`SynonymsError` says what is wrong and where."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SynonymsError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - {"groups", "weak_sv", "weak_en"})
    if unknown:
        raise SynonymsError(f"{source}: unknown keys {', '.join(unknown)} (expected groups, weak_sv, weak_en)")
    weak = {}
    for name in ("weak_sv", "weak_en"):
        value = raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
            raise SynonymsError(f"{source}: {name} must be a list of strings")
        weak[name] = tuple(value)
    lines = raw.get("groups", [])
    if not isinstance(lines, list):
        raise SynonymsError(f"{source}: groups must be a list of strings 'Swedish words = English words'")
    groups = []
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(lines, 1):
        if not isinstance(line, str) or line.count("=") != 1:
            raise SynonymsError(f"{source}: group {number} must be one string 'Swedish words = English words'")
        sides = [tuple(word.strip() for word in side.split(",") if word.strip()) for side in line.split("=")]
        if not sides[0] and not sides[1]:
            raise SynonymsError(f"{source}: group {number} has no words")
        for language, side in zip(("sv", "en"), sides, strict=True):
            for entry in side:
                word = normalise(entry)
                if not word:
                    raise SynonymsError(f"{source}: group {number}: {entry!r} has no letters")
                previous = seen.setdefault((language, word), number)
                if previous != number:
                    raise SynonymsError(
                        f"{source}: {entry!r} ({language}) is in group {previous} and in group {number}"
                    )
        groups.append(SynonymGroup(sides[0], sides[1]))
    return Synonyms(tuple(groups), weak["weak_sv"], weak["weak_en"])


def load_synonyms(path: Path = DEFAULT_SYNONYMS_PATH) -> Synonyms:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SynonymsError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_synonyms(text, str(path))


# -- reading an idea ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bag:
    """An idea as concepts: term weights (before IDF) and, per concept, the idea's own word behind it."""

    weights: dict[str, float]
    words: dict[str, str]


_MEMORY = 200_000
"""Words (and stems) a reader remembers how it read, at most; then it starts again."""


class _Reader:
    """Turns a title and a description into a :class:`_Bag`, with the synonyms file's groups and weak words."""

    def __init__(self, synonyms: Synonyms) -> None:
        self._concept: dict[tuple[Language, str], str] = {}
        """(language, base form) -> concept key, for the single words of the synonym groups."""
        self._phrases: dict[Language, dict[str, list[tuple[tuple[str, ...], str]]]] = {
            "sv": defaultdict(list),
            "en": defaultdict(list),
        }
        """Per language, first stem -> (the stems after it, concept), longest first: several-word entries."""
        words: dict[Language, set[str]] = {"sv": set(), "en": set()}
        for group in synonyms.groups:
            concept = "=" + " ".join(tokenize(group.swedish[0] if group.swedish else group.english[0]))
            for language, entries in (("sv", group.swedish), ("en", group.english)):
                stemmer = stem_sv if language == "sv" else stem_en
                for entry in entries:
                    tokens = tokenize(entry)
                    if len(tokens) > 1:
                        stems = tuple(stemmer(token) for token in tokens)
                        self._phrases[language][stems[0]].append((stems[1:], concept))
                    elif tokens:
                        words[language].add(tokens[0])
                        self._concept[(language, tokens[0])] = concept
        for table in self._phrases.values():
            for options in table.values():
                options.sort(key=lambda option: -len(option[0]))
        weak: dict[Language, set[str]] = {
            "sv": {word for entry in synonyms.weak_sv for word in tokenize(entry)},
            "en": {word for entry in synonyms.weak_en for word in tokenize(entry)},
        }
        self._sv = Lexicon(sorted(words["sv"] | weak["sv"]), "sv", SWEDISH_MORPHEMES)
        self._en = Lexicon(sorted(words["en"] | weak["en"]), "en")
        self._weak = {self._key(language, word) for language, found in weak.items() for word in found}
        # What one word reads as depends on the word and the languages in use only: each is worked out once (the
        # mirror indexes every idea, make bench: a fifth of analytics' CPU went here). Bounded like the router's.
        self._readings: dict[tuple[str, bool, bool], tuple[tuple[str, float], ...]] = {}
        self._stems: dict[tuple[Language, str], str] = {}

    def _key(self, language: Language, lemma: str) -> str:
        return self._concept.get((language, lemma)) or f"{language}:{lemma}"

    def read(self, title: str, description: str) -> _Bag:
        title, description = bounded(title, description)
        title_tokens, description_tokens = tokenize(title), tokenize(description)
        use_sv, use_en = active_languages(title_tokens + description_tokens)
        weights: dict[str, float] = defaultdict(float)
        words: dict[str, str] = {}
        for tokens, field_weight in ((title_tokens, TITLE_WEIGHT), (description_tokens, DESCRIPTION_WEIGHT)):
            for key, weight, surface in self._concepts(tokens, use_sv, use_en):
                if key in self._weak:
                    weight *= WEAK_WEIGHT
                weights[key] += weight * field_weight
                words.setdefault(key, surface)
        return _Bag({key: math.log1p(value) for key, value in weights.items()}, words)

    def _concepts(self, tokens: list[str], use_sv: bool, use_en: bool) -> Iterator[tuple[str, float, str]]:
        """(concept, weight, the word that said it) for every content word and phrase of ``tokens``."""
        position = 0
        while position < len(tokens):
            phrase = self._phrase_at(tokens, position)
            if phrase is not None:
                concept, length = phrase
                yield concept, 1.0, " ".join(tokens[position : position + length])
                position += length
                continue
            token = tokens[position]
            position += 1
            if self._is_stop(token, use_sv, use_en):
                continue
            yield from ((key, weight, token) for key, weight in self._token(token, use_sv, use_en))

    def _phrase_at(self, tokens: list[str], position: int) -> tuple[str, int] | None:
        """The concept and length of the longest several-word entry starting at ``position``, if any."""
        best: tuple[str, int] | None = None
        for language in ("sv", "en"):
            for rest, concept in self._phrases[language].get(self._stem(language, tokens[position]), ()):
                end = position + 1 + len(rest)
                if (best is None or 1 + len(rest) > best[1]) and end <= len(tokens):
                    if all(self._stem(language, tokens[position + 1 + i]) == stem for i, stem in enumerate(rest)):
                        best = (concept, 1 + len(rest))
        return best

    def _stem(self, language: Language, token: str) -> str:
        stem = self._stems.get((language, token))
        if stem is None:
            if len(self._stems) >= _MEMORY:
                self._stems.clear()
            stem = self._stems[(language, token)] = (stem_sv if language == "sv" else stem_en)(token)
        return stem

    @staticmethod
    def _is_stop(token: str, use_sv: bool, use_en: bool) -> bool:
        if len(token) < 2:
            return True
        in_sv, in_en = token in SWEDISH_STOP_WORDS, token in ENGLISH_STOP_WORDS
        return (in_sv and in_en) or (in_sv and use_sv) or (in_en and use_en)

    def _token(self, token: str, use_sv: bool, use_en: bool) -> tuple[tuple[str, float], ...]:
        key = (token, use_sv, use_en)
        readings = self._readings.get(key)
        if readings is None:
            if len(self._readings) >= _MEMORY:
                self._readings.clear()
            readings = self._readings[key] = tuple(self._read_token(token, use_sv, use_en))
        return readings

    def _read_token(self, token: str, use_sv: bool, use_en: bool) -> list[tuple[str, float]]:
        swedish_only = bool(_SWEDISH_LETTERS.search(token))
        readings: list[tuple[str, float]] = []
        if use_en and not swedish_only:
            lemmas = [part.lemma for part in self._en.lookup(token)]
            readings += [(self._key("en", lemma), 1.0 / len(lemmas)) for lemma in lemmas]
        if use_sv or swedish_only:
            parts = self._sv.lookup(token)
            if parts and parts[0].whole:
                sv = [(self._key("sv", part.lemma), 1.0 / len(parts)) for part in parts]
                readings = sv if not readings else [(key, weight / 2) for key, weight in readings + sv]
            elif parts and not readings:
                readings = [(f"sv:{stem_sv(token)}", COMPOUND_WEIGHT)]
                readings += [
                    (self._key("sv", part.lemma), HEAD_PART_WEIGHT if part.head else MODIFIER_PART_WEIGHT)
                    for part in parts
                ]
        if readings:
            return readings
        if use_sv or swedish_only:
            return [(f"sv:{stem_sv(token)}", 1.0)]
        return [(f"en:{stem_en(token)}", 1.0)]


def _reader(path: Path) -> _Reader:
    """The reader of a synonyms file, built once per file version (building one takes most of a second)."""
    try:
        version = path.stat()
    except OSError as exc:
        raise SynonymsError(f"{path}: cannot read: {exc.strerror}") from exc
    return _cached_reader(path.resolve(), version.st_mtime_ns, version.st_size)


@lru_cache(maxsize=4)
def _cached_reader(path: Path, mtime_ns: int, size: int) -> _Reader:
    return _Reader(load_synonyms(path))


# -- the index ----------------------------------------------------------------------------------------------------


class SimilarityIndex:
    """Ideas to compare new texts with. ``add`` and ``remove`` keep it current; ``suggest`` asks it."""

    def __init__(self, synonyms_path: Path | None = None) -> None:
        self._reader = _reader(synonyms_path or DEFAULT_SYNONYMS_PATH)
        self._ideas: dict[str, _Bag] = {}
        self._postings: dict[str, dict[str, float]] = defaultdict(dict)
        self._norms: dict[str, float] = {}
        self._norms_at = -1
        """The number of ideas when the norms were last computed (-1: never)."""
        self._changes = 0
        """Ideas added or removed since the norms were last computed: an index emptied and filled again to the same
        size (a rebuild) still computes them again."""

    def __contains__(self, idea_id: object) -> bool:
        return idea_id in self._ideas

    def __len__(self) -> int:
        return len(self._ideas)

    def add(self, idea_id: str, title: str, description: str) -> None:
        """Index an idea's text; an idea already indexed under ``idea_id`` is replaced."""
        self.remove(idea_id)
        bag = self._reader.read(title, description)
        self._ideas[idea_id] = bag
        for key, weight in bag.weights.items():
            self._postings[key][idea_id] = weight
        self._norms[idea_id] = self._norm(bag.weights)
        self._changes += 1

    def remove(self, idea_id: str) -> None:
        """Forget an idea (nothing happens when it is not indexed)."""
        bag = self._ideas.pop(idea_id, None)
        if bag is None:
            return
        self._changes += 1
        for key in bag.weights:
            postings = self._postings[key]
            postings.pop(idea_id, None)
            if not postings:
                del self._postings[key]
        self._norms.pop(idea_id, None)

    def suggest(self, title: str, description: str, *, exclude: Iterable[str] = (), limit: int = 3) -> list[Suggestion]:
        """Up to ``limit`` indexed ideas that say the same as this text, most similar first; [] when none does."""
        if limit <= 0 or not self._ideas:
            return []
        excluded = set(exclude)
        query = self._reader.read(title, description)
        scores = self._scores(query.weights)
        best = heapq.nlargest(
            limit,
            (
                (score, idea_id)
                for idea_id, score in scores.items()
                if score >= THRESHOLD
                and idea_id not in excluded
                and len(query.weights.keys() & self._ideas[idea_id].weights.keys()) >= MIN_SHARED_CONCEPTS
            ),
            key=lambda item: (item[0], item[1]),
        )
        return [
            Suggestion(idea_id, round(score, 4), self._shared_words(query.weights, self._ideas[idea_id]))
            for score, idea_id in best
        ]

    def similarity(self, title: str, description: str, idea_id: str) -> float:
        """How similar a text is to one indexed idea (0..1, whatever the threshold): for evaluation and tools."""
        if idea_id not in self._ideas:
            return 0.0
        return self._scores(self._reader.read(title, description).weights).get(idea_id, 0.0)

    # -- scoring ----------------------------------------------------------------------------------------------

    def _idf(self, key: str) -> float:
        postings = self._postings.get(key)
        document_frequency = len(postings) if postings else 0
        return math.log((len(self._ideas) + PRIOR_IDEAS) / (document_frequency + 1)) + 1.0

    def _norm(self, weights: dict[str, float]) -> float:
        return math.sqrt(sum((weight * self._idf(key)) ** 2 for key, weight in weights.items())) or 1.0

    def _refresh_norms(self) -> None:
        count = len(self._ideas)
        if self._norms_at > 0 and self._changes <= REFRESH_SHARE * self._norms_at:
            return
        self._norms = {idea_id: self._norm(bag.weights) for idea_id, bag in self._ideas.items()}
        self._norms_at = count
        self._changes = 0

    def _scores(self, query: dict[str, float]) -> dict[str, float]:
        """Cosine similarity of the query to every idea that shares a concept with it."""
        self._refresh_norms()
        weighted = {key: weight * self._idf(key) for key, weight in query.items()}
        query_norm = math.sqrt(sum(value * value for value in weighted.values())) or 1.0
        dots: dict[str, float] = defaultdict(float)
        for key, value in weighted.items():
            postings = self._postings.get(key)
            if not postings:
                continue
            factor = value * self._idf(key) / query_norm
            for idea_id, weight in postings.items():
                dots[idea_id] += factor * weight
        return {idea_id: min(1.0, dot / self._norms[idea_id]) for idea_id, dot in dots.items()}

    def _shared_words(self, query: dict[str, float], idea: _Bag) -> tuple[str, ...]:
        """The idea's own words behind the concepts it shares with the query, strongest first, without repeats."""
        shared = sorted(
            (key for key in query if key in idea.weights),
            key=lambda key: -(query[key] * idea.weights[key] * self._idf(key) ** 2),
        )
        words: list[str] = []
        for key in shared:
            word = idea.words[key]
            if word not in words:
                words.append(word)
            if len(words) == MAX_SHARED_WORDS:
                break
        return tuple(words)

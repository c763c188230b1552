"""The routing decision: which areas and organisations (and units) an idea belongs to, and why.

Pure and synchronous: build a :class:`Router` from a catalogue once (everything is precomputed there), then call
:meth:`Router.route` for every idea. No I/O, no broker, no clock.

How a decision is made:

1. Title and description are tokenised; stop words go; every token is read as Swedish (stem, inflections,
   compound parts) and as English (stem), and the text's detected language decides which readings count.
2. Each catalogue keyword found adds ``weight x strength`` to what it points at (an area, a unit or an
   organisation). Strength is 1.5 in the title and 1.0 in the description, a little more when the keyword is
   in both, and less when it is only a part of a compound (0.9 as the last part, 0.75 as a first part; 0.6
   for a part of a compound that is a keyword itself, "cykel" in "elcykel", towards targets that do not list
   the whole word). Multi-word keywords ("district heating", "gång- och cykelväg") are matched first and use
   up their words ("home care" says nothing about "home").
3. Areas scoring at least :data:`AREA_MIN` and at least :data:`AREA_RELATIVE` of the best area are chosen
   (several when the idea touches several). Each chosen area passes its score to the organisation/unit that is
   responsible for it, except *cross-cutting* areas (``cross_cutting = true`` in the catalogue: climate,
   digitalisation, ways of working ...), which name their responsible only when nothing else names an
   organisation. Organisation and unit keywords ("hyresgäster", "bostadsbolaget", "kommunen", "bolagen") add
   to organisations directly, whatever the area.
4. Submitter hints that name a catalogue area or organisation (id, "organisation/unit" or name) are always
   taken; unknown hints are ignored and said so in the reason.
5. Feedback: when a :class:`~services.routing.feedback.FeedbackMemory` (given to the constructor, or per call,
   which wins) knows a re-routed idea similar enough to this one, the idea goes where the officer sent that
   one, and the reason says so.
6. Nothing found: ``triage=True``, the innovation office (the catalogue's triage organisation), no areas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.catalogue import TRIAGE_ORGANISATION, Catalogue
from shared.events import AreaMatch, RoutingTarget
from shared.language import (
    ENGLISH_STOP_WORDS,
    SWEDISH_MORPHEMES,
    SWEDISH_STOP_WORDS,
    Lexicon,
    active_languages,
    bounded,
    normalise,
    tokenize,
)

from .feedback import FeedbackMemory

TITLE_STRENGTH = 1.5
DESCRIPTION_STRENGTH = 1.0
BOTH_FIELDS_BONUS = 0.5
"""Share of the weaker field's strength added when a keyword is in both title and description."""
HEAD_PART = 0.9
FIRST_PART = 0.75
KEYWORD_PART = 0.6
"""Strength of a part of a compound that is a keyword itself ("cykel" in "elcykel"), for other targets."""
AREA_MIN = 2.0
AREA_RELATIVE = 0.3
MAX_AREAS = 4
ORGANISATION_MIN = 2.0
ORGANISATION_RELATIVE = 0.2
HINT_BOOST = 2.0

TRIAGE_REASON = f"Ingen regel matchade; till triage hos {TRIAGE_ORGANISATION}"

_AREA, _UNIT, _ORG = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where an idea goes and why. ``organisations`` has one target per organisation (with its strongest unit);
    ``units`` lists every organisation/unit pair that was named, strongest first."""

    organisations: tuple[RoutingTarget, ...]
    areas: tuple[AreaMatch, ...]
    reason: str
    triage: bool
    catalogue_version: str
    units: tuple[RoutingTarget, ...] = ()
    feedback_similarity: float | None = None
    """Similarity to the re-routed idea the decision was learned from, when feedback decided it."""

    @property
    def organisation_ids(self) -> tuple[str, ...]:
        return tuple(target.organisation for target in self.organisations)

    @property
    def area_ids(self) -> tuple[str, ...]:
        return tuple(match.area for match in self.areas)


@dataclass(frozen=True, slots=True)
class _Target:
    kind: int
    id: str  # area id, organisation id, or "organisation/unit"
    weight: float


@dataclass(frozen=True, slots=True)
class _Token:
    """How one token reads: keyword hits per language (term, factor) and whole-word lemmas for phrases."""

    sv_stop: bool
    en_stop: bool
    sv_hits: tuple[tuple[str, float, str | None], ...]
    en_hits: tuple[tuple[str, float, str | None], ...]
    sv_lemmas: tuple[str, ...]
    en_lemmas: tuple[str, ...]


_EMPTY_TOKEN = _Token(True, True, (), (), (), ())


@dataclass(frozen=True, slots=True)
class _Scores:
    """What a text says: per target ``(kind, id)``, the strongest contribution of each keyword term, as
    (score, the word of the text that matched)."""

    contributions: dict[tuple[int, str], dict[str, tuple[float, str]]]

    def totals(self) -> dict[tuple[int, str], float]:
        """Each target's score: the sum of its terms' contributions."""
        return {key: sum(value for value, _ in terms.values()) for key, terms in self.contributions.items()}

    def evidence(self, kind: int, target_id: str) -> str | None:
        """The word that said most for a target, if any did."""
        terms = self.contributions.get((kind, target_id))
        if not terms:
            return None
        return max(terms.values())[1]


@dataclass(frozen=True, slots=True)
class _Choice:
    """Where the scores and hints lead: the areas chosen (strongest first) and their scores, the organisations
    chosen (none: triage), the score of every organisation and unit, and which areas named which of them."""

    areas: list[str]
    area_scores: dict[str, float]
    organisations: set[str]
    target_scores: dict[str, float]
    via_area: dict[str, list[str]]


class Router:
    """Routes ideas with one catalogue. Immutable after construction apart from an internal token cache."""

    def __init__(self, catalogue: Catalogue, feedback: FeedbackMemory | None = None) -> None:
        self.catalogue = catalogue
        self.feedback = feedback
        self._areas = {area.id: area for area in catalogue.areas}
        self._organisations = {org.id: org for org in catalogue.organisations}
        self._units = {f"{org.id}/{unit.id}" for org in catalogue.organisations for unit in org.units}

        terms: dict[str, dict[str, list[_Target]]] = {"sv": defaultdict(list), "en": defaultdict(list)}
        phrases: dict[str, dict[tuple[str, ...], list[_Target]]] = {"sv": defaultdict(list), "en": defaultdict(list)}
        words: dict[str, set[str]] = {"sv": set(), "en": set()}

        def add(language: str, keyword: str, target: _Target) -> None:
            stop = SWEDISH_STOP_WORDS if language == "sv" else ENGLISH_STOP_WORDS
            parts = tuple(word for word in normalise(keyword).split() if word not in stop)
            if not parts:
                return
            words[language].update(parts)
            if len(parts) == 1:
                terms[language][parts[0]].append(target)
            else:
                phrases[language][parts].append(target)

        for area in catalogue.areas:
            for keyword, weight in area.keywords_sv.items():
                add("sv", keyword, _Target(_AREA, area.id, weight))
            for keyword, weight in area.keywords_en.items():
                add("en", keyword, _Target(_AREA, area.id, weight))
        for org in catalogue.organisations:
            for keyword, weight in org.keywords.items():
                for language in ("sv", "en"):
                    add(language, keyword, _Target(_ORG, org.id, weight))
            for unit in org.units:
                for keyword, weight in unit.keywords.items():
                    for language in ("sv", "en"):
                        add(language, keyword, _Target(_UNIT, f"{org.id}/{unit.id}", weight))

        self._terms = {lang: {term: tuple(targets) for term, targets in found.items()} for lang, found in terms.items()}
        self._phrases: dict[str, dict[str, tuple[tuple[tuple[str, ...], str, tuple[_Target, ...]], ...]]] = {}
        for language, found in phrases.items():
            by_first: dict[str, list[tuple[tuple[str, ...], str, tuple[_Target, ...]]]] = defaultdict(list)
            for parts, targets in sorted(found.items(), key=lambda item: -len(item[0])):
                by_first[parts[0]].append((parts[1:], " ".join(parts), tuple(targets)))
            self._phrases[language] = {first: tuple(options) for first, options in by_first.items()}
        self._target_keys = {
            language: {term: frozenset((t.kind, t.id) for t in targets) for term, targets in found.items()}
            for language, found in self._terms.items()
        }
        self._phrase_terms = {
            language: {" ".join(parts): tuple(targets) for parts, targets in found.items()}
            for language, found in phrases.items()
        }
        self._lexicon_sv = Lexicon(sorted(words["sv"]), "sv", SWEDISH_MORPHEMES)
        self._lexicon_en = Lexicon(sorted(words["en"]), "en")
        self._tokens: dict[str, _Token] = {}

        self._hint_areas: dict[str, str] = {}
        for area in catalogue.areas:
            for name in (area.id, area.name, area.name_en):
                if name:
                    self._hint_areas[normalise(name)] = area.id
        self._hint_orgs: dict[str, str] = {}
        for org in catalogue.organisations:
            for name in (org.id, org.name, org.name_en):
                if name:
                    self._hint_orgs[normalise(name)] = org.id
            for unit in org.units:
                self._hint_orgs[normalise(f"{org.id}/{unit.id}")] = f"{org.id}/{unit.id}"

    @property
    def catalogue_version(self) -> str:
        return self.catalogue.version

    # -- token reading ----------------------------------------------------------------------------------------

    def _token(self, token: str) -> _Token:
        known = self._tokens.get(token)
        if known is not None:
            return known
        sv_stop = token in SWEDISH_STOP_WORDS
        en_stop = token in ENGLISH_STOP_WORDS
        sv_hits: list[tuple[str, float, str | None]] = []
        sv_lemmas: list[str] = []
        if not sv_stop:
            terms = self._terms["sv"]
            for part in self._lexicon_sv.lookup(token):
                if part.whole:
                    sv_lemmas.append(part.lemma)
                if part.lemma in terms:
                    factor = 1.0 if part.whole else HEAD_PART if part.head else FIRST_PART
                    sv_hits.append((part.lemma, factor, None))
            # a keyword that is itself a compound ("elcykel") still says what its parts say ("cykel"), to the
            # targets that do not list the whole word
            whole = [lemma for lemma, _, _ in sv_hits]
            if whole and all(part.whole for part in self._lexicon_sv.lookup(token)):
                for part in self._lexicon_sv.decompose(token):
                    if part.lemma in terms and part.lemma not in whole:
                        sv_hits.append((part.lemma, KEYWORD_PART, whole[0]))
        en_hits: list[tuple[str, float, str | None]] = []
        en_lemmas: list[str] = []
        if not en_stop:
            for part in self._lexicon_en.lookup(token):
                en_lemmas.append(part.lemma)
                if part.lemma in self._terms["en"]:
                    en_hits.append((part.lemma, 1.0, None))
        reading = _Token(sv_stop, en_stop, tuple(sv_hits), tuple(en_hits), tuple(sv_lemmas), tuple(en_lemmas))
        if len(self._tokens) >= 200_000:
            self._tokens.clear()
        self._tokens[token] = reading
        return reading

    def _scan(self, tokens: list[str], field: int, use: tuple[bool, bool], found: dict[tuple, list]) -> None:
        """Add the keyword hits of one field to ``found``: (language, term, except) -> [strength by field, surface].

        Phrases are matched first, longest first, on whole-word lemmas; the words of a matched phrase are used up
        by it ("home care" says nothing about "home"). ``except`` names a keyword whose targets a compound part
        must not count for again.
        """
        strength = TITLE_STRENGTH if field == 0 else DESCRIPTION_STRENGTH
        readings = []
        for token in tokens:
            reading = self._token(token)
            if (reading.sv_stop or not use[0]) and (reading.en_stop or not use[1]):
                continue
            readings.append((token, reading))
        count = len(readings)
        used = [False] * count
        for index, (_, reading) in enumerate(readings):
            if used[index]:
                continue
            for language, on in (("sv", use[0]), ("en", use[1])):
                lemmas = reading.sv_lemmas if language == "sv" else reading.en_lemmas
                if not on or not lemmas:
                    continue
                table = self._phrases[language]
                for lemma in lemmas:
                    for rest, term, _ in table.get(lemma, ()):
                        end = index + 1 + len(rest)
                        if end > count or any(used[index + 1 : end]):
                            continue
                        following = readings[index + 1 : end]
                        if all(
                            word in (other.sv_lemmas if language == "sv" else other.en_lemmas)
                            for word, (_, other) in zip(rest, following, strict=True)
                        ):
                            surface = " ".join(t for t, _ in readings[index:end])
                            _note(found, (language, term, None), field, strength, surface)
                            used[index:end] = [True] * (end - index)
                            break
        for index, (token, reading) in enumerate(readings):
            if used[index]:
                continue
            if use[0]:
                for term, factor, unless in reading.sv_hits:
                    _note(found, ("sv", term, unless), field, strength * factor, token)
            if use[1]:
                for term, factor, unless in reading.en_hits:
                    _note(found, ("en", term, unless), field, strength * factor, token)

    # -- the decision: scoring, choice, explanation ------------------------------------------------------------

    def route(
        self,
        title: str,
        description: str,
        area_hints: Sequence[str] = (),
        organisation_hints: Sequence[str] = (),
        *,
        feedback: FeedbackMemory | None = None,
    ) -> RoutingDecision:
        """Route one idea. Never raises on odd text (empty, huge, any script); unknown hints are ignored.

        ``feedback`` overrides the memory given to the constructor for this call.
        """
        title, description = bounded(title, description)  # what intake accepts: longer texts route in bounded time
        hinted_areas, hinted_targets, ignored = self._read_hints(area_hints, organisation_hints)

        memory = feedback if feedback is not None else self.feedback
        if memory is not None:
            learned = self._from_feedback(memory, title, description, hinted_areas, hinted_targets, ignored)
            if learned is not None:
                return learned

        scores = self._score(title, description)
        choice = self._choose(scores, hinted_areas, hinted_targets)
        return self._explain(choice, scores, hinted_targets, ignored)

    def _score(self, title: str, description: str) -> _Scores:
        """Scoring: what the text says about each area, unit and organisation (steps 1 and 2 above)."""
        title_tokens = tokenize(title)
        description_tokens = tokenize(description)
        use = active_languages(title_tokens + description_tokens)
        found: dict[tuple, list] = {}
        self._scan(title_tokens, 0, use, found)
        self._scan(description_tokens, 1, use, found)

        # contributions per target and term: the same word read in two languages counts once
        contributions: dict[tuple[int, str], dict[str, tuple[float, str]]] = defaultdict(dict)
        for (language, term, unless), (title_hit, description_hit, surface) in found.items():
            strong, weak = max(title_hit, description_hit), min(title_hit, description_hit)
            strength = strong + BOTH_FIELDS_BONUS * weak
            targets = self._terms[language].get(term) or self._phrase_terms[language].get(term, ())
            excluded = self._target_keys[language].get(unless, ()) if unless else ()
            for target in targets:
                key = (target.kind, target.id)
                if key in excluded:
                    continue
                value = target.weight * strength
                by_term = contributions[key]
                if value > by_term.get(term, (0.0, ""))[0]:
                    by_term[term] = (value, surface)
        return _Scores(contributions)

    def _choose(self, scores: _Scores, hinted_areas: list[str], hinted_targets: list[str]) -> _Choice:
        """Choice: the areas, then the organisations and units, from the scores and the hints (steps 3 and 4);
        no organisation chosen means triage."""
        totals = scores.totals()

        # areas
        area_scores = {key[1]: score for key, score in totals.items() if key[0] == _AREA}
        for area_id in hinted_areas:
            area_scores[area_id] = area_scores.get(area_id, 0.0) + HINT_BOOST
        top_area = max(area_scores.values(), default=0.0)
        ranked = sorted(area_scores.items(), key=lambda item: (-item[1], item[0]))
        chosen_areas = [
            area_id
            for area_id, score in ranked
            if area_id in hinted_areas or (score >= AREA_MIN and score >= AREA_RELATIVE * top_area)
        ]
        chosen_areas = [a for a in chosen_areas if a in hinted_areas] + [
            a for a in chosen_areas if a not in hinted_areas
        ][: max(0, MAX_AREAS - len(hinted_areas))]
        chosen_areas.sort(key=lambda a: (-area_scores[a], a))

        # organisations and units: direct keywords, then the responsible of every chosen specific area
        target_scores: dict[str, float] = defaultdict(float)  # "org" or "org/unit" -> score
        for (kind, target_id), score in totals.items():
            if kind in (_UNIT, _ORG):
                target_scores[target_id] += score
        triage_keyword_score = target_scores.pop(TRIAGE_ORGANISATION, 0.0)
        via_area: dict[str, list[str]] = {}
        for area_id in chosen_areas:
            area = self._areas[area_id]
            if area.cross_cutting:
                continue
            via_area[area_id] = list(area.responsible)
            for ref in area.responsible:
                target_scores[ref] += area_scores[area_id]
        organisation_scores = _by_organisation(target_scores)
        top_org = max(organisation_scores.values(), default=0.0)
        chosen_orgs = {
            org
            for org, score in organisation_scores.items()
            if score >= ORGANISATION_MIN and score >= ORGANISATION_RELATIVE * top_org
        }
        for ref in hinted_targets:
            target_scores[ref] += HINT_BOOST
            chosen_orgs.add(ref.partition("/")[0])
        for area_id in hinted_areas:
            if not self._areas[area_id].cross_cutting:
                chosen_orgs.update(ref.partition("/")[0] for ref in self._areas[area_id].responsible)
        if not chosen_orgs and triage_keyword_score >= ORGANISATION_MIN:
            # an idea about ideas and innovation work itself, with nothing else to place it
            chosen_orgs.add(TRIAGE_ORGANISATION)
            target_scores[TRIAGE_ORGANISATION] += triage_keyword_score
        if not chosen_orgs:
            for area_id in chosen_areas:
                area = self._areas[area_id]
                if area.cross_cutting:
                    via_area[area_id] = list(area.responsible)
                    for ref in area.responsible:
                        target_scores[ref] += area_scores[area_id]
                        chosen_orgs.add(ref.partition("/")[0])
        return _Choice(chosen_areas, area_scores, chosen_orgs, target_scores, via_area)

    def _explain(
        self, choice: _Choice, scores: _Scores, hinted_targets: list[str], ignored: list[str]
    ) -> RoutingDecision:
        """Explanation: the decision with its reason, in the order of the choice (the word that decided each
        area and target, or the submitter's hint); triage when nothing was chosen (step 6)."""
        chosen_areas, area_scores, chosen_orgs = choice.areas, choice.area_scores, choice.organisations
        if not chosen_orgs:
            # nothing matched (or only areas that nobody answers for): the innovation office places it
            found_areas = tuple(AreaMatch(area=a, score=round(area_scores[a], 2)) for a in chosen_areas)
            reason = TRIAGE_REASON
            if found_areas:
                reason = f"Ingen ansvarig för {', '.join(chosen_areas)}; till triage hos {TRIAGE_ORGANISATION}"
            return RoutingDecision(
                organisations=(RoutingTarget(organisation=TRIAGE_ORGANISATION, unit=None, score=0.0),),
                areas=found_areas,
                reason=_join([reason, *ignored]),
                triage=True,
                catalogue_version=self.catalogue.version,
            )

        organisations, units = self._targets(chosen_orgs, choice.target_scores)
        areas = tuple(AreaMatch(area=a, score=round(area_scores[a], 2)) for a in chosen_areas)

        segments: list[str] = []
        explained: set[str] = set()
        for area_id in chosen_areas:
            word = scores.evidence(_AREA, area_id)
            source = f"'{word}'" if word else "inlämnarens förslag"
            refs = [ref for ref in choice.via_area.get(area_id, ()) if ref.partition("/")[0] in chosen_orgs]
            explained.update(refs)
            segments.append(" -> ".join([source, area_id, *([", ".join(refs)] if refs else [])]))
        for target in units:
            ref = f"{target.organisation}/{target.unit}" if target.unit else target.organisation
            if ref in explained or (
                target.unit is None and target.organisation in {r.split("/")[0] for r in explained}
            ):
                continue
            word = scores.evidence(_UNIT, ref) if target.unit else None
            word = word or scores.evidence(_ORG, target.organisation)
            if ref in hinted_targets or target.organisation in hinted_targets:
                segments.append(f"inlämnarens förslag -> {ref}")
            elif word:
                segments.append(f"'{word}' -> {ref}")
            explained.add(ref)
        return RoutingDecision(
            organisations=organisations,
            areas=areas,
            reason=_join(segments + ignored),
            triage=False,
            catalogue_version=self.catalogue.version,
            units=units,
        )

    def _targets(
        self, chosen: set[str], target_scores: dict[str, float]
    ) -> tuple[tuple[RoutingTarget, ...], tuple[RoutingTarget, ...]]:
        organisations: list[RoutingTarget] = []
        units: list[RoutingTarget] = []
        for org in chosen:
            own = target_scores.get(org, 0.0)
            org_units = sorted(
                ((ref.partition("/")[2], score) for ref, score in target_scores.items() if ref.startswith(org + "/")),
                key=lambda item: (-item[1], item[0]),
            )
            total = own + sum(score for _, score in org_units)
            best_unit = org_units[0][0] if org_units and org_units[0][1] > 0 else None
            organisations.append(RoutingTarget(organisation=org, unit=best_unit, score=round(total, 2)))
            if org_units:
                units.extend(
                    RoutingTarget(organisation=org, unit=unit, score=round(score, 2))
                    for position, (unit, score) in enumerate(org_units)
                    if score > 0 and (position == 0 or score >= ORGANISATION_MIN)
                )
            else:
                units.append(RoutingTarget(organisation=org, unit=None, score=round(total, 2)))
        organisations.sort(key=lambda t: (-t.score, t.organisation))
        units.sort(key=lambda t: (-t.score, t.organisation, t.unit or ""))
        return tuple(organisations), tuple(units)

    def _read_hints(
        self, area_hints: Iterable[str], organisation_hints: Iterable[str]
    ) -> tuple[list[str], list[str], list[str]]:
        areas: list[str] = []
        targets: list[str] = []
        ignored: list[str] = []
        for hint in _strings(area_hints):
            area_id = self._hint_areas.get(normalise(hint)) or (hint.strip() if hint.strip() in self._areas else None)
            if area_id is None:
                ignored.append(f"okänt områdesförslag ignorerat: '{hint[:60]}'")
            elif area_id not in areas:
                areas.append(area_id)
        for hint in _strings(organisation_hints):
            cleaned = hint.strip().lower()
            ref = cleaned if cleaned in self._organisations or cleaned in self._units else None
            ref = ref or self._hint_orgs.get(normalise(hint))
            if ref is None:
                ignored.append(f"okänt organisationsförslag ignorerat: '{hint[:60]}'")
            elif ref not in targets:
                targets.append(ref)
        return areas, targets, ignored

    def _from_feedback(
        self,
        memory: FeedbackMemory,
        title: str,
        description: str,
        hinted_areas: list[str],
        hinted_targets: list[str],
        ignored: list[str],
    ) -> RoutingDecision | None:
        suggestion = memory.suggest(title, description)
        if suggestion is None:
            return None
        learned_orgs, learned_areas, similarity = suggestion
        organisations = [
            t
            for t in learned_orgs
            if t.organisation in self._organisations and (t.unit is None or f"{t.organisation}/{t.unit}" in self._units)
        ]
        areas = [a for a in learned_areas if a.area in self._areas]
        if not organisations:
            return None
        for ref in hinted_targets:
            org, _, unit = ref.partition("/")
            if all(t.organisation != org for t in organisations):
                organisations.append(RoutingTarget(organisation=org, unit=unit or None, score=HINT_BOOST))
        for area_id in hinted_areas:
            if all(a.area != area_id for a in areas):
                areas.append(AreaMatch(area=area_id, score=HINT_BOOST))
        refs = ", ".join(f"{t.organisation}/{t.unit}" if t.unit else t.organisation for t in organisations)
        where = refs + (f"; {', '.join(a.area for a in areas)}" if areas else "")
        reason = f"Liknar en idé som omdirigerats (likhet {similarity:.2f}) -> {where}"
        return RoutingDecision(
            organisations=tuple(organisations),
            areas=tuple(areas),
            reason=_join([reason, *ignored]),
            triage=False,
            catalogue_version=self.catalogue.version,
            units=tuple(organisations),
            feedback_similarity=round(similarity, 3),
        )


def _note(found: dict[tuple, list], key: tuple, slot: int, strength: float, surface: str) -> None:
    """Keep the strongest hit of a term per field: [title strength, description strength, surface]."""
    entry = found.get(key)
    if entry is None:
        entry = found[key] = [0.0, 0.0, surface]
    if strength > entry[slot]:
        if strength >= max(entry[0], entry[1]):
            entry[2] = surface
        entry[slot] = strength


def _by_organisation(target_scores: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for ref, score in target_scores.items():
        totals[ref.partition("/")[0]] += score
    return totals


def _strings(values: Iterable[object]) -> list[str]:
    if isinstance(values, str):
        values = [values]
    return [value for value in values or () if isinstance(value, str) and value.strip()]


def _join(segments: list[str]) -> str:
    return "; ".join(segment for segment in segments if segment)

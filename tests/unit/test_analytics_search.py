"""Search and similar ideas on the read side, over the in-memory fakes: the stemmed search of ideas' text
(services/analytics/search.py: "snöröjning" finds "snöröjningen", compounds and English too, every word must
match), the mirror that keeps each replica's in-memory indexes current from the projection's change log
(services/analytics/mirror.py: catches up whoever wrote, re-indexes only what changed, reloads after a wipe,
suggests no merged or withdrawn idea) and the lists of ideas searched with it."""

from __future__ import annotations

import pytest

from services.analytics.mirror import IdeaMirror
from services.analytics.queries import Listing, ReadModel, check_scope
from services.analytics.search import SearchIndex, query_terms, text_keys
from shared.similarity import SimilarityIndex
from tests.fakes.analytics import FakeProjectionStore
from tests.unit.test_analytics_handlers import (
    CATALOGUE,
    KEYRING,
    TZ,
    Analytics,
    at,
    new_id,
    routed,
    status,
    submitted,
)
from tests.unit.test_analytics_taking_part import edited


@pytest.fixture(scope="module")
def engine_factory():
    """The similar-ideas engine (shared/similarity.py); reading its synonyms takes a second, so once per module."""
    SimilarityIndex()  # warm the caches of shared/language.py
    return SimilarityIndex


# --- the stemmed search ----------------------------------------------------------------------------------------


def test_a_query_word_finds_its_inflections_compounds_and_english_forms():
    index = SearchIndex()
    index.add("snow", "Snöröjningen på gångbanorna", "Skotta vid skolgården tidigare på morgonen")
    index.add("heat", "District heating for the new bath house", "Heated floors in the changing rooms")
    index.add("park", "Parkering vid badhuset", "Fler platser")
    assert index.search("snöröjning") == {"snow"}  # the example
    assert index.search("SNÖRÖJNING") == {"snow"}
    assert index.search("gångbana") == index.search("gångbanor") == {"snow"}  # an inflected compound
    assert index.search("skola") == {"snow"}  # a part of the compound "skolgården"
    assert index.search("heat") == index.search("heating") == {"heat"}  # English stems
    assert index.search("badhus") == {"park"}  # "badhuset"
    assert index.search("snöröjning badhus") == set()  # every word must match
    assert index.search("snöröjning skotta") == {"snow"}
    assert index.search("och på i") == set()  # stop words only: nothing to look for
    [one], [other] = query_terms("och snöröjningen"), query_terms("snöröjningar")
    assert "snöröjning" in one & other  # their Swedish stem


def test_replacing_and_removing_an_idea_moves_it_in_the_index():
    index = SearchIndex()
    index.add("a", "Snöröjning", "")
    index.add("a", "Laddstolpar", "")  # an edit
    assert index.search("snöröjning") == set() and index.search("laddstolpe") == {"a"}
    index.remove("a")
    assert index.search("laddstolpe") == set() and len(index) == 0
    assert "a" not in index


def test_an_idea_is_indexed_under_a_bounded_number_of_keys():
    long_text = " ".join(f"ord{n}" for n in range(5000))  # one 'word' after another, past what intake accepts
    assert len(text_keys("Titel", long_text)) < 3 * 2000


# --- the mirror -------------------------------------------------------------------------------------------------


async def test_the_mirror_catches_up_with_whatever_any_replica_wrote_and_reindexes_only_what_changed(engine_factory):
    analytics = Analytics()
    mirror = IdeaMirror(analytics.store, engine_factory())
    snow, heat = new_id(), new_id()
    await analytics.record(
        submitted(snow, at(0), title="Snöröjningen på gångbanorna vid skolan"),
        routed(snow, at(0, 1), "kiruna-kommun"),
        submitted(heat, at(1), title="Fjärrvärme till badhuset"),
    )
    assert await mirror.search("snöröjning") == {snow}
    assert mirror.reindexed == 2
    suggestions = await mirror.similar_to("Skotta gångvägarna vid skolan", "Snöröjning på gångbanorna vid skolan")
    assert [s["idea_id"] for s in suggestions] == [snow]
    [first] = suggestions
    assert first["url"] == f"/ideas/{snow}" and first["state"] == "routed" and 0 < first["score"] <= 1
    assert first["shared_words"] and first["title"] == "Snöröjningen på gångbanorna vid skolan"
    # another replica records an edit and a support: the edit is re-indexed, the support changes no text
    other = Analytics()
    other.store = other.handlers.store = analytics.store
    await other.handlers.record("e", [edited(heat, at(2), "Laddstolpar vid badhuset")])
    assert await mirror.search("laddstolpe") == {heat} and await mirror.search("fjärrvärme") == set()
    reindexed = mirror.reindexed
    await analytics.record(status(snow, at(3), "acknowledged"))
    assert await mirror.sync() == 1 and mirror.reindexed == reindexed + 1  # a state change: re-indexed once
    assert await mirror.sync() == 0  # nothing new


async def test_merged_and_withdrawn_ideas_are_never_suggested_but_still_found(engine_factory):
    analytics = Analytics()
    mirror = IdeaMirror(analytics.store, engine_factory())
    target, duplicate = new_id(), new_id()
    text = "Snöröjningen på gångbanorna vid skolan"
    await analytics.record(submitted(target, at(0), title=text), submitted(duplicate, at(1), title=text))
    found = await mirror.similar_to(text, "", limit=3)
    assert {s["idea_id"] for s in found} == {target, duplicate}
    await analytics.record(status(duplicate, at(2), "merged", reason="samma", merged_into=target))
    assert [s["idea_id"] for s in await mirror.similar_to(text, "")] == [target]
    assert [s["idea_id"] for s in await mirror.similar_to(text, "", exclude=[target])] == []
    assert await mirror.search("snöröjning") == {target, duplicate}  # every idea can be found


async def test_a_wipe_makes_every_replica_reload_from_nothing(engine_factory):
    store = FakeProjectionStore()
    analytics = Analytics()
    analytics.store = store
    analytics.handlers.store = store
    mirror = IdeaMirror(store, engine_factory())
    old = new_id()
    await analytics.handlers.record("e", [submitted(old, at(0), title="Snöröjning vid skolan")])
    assert await mirror.search("snöröjning") == {old}
    await store.wipe()  # the rebuild starts
    new = new_id()
    await analytics.handlers.record("e", [submitted(new, at(1), title="Snöröjning vid torget")])
    assert await mirror.search("snöröjning") == {new}
    assert old not in mirror.known and old not in mirror.similar


# --- lists searched with it -------------------------------------------------------------------------------------


async def test_the_list_of_every_idea_is_filtered_searched_and_paged(engine_factory):
    store = FakeProjectionStore()
    analytics = Analytics()
    analytics.store = analytics.handlers.store = store
    read = ReadModel(
        store, CATALOGUE, TZ, clock=lambda: at(30), keyring=KEYRING, mirror=IdeaMirror(store, engine_factory())
    )
    ids = [new_id() for _ in range(5)]
    titles = ["Snöröjningen vid skolan", "Snöröjning på torget", "Fjärrvärme", "Snöröjningar i byn", "Laddstolpar"]
    for n, (idea, title) in enumerate(zip(ids, titles, strict=True)):
        await analytics.handlers.record("e", [submitted(idea, at(n), title=title)])
        await analytics.handlers.record("e", [routed(idea, at(n, 1), "kiruna-kommun" if n % 2 else "tekniska-verken")])
    early = new_id()  # a routing whose submission is not projected yet: not listed until it is
    await analytics.handlers.record("e", [routed(early, at(9), "kiruna-kommun")])

    async def listed(**more) -> tuple[list[str], int]:
        page = await read.ideas(Listing(check_scope(CATALOGUE, **more.pop("scope", {})), **more), officer=False)
        return [item["idea_id"] for item in page["items"]], page["total"]

    assert await listed() == (ids[::-1], 5)
    assert await listed(q="snöröjning") == ([ids[3], ids[1], ids[0]], 3)
    assert await listed(q="snöröjning", scope={"organisation": "kiruna-kommun"}) == ([ids[3], ids[1]], 2)
    assert await listed(q="snöröjning", page=2, page_size=2) == ([ids[0]], 3)
    assert await listed(q="cykel") == ([], 0)
    assert await listed(state="routed") == (ids[::-1], 5)

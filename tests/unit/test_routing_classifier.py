"""The router with the shipped catalogue: multi-organisation routing, triage, hints, reasons, odd input, feedback."""

from __future__ import annotations

import io
import json

import pytest

from services.routing.classifier import TRIAGE_REASON, Router, RoutingDecision
from services.routing.evaluate import evaluate_lines
from services.routing.feedback import FeedbackMemory
from shared.catalogue import TRIAGE_ORGANISATION, Catalogue, load_catalogue
from shared.events import AreaMatch, RoutingTarget


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def router(catalogue) -> Router:
    return Router(catalogue)


def orgs(decision: RoutingDecision) -> set[str]:
    return set(decision.organisation_ids)


def areas(decision: RoutingDecision) -> set[str]:
    return set(decision.area_ids)


# -- routing --------------------------------------------------------------------------------------------------


def test_an_idea_touching_two_organisations_goes_to_both_with_the_reason(router, catalogue):
    decision = router.route(
        "Fjärrvärme till det nya badhuset",
        "Det nya badhuset värms med el. Anslut det till fjärrvärmenätet när det byggs om.",
    )
    assert orgs(decision) == {"tekniska-verken", "kiruna-kommun"}
    assert areas(decision) == {"klimat-och-energi", "kultur-och-fritid"}
    assert not decision.triage
    assert decision.catalogue_version == catalogue.version
    assert "'fjärrvärme' -> klimat-och-energi" in decision.reason
    assert "'badhuset' -> kultur-och-fritid -> kiruna-kommun/kultur-och-fritid" in decision.reason
    assert "tekniska-verken/energi" in decision.reason
    units = {(t.organisation, t.unit) for t in decision.organisations}
    assert units == {("tekniska-verken", "energi"), ("kiruna-kommun", "kultur-och-fritid")}
    assert all(t.score > 0 for t in decision.organisations) and all(a.score > 0 for a in decision.areas)


@pytest.mark.parametrize(
    "text",
    ["Fjärrvärmen fungerar dåligt", "Anslut huset till fjärrvärmenätet", "Värmen försvinner på natten"],
)
def test_inflected_and_compound_district_heating_reaches_the_energy_unit(router, text):
    decision = router.route("Förslag", text)
    assert "klimat-och-energi" in areas(decision)
    assert RoutingTarget(organisation="tekniska-verken", unit="energi", score=0) in [
        t.model_copy(update={"score": 0}) for t in decision.organisations
    ]


def test_an_organisation_keyword_routes_whatever_the_area(router):
    decision = router.route("Bättre busstider", "Hyresgästerna i Lombolo vill kunna ta bussen till jobbet.")
    assert "trafik-och-mobilitet" in areas(decision)
    assert {"kiruna-kommun", "kirunabostader"} <= orgs(decision)
    assert "'hyresgästerna' -> " in decision.reason


def test_the_municipality_and_the_housing_company_are_named_by_their_common_names(router):
    decision = router.route(
        "Informationsträffar om flytten av stadskärnan",
        "Invånarna vet inte när deras kvarter ska flyttas. Ordna öppna träffar med kommunen och bostadsbolaget.",
    )
    assert orgs(decision) == {"kiruna-kommun", "kirunabostader"}
    assert "stadsomvandling" in areas(decision)


def test_the_companies_and_the_group_mean_every_organisation(router):
    decision = router.route(
        "Mentorprogram för nya chefer",
        "Nya chefer i förvaltningarna får lite stöd. Låt erfarna chefer från bolagen vara mentorer.",
    )
    assert orgs(decision) == {"kiruna-kommun", "tekniska-verken", "kirunabostader"}
    assert areas(decision) == {"arbetssatt-och-arbetsmiljo"}


def test_a_cross_cutting_area_does_not_drag_in_its_responsible_when_another_organisation_acts(router):
    decision = router.route(
        "Felanmälan med foto i appen",
        "Hyresgäster vill kunna skicka en bild på felet direkt när de gör felanmälan.",
    )
    assert areas(decision) == {"boende", "digitalisering"}
    assert orgs(decision) == {"kirunabostader"}


def test_a_cross_cutting_area_alone_goes_to_its_responsible(router):
    decision = router.route("Digitala möten", "Vi borde kunna använda en digital plattform och surfplattor.")
    assert "digitalisering" in areas(decision)
    assert orgs(decision) == {"kiruna-kommun"}
    assert decision.organisations[0].unit == "kommunledning"


def test_english_ideas_are_routed(router):
    decision = router.route(
        "Heat pumps in the old apartment blocks",
        "Exhaust air heat pumps in the older buildings would cut the heat demand for the tenants.",
    )
    assert orgs(decision) == {"kirunabostader", "tekniska-verken"}
    assert areas(decision) == {"klimat-och-energi", "boende"}


def test_english_phrases_match_as_phrases(router):
    decision = router.route("District heating for the school", "Connect the school to district heating.")
    assert {"klimat-och-energi", "utbildning"} <= areas(decision)
    assert "'district heating' -> klimat-och-energi" in decision.reason


def test_title_words_weigh_more_than_description_words(router):
    in_title = router.route("Snöröjning", "Vi har en fundering.")
    in_description = router.route("En fundering", "Snöröjning.")
    score = {d: next(a.score for a in d.areas if a.area == "trafik-och-mobilitet") for d in (in_title, in_description)}
    assert score[in_title] > score[in_description]


def test_several_areas_are_chosen_when_the_idea_touches_several(router):
    decision = router.route(
        "Sopsortering i skolmatsalen",
        "Eleverna slänger allt i samma kärl. Sätt upp sorteringsstationer och låt eleverna väga matsvinnet.",
    )
    assert areas(decision) == {"utbildning", "miljo-och-kretslopp"}
    assert orgs(decision) == {"kiruna-kommun", "tekniska-verken"}


def test_each_organisation_appears_once_with_its_strongest_unit(router):
    decision = router.route(
        "Läxhjälp på biblioteket för eleverna",
        "Skolorna och biblioteket kan tillsammans erbjuda läxhjälp efter skolan.",
    )
    assert decision.organisation_ids == ("kiruna-kommun",)
    assert {t.unit for t in decision.units} >= {"barn-och-utbildning", "kultur-och-fritid"}


def test_the_same_idea_gets_the_same_decision(router):
    first = router.route("Cykelvägar som plogas först", "Cykelbanorna plogas sist efter snöfall.")
    second = router.route("Cykelvägar som plogas först", "Cykelbanorna plogas sist efter snöfall.")
    assert first == second


# -- triage ---------------------------------------------------------------------------------------------------


def test_nothing_matching_goes_to_triage_at_the_innovation_office(router):
    decision = router.route("Hej", "Jag undrar om det går att göra något åt det här.")
    assert decision.triage
    assert decision.organisation_ids == (TRIAGE_ORGANISATION,)
    assert decision.areas == ()
    assert decision.reason == TRIAGE_REASON
    assert "Ingen regel matchade" in decision.reason


def test_an_idea_about_the_idea_process_goes_to_the_innovation_office_without_triage(router):
    decision = router.route(
        "Idéerna syns inte för oss som lämnat dem",
        "Det vore bra om alla kunde se vilka idéer som lämnats in och vad som hänt med dem.",
    )
    assert decision.organisation_ids == (TRIAGE_ORGANISATION,)
    assert not decision.triage
    assert "innovationsplattformen" in decision.reason


@pytest.mark.parametrize(
    ("title", "description"),
    [
        ("", ""),
        ("   ", "\n\t"),
        ("😀🎉🚀", "🙈" * 500),
        ("Привет", "Это идея на русском языке без ключевых слов."),
        ("مرحبا", "هذه فكرة باللغة العربية"),
        ("你好世界", "这是一个想法" * 300),
        ("x" * 10_000, "y" * 10_000),
        ("\x00\x01\x02", "\u200b\u200d\ufeff"),
    ],
)
def test_odd_text_never_raises_and_goes_to_triage(router, title, description):
    decision = router.route(title, description)
    assert decision.triage
    assert decision.organisation_ids == (TRIAGE_ORGANISATION,)


def test_an_enormous_idea_is_routed_by_what_it_says(router):
    text = ("Fjärrvärmen i badhuset är för dålig. " + "Lorem ipsum dolor sit amet. " * 2000)[:60_000]
    decision = router.route("Badhuset", text)
    assert {"tekniska-verken", "kiruna-kommun"} <= orgs(decision)


def test_mixed_scripts_still_find_the_swedish_words(router):
    decision = router.route("Snöröjning 🚜", "Привет! Gatorna plogas för sent. 你好")
    assert "trafik-och-mobilitet" in areas(decision)
    assert not decision.triage


# -- hints ----------------------------------------------------------------------------------------------------


def test_a_valid_area_hint_adds_the_area_and_its_organisation(router):
    decision = router.route("Snöröjning", "Gatorna plogas för sent.", area_hints=["boende"])
    assert {"trafik-och-mobilitet", "boende"} <= areas(decision)
    assert "kirunabostader" in orgs(decision)
    assert "inlämnarens förslag -> boende" in decision.reason


def test_a_hint_alone_routes_an_otherwise_unplaceable_idea(router):
    decision = router.route("Hej", "Något om det här.", organisation_hints=["tekniska-verken"])
    assert not decision.triage
    assert decision.organisation_ids == ("tekniska-verken",)
    assert "inlämnarens förslag -> tekniska-verken" in decision.reason


def test_hints_may_name_a_unit_or_use_the_display_name(router):
    decision = router.route(
        "Hej", "Något om det här.", area_hints=["Klimat och energi"], organisation_hints=["kirunabostader/uthyrning"]
    )
    assert areas(decision) == {"klimat-och-energi"}
    assert ("kirunabostader", "uthyrning") in {(t.organisation, t.unit) for t in decision.organisations}


def test_unknown_hints_are_ignored_and_said_so(router):
    decision = router.route(
        "Hej",
        "Något om det här.",
        area_hints=["no-such-area", "", "  "],
        organisation_hints=["lkab", "kiruna-kommun/no-such-unit"],
    )
    assert decision.triage
    assert "okänt områdesförslag ignorerat: 'no-such-area'" in decision.reason
    assert "okänt organisationsförslag ignorerat: 'lkab'" in decision.reason


def test_hints_of_the_wrong_type_do_not_crash(router):
    decision = router.route("Snöröjning", "Gatorna plogas för sent.", area_hints=[None, 3], organisation_hints="x")  # type: ignore[list-item]
    assert "trafik-och-mobilitet" in areas(decision)


# -- feedback -------------------------------------------------------------------------------------------------

REROUTED_TITLE = "Gatlamporna på Bergmästaregatan är släckta"
REROUTED_TEXT = "Gatlamporna längs Bergmästaregatan har varit släckta i två veckor och det är mörkt när barnen går hem."
SIMILAR_TITLE = "Släckta gatlampor på Bergmästaregatan"
SIMILAR_TEXT = (
    "Gatlamporna på Bergmästaregatan har varit släckta i veckor, det är mörkt när barnen går hem från skolan."
)
OFFICER_ORGS = (RoutingTarget(organisation="tekniska-verken", unit="energi", score=1.0),)
OFFICER_AREAS = (AreaMatch(area="trafik-och-mobilitet", score=1.0),)


@pytest.fixture
def memory() -> FeedbackMemory:
    memory = FeedbackMemory()
    assert memory.learn(REROUTED_TITLE, REROUTED_TEXT, OFFICER_ORGS, OFFICER_AREAS)
    return memory


def test_an_idea_like_a_rerouted_one_goes_where_the_officer_sent_it(router, memory):
    before = router.route(SIMILAR_TITLE, SIMILAR_TEXT)
    assert before.organisation_ids == ("kiruna-kommun",)
    after = router.route(SIMILAR_TITLE, SIMILAR_TEXT, feedback=memory)
    assert after.organisation_ids == ("tekniska-verken",)
    assert after.organisations[0].unit == "energi"
    assert after.area_ids == ("trafik-och-mobilitet",)
    assert not after.triage
    assert after.reason.startswith("Liknar en idé som omdirigerats (likhet ")
    assert "tekniska-verken/energi" in after.reason
    assert after.feedback_similarity is not None and memory.threshold <= after.feedback_similarity < 1.0


def test_feedback_given_to_the_constructor_applies_to_every_call(catalogue, memory):
    router = Router(catalogue, feedback=memory)
    decision = router.route(REROUTED_TITLE, REROUTED_TEXT)
    assert decision.organisation_ids == ("tekniska-verken",)
    assert decision.feedback_similarity == 1.0


def test_feedback_leaves_unrelated_ideas_alone(router, memory):
    decision = router.route(
        "Fjärrvärme till det nya badhuset", "Anslut badhuset till fjärrvärmenätet.", feedback=memory
    )
    assert decision.feedback_similarity is None
    assert "tekniska-verken" in orgs(decision)


def test_the_latest_reroute_of_the_same_text_wins():
    memory = FeedbackMemory()
    memory.learn(REROUTED_TITLE, REROUTED_TEXT, (RoutingTarget(organisation="kirunabostader"),), ())
    memory.learn(REROUTED_TITLE, REROUTED_TEXT, OFFICER_ORGS, OFFICER_AREAS)
    assert len(memory) == 1
    suggestion = memory.suggest(REROUTED_TITLE, REROUTED_TEXT)
    assert suggestion is not None and suggestion[0] == OFFICER_ORGS


def test_feedback_round_trips_through_plain_json(router, memory):
    data = json.loads(json.dumps(memory.to_dict()))
    rebuilt = FeedbackMemory.from_dict(data)
    assert len(rebuilt) == len(memory) == 1
    assert rebuilt.suggest(REROUTED_TITLE, REROUTED_TEXT) == memory.suggest(REROUTED_TITLE, REROUTED_TEXT)
    decision = router.route(REROUTED_TITLE, REROUTED_TEXT, feedback=rebuilt)
    assert decision.organisation_ids == ("tekniska-verken",)


def test_unreadable_feedback_data_is_refused():
    with pytest.raises(ValueError, match="version"):
        FeedbackMemory.from_dict({"entries": []})
    with pytest.raises(ValueError, match=r"entries\.0"):
        FeedbackMemory.from_dict({"version": 1, "entries": [{"keys": ["a"], "organisations": [{"unit": 1}]}]})


def test_learned_organisations_missing_from_the_catalogue_are_ignored(router):
    memory = FeedbackMemory()
    memory.learn(REROUTED_TITLE, REROUTED_TEXT, (RoutingTarget(organisation="gone-org"),), ())
    decision = router.route(REROUTED_TITLE, REROUTED_TEXT, feedback=memory)
    assert decision.feedback_similarity is None
    assert "gone-org" not in orgs(decision)


def test_too_short_texts_are_neither_learned_nor_matched():
    memory = FeedbackMemory()
    assert not memory.learn("Hej", "", OFFICER_ORGS, OFFICER_AREAS)
    assert len(memory) == 0
    memory.learn(REROUTED_TITLE, REROUTED_TEXT, OFFICER_ORGS, OFFICER_AREAS)
    assert memory.suggest("", "") is None


def test_the_memory_forgets_the_oldest_beyond_its_capacity():
    memory = FeedbackMemory(capacity=2)
    texts = [
        ("Trasig belysning vid Bergmästaregatan", "Lamporna vid Bergmästaregatan är trasiga sedan länge."),
        ("Isiga trappor vid simhallen", "Trapporna vid simhallen sandas aldrig på morgonen."),
        ("Bullriga fläktar i Lombolo", "Fläktarna på taket i Lombolo bullrar hela natten."),
    ]
    for title, text in texts:
        assert memory.learn(title, text, OFFICER_ORGS)
    assert len(memory) == 2
    assert memory.suggest(*texts[0]) is None
    assert memory.suggest(*texts[2]) is not None


def test_a_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        FeedbackMemory(threshold=0)


# -- evaluation -----------------------------------------------------------------------------------------------


def test_evaluation_reports_bad_lines_and_ends_with_the_scores(router):
    lines = [
        json.dumps(
            {
                "title": "Fjärrvärme",
                "description": "",
                "expect": {"organisations": ["tekniska-verken"], "areas": ["klimat-och-energi"]},
            }
        ),
        "not json",
        json.dumps(
            {
                "title": "Snöröjning",
                "description": "Gatorna plogas sent.",
                "expect": {"organisations": ["kirunabostader"], "areas": ["trafik-och-mobilitet"]},
            }
        ),
        json.dumps({"title": "x"}),
    ]
    out, err = io.StringIO(), io.StringIO()
    organisations_f1, areas_f1, count = evaluate_lines(lines, "ideas.jsonl", router, out, err)
    assert count == 2
    assert out.getvalue().splitlines()[-1] == "organisations_f1=0.500 areas_f1=1.000 ideas=2"
    assert "missing organisations kirunabostader" in out.getvalue()
    assert "ideas.jsonl:2: not valid JSON" in err.getvalue()
    assert "ideas.jsonl:4: missing field 'expect'" in err.getvalue()
    assert (organisations_f1, areas_f1) == (0.5, 1.0)


# -- other catalogues -----------------------------------------------------------------------------------------


def small_catalogue() -> Catalogue:
    return Catalogue.model_validate(
        {
            "version": "test-1",
            "organisations": [
                {"id": "innovationsplattformen", "name": "Innovationsplattformen"},
                {
                    "id": "hamnen",
                    "name": "Hamnbolaget",
                    "keywords": {"kajen": 3},
                    "units": [{"id": "drift", "name": "Drift", "keywords": {"kranförare": 3}}],
                },
            ],
            "areas": [
                {"id": "sjofart", "name": "Sjöfart", "keywords_sv": {"fartyg": 3}, "responsible": ["hamnen/drift"]},
                {"id": "fiske", "name": "Fiske", "keywords_sv": {"fiskebåt": 3}},
            ],
        }
    )


def test_the_router_follows_whatever_catalogue_it_is_given():
    router = Router(small_catalogue())
    decision = router.route("Fartygen väntar", "Kranförarna hinner inte lossa vid kajen.")
    assert decision.catalogue_version == "test-1"
    assert decision.area_ids == ("sjofart",)
    # the area (4.5: title), the unit keyword (3) and the organisation keyword (3)
    assert decision.organisations == (RoutingTarget(organisation="hamnen", unit="drift", score=10.5),)


def test_an_area_that_nobody_answers_for_goes_to_triage_with_the_area():
    decision = Router(small_catalogue()).route("Fiskebåtarna", "")
    assert decision.triage
    assert decision.organisation_ids == (TRIAGE_ORGANISATION,)
    assert decision.area_ids == ("fiske",)
    assert "Ingen ansvarig för fiske" in decision.reason

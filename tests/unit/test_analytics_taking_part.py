"""Issue 18 on analytics' handlers and read model, over the in-memory fakes (no Kafka, no Redis): the submitter's
edits (the idea shows the new text, the timeline keeps the earlier title), withdrawal (final, counted apart in the
figures, out of the response times), the assignee per organisation (officer view only; "my ideas" says only yes
or no), comments shown to everyone with their author's name, "anonym" or removed, an officer's answer marked as
its organisation's, and a merge carrying the merged idea's supporters and followers over (one per person)."""

from __future__ import annotations

import json

import pytest

from services.analytics import access
from services.analytics.domain import CARRIED, MERGED_IN, carried_entries, summarise, timeline_entry
from services.analytics.queries import Listing, check_scope
from shared.events import (
    EngagementKind,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaState,
    IdeaStatusChanged,
)
from tests.unit.test_analytics_handlers import (
    ANNA,
    CATALOGUE,
    ERIK,
    MARIA,
    Analytics,
    at,
    engage,
    event,
    new_id,
    person,
    routed,
    sealed_text,
    status,
    submitted,
)

ERIK_ID = "erik.lindberg"  # an officer of tekniska-verken in the catalogue
DAG_ID = "dag.officer"  # not in the catalogue: shown by id


def edited(idea: str, time, title: str, description: str = "Ny text", by: str = "anna"):
    return event(IdeaEdited(idea_id=idea, title=title, description=description, edited_by=by), time)


def assigned(idea: str, time, assignee: str | None, *, organisation="tekniska-verken", previous=None, by=ERIK_ID):
    payload = IdeaAssigned(
        idea_id=idea, organisation=organisation, assignee=assignee, previous=previous, assigned_by=by
    )
    return event(payload, time)


def comment(idea: str, time, email: str, text: str, *, anonymous=False, official=None, name="Per Niemi"):
    payload = IdeaEngagement(
        idea_id=idea,
        kind=EngagementKind.COMMENT,
        person=person(email, name=name, organisation="kirunabostader"),
        text=sealed_text(email, text),
        anonymous=anonymous,
        official=official,
    )
    return event(payload, time)


@pytest.fixture
def analytics() -> Analytics:
    return Analytics()


def withdrawn(idea: str, time, reason: str | None = None):
    payload = IdeaStatusChanged(
        idea_id=idea, to_state=IdeaState.WITHDRAWN, changed_by="4f2a9c", reason=reason, from_state=IdeaState.ROUTED
    )
    return event(payload, time)


async def an_idea(analytics: Analytics) -> str:
    idea = new_id()
    await analytics.record(
        submitted(idea, at(0), title="Snöröjning vid skolan"), routed(idea, at(0, 1), "tekniska-verken/energi")
    )
    return idea


# --- edits ----------------------------------------------------------------------------------------------------


async def test_an_edit_shows_the_new_text_and_the_timeline_keeps_the_earlier_title(analytics):
    idea = await an_idea(analytics)
    await analytics.record(edited(idea, at(0, 3), "Snöröjning vid Högalidsskolan", "Skotta trapporna tidigt"))
    await analytics.record(edited(idea, at(0, 5), "Snöröjning vid Högalidsskolan i Kiruna"))
    view = await analytics.read.idea(idea)
    assert (view.title, view.description, view.edits) == ("Snöröjning vid Högalidsskolan i Kiruna", "Ny text", 2)
    edits = [item for item in view.timeline if item["kind"] == "edited"]
    assert [item["previous_title"] for item in edits] == ["Snöröjning vid skolan", "Snöröjning vid Högalidsskolan"]
    [summary] = await analytics.store.summaries([idea])
    assert summary.title == view.title and summary.last["kind"] == "edited"
    public = access.idea_document(view, "public")
    assert "edited_by" not in json.dumps(public) and [i["kind"] for i in public["timeline"]].count("edited") == 2


async def test_an_edit_stamped_before_the_submission_still_wins_over_the_submitted_text():
    idea = new_id()
    entries = [
        timeline_entry(e.model_dump(mode="json"), set())
        for e in (edited(idea, at(-1), "Rättad titel"), submitted(idea, at(0), email=None, title="Första titeln"))
    ]
    assert summarise(idea, entries).title == "Rättad titel"


# --- withdrawal -------------------------------------------------------------------------------------------------


async def test_a_withdrawn_idea_is_final_counted_apart_and_left_out_of_the_response_times(analytics):
    idea = await an_idea(analytics)
    other = await an_idea(analytics)
    await analytics.record(withdrawn(idea, at(1), reason="Löst på annat sätt"))
    view = await analytics.read.idea(idea)
    assert view.state == "withdrawn" and view.next_states == [] and view.withdraw_reason == "Löst på annat sätt"
    [item] = [i for i in view.timeline if i.get("to_state") == "withdrawn"]
    assert item["by_submitter"] and "changed_by" not in item  # the submitter's pseudonym is shown to no one
    figures = await analytics.figures()
    assert figures["funnel"]["exits"] == {"declined": 0, "merged": 0, "withdrawn": 1}
    assert figures["overview"]["withdrawn"]["count"] == 1 and figures["overview"]["by_state"]["withdrawn"] == 1
    assert figures["overview"]["open"] == 1  # the other one
    measured = {i["idea_id"] for i in figures["response-times"]["missed"]}
    assert idea not in measured and other in measured  # 30 days on: the other is overdue, the withdrawn is not
    pending = {t["target"]: t["overdue"] + t["pending"] for t in figures["response-times"]["targets"]}
    assert pending == {"acknowledged": 1, "assessed": 1, "decided": 1}
    [mine] = [i for i in await analytics.read.ideas_of(ANNA.email) if i["idea_id"] == idea]
    assert (mine["can_edit"], mine["can_withdraw"], mine["last"]["to_state"]) == (False, False, "withdrawn")


async def test_what_the_submitter_may_still_do_follows_the_lifecycle(analytics):
    idea = await an_idea(analytics)

    async def mine() -> dict:
        return next(i for i in await analytics.read.ideas_of(ANNA.email) if i["idea_id"] == idea)

    assert ((await mine())["can_edit"], (await mine())["can_withdraw"]) == (True, True)
    await analytics.record(status(idea, at(1), "acknowledged"))
    assert ((await mine())["can_edit"], (await mine())["can_withdraw"]) == (False, True)
    await analytics.record(status(idea, at(2), "in-assessment"), status(idea, at(3), "accepted"))
    assert ((await mine())["can_edit"], (await mine())["can_withdraw"]) == (False, False)


# --- assignment -----------------------------------------------------------------------------------------------


async def test_the_assignee_per_organisation_is_for_the_officer_view_and_the_inbox_filters(analytics):
    idea, other, third = await an_idea(analytics), await an_idea(analytics), await an_idea(analytics)
    await analytics.record(
        assigned(idea, at(1), DAG_ID),
        assigned(idea, at(2), ERIK_ID, previous=DAG_ID, by=DAG_ID),
        assigned(other, at(1), DAG_ID),
        assigned(third, at(1), ERIK_ID),
        assigned(third, at(2), None, previous=ERIK_ID),  # taken back: unassigned again
    )
    view = await analytics.read.idea(idea)
    officer = access.idea_document(view, "officer", analytics.read.officer_name)
    assert officer["assignees"] == {"tekniska-verken": {"id": ERIK_ID, "name": "Erik Lindberg"}}
    steps = [
        (i["assignee"], i.get("previous"), i["assigned_by_name"])
        for i in officer["timeline"]
        if i["kind"] == "assigned"
    ]
    assert steps == [(DAG_ID, None, "Erik Lindberg"), (ERIK_ID, DAG_ID, DAG_ID)]
    public = access.idea_document(view, "public", analytics.read.officer_name)
    assert "assignees" not in public and "assigned" not in {i["kind"] for i in public["timeline"]}
    assert ERIK_ID not in json.dumps(public) and DAG_ID not in json.dumps(public)

    scope = check_scope(CATALOGUE, organisation="tekniska-verken")

    async def listed(assigned_filter: str, me: str | None) -> set[str]:
        page = await analytics.read.ideas(Listing(scope, assigned=assigned_filter), officer=True, me=me)
        return {item["idea_id"] for item in page["items"]}

    assert await listed("me", ERIK_ID) == {idea}
    assert await listed("me", DAG_ID) == {other}
    assert await listed("none", ERIK_ID) == {third}
    assert await listed("me", None) == set()
    page = await analytics.read.ideas(Listing(scope), officer=True, me=ERIK_ID)
    item = next(i for i in page["items"] if i["idea_id"] == idea)
    assert item["assignee"] == {"id": ERIK_ID, "name": "Erik Lindberg"}
    mine = {i["idea_id"]: i["assigned"] for i in await analytics.read.ideas_of(ANNA.email)}
    assert mine == {idea: True, other: True, third: False}  # yes or no, never to whom


# --- comments ------------------------------------------------------------------------------------------------


async def test_comments_show_their_authors_name_or_anonym_and_an_officers_answer(analytics):
    idea = await an_idea(analytics)
    await analytics.record(
        comment(idea, at(1), "per.niemi@kirunabostader.se", "Bra idé!"),
        comment(idea, at(2), "lisa@kiruna.se", "Håller med", anonymous=True, name="Lisa Berg"),
        comment(idea, at(3), "erik@tekniskaverken.se", "Vi tittar på det", official="tekniska-verken", name="Erik"),
    )
    view = await analytics.read.idea(idea)
    for kind in ("public", "officer"):
        comments = [i for i in access.idea_document(view, kind)["timeline"] if i.get("engagement") == "comment"]
        shown = [(c["summary"], c.get("author"), c.get("anonymous", False), c.get("official")) for c in comments]
        assert shown == [
            ("Bra idé!", "Per Niemi", False, None),
            ("Håller med", None, True, None),
            ("Vi tittar på det", "Erik", False, "tekniska-verken"),
        ], kind
    stored = json.dumps(await analytics.store.entries(idea))
    assert "Lisa" not in stored and "Per Niemi" not in stored  # sealed, and the anonymous author's name not kept
    [summary] = await analytics.store.summaries([idea])
    assert summary.comments == 3 and summary.last["kind"] == "comment"


async def test_an_erased_commenter_s_comment_is_shown_as_removed_and_still_counted(analytics):
    idea = await an_idea(analytics)
    await analytics.record(comment(idea, at(1), "per.niemi@kirunabostader.se", "Ring mig"))
    await analytics.erase("per.niemi@kirunabostader.se")
    view = await analytics.read.idea(idea)
    [item] = [i for i in access.idea_document(view, "public")["timeline"] if i.get("engagement") == "comment"]
    assert item["removed"] and not item["summary"] and "author" not in item
    assert view.comments == 1


async def test_a_comment_projected_after_its_author_was_erased_is_removed_too(analytics):
    idea = await an_idea(analytics)
    late = comment(idea, at(1), "gone@kiruna.se", "Hemligt")
    await analytics.keyring.erase(analytics.keyring.pseudonym("gone@kiruna.se"))
    await analytics.record(late)
    [item] = [i for i in (await analytics.read.idea(idea)).timeline if i.get("engagement") == "comment"]
    assert item["removed"] and "Hemligt" not in json.dumps(item)


# --- merge carries supporters and followers over ---------------------------------------------------------------


async def test_a_merge_carries_supporters_and_followers_over_one_per_person(analytics):
    target, merged = await an_idea(analytics), await an_idea(analytics)
    await analytics.record(
        engage(target, at(1), "support", "both@kiruna.se"),
        engage(merged, at(1), "support", "both@kiruna.se"),
        engage(merged, at(1, 1), "support", "only@kiruna.se"),
        engage(merged, at(1, 2), "follow", "fan@kiruna.se"),
        status(merged, at(2), "merged", reason="Samma idé", merged_into=target),
    )
    [summary] = await analytics.store.summaries([target])
    assert (summary.supporters, summary.followers) == (2, 1)  # both@ once, only@, and fan@ following
    view = await analytics.read.idea(target)
    assert view.merged_from == [merged]
    [item] = [i for i in view.timeline if i["kind"] == MERGED_IN]
    assert item["from_idea"] == merged and item["from_title"] == "Snöröjning vid skolan"
    # a supporter of the merged idea projected after the merge (another topic, another consumer) is carried too
    await analytics.record(engage(merged, at(1, 3), "support", "late@kiruna.se"))
    assert (await analytics.store.summaries([target]))[0].supporters == 3
    # carried again (a redelivery, the rebuild): nothing changes
    before = analytics.store.summary_documents[target]
    await analytics.record(status(merged, at(2), "merged", reason="Samma idé", merged_into=target))
    assert analytics.store.summary_documents[target] == before


async def test_a_chain_of_merges_carries_to_its_end():
    analytics = Analytics()
    a, b, c = await an_idea(analytics), await an_idea(analytics), await an_idea(analytics)
    await analytics.record(
        engage(a, at(1), "support", "p1@kiruna.se"),
        engage(b, at(1), "support", "p2@kiruna.se"),
        status(b, at(2), "merged", reason="dubblett", merged_into=c),
        status(a, at(3), "merged", reason="dubblett", merged_into=b),
    )
    supporters = {s.idea_id: s.supporters for s in await analytics.store.summaries([a, b, c])}
    assert supporters == {a: 1, b: 2, c: 2}


def test_carried_entries_are_counted_not_shown_and_their_ids_depend_only_on_the_idea_and_the_person():
    idea = new_id()
    merged = summarise(idea, [timeline_entry(submitted(idea, at(0)).model_dump(mode="json"), set())])
    first = carried_entries(merged, {"p1", "p2"}, {"p3"})
    assert [e["kind"] for e in first] == [MERGED_IN, CARRIED, CARRIED, CARRIED]
    assert [e["event_id"] for e in carried_entries(merged, {"p2", "p1"}, {"p3"})] == [e["event_id"] for e in first]


async def test_the_public_list_names_no_one_and_the_inbox_suggests_nothing_without_an_engine(analytics):
    idea = await an_idea(analytics)
    await analytics.record(assigned(idea, at(1), ERIK_ID))
    public = await analytics.read.ideas(Listing(check_scope(CATALOGUE)), officer=False)
    assert public["view"] == "public" and [i["idea_id"] for i in public["items"]] == [idea]
    text = json.dumps(public)
    assert "Anna" not in text and ERIK_ID not in text and "submitter" not in text
    inbox = await analytics.read.ideas(Listing(check_scope(CATALOGUE)), officer=True, me=ERIK_ID)
    assert inbox["items"][0]["similar"] == [] and inbox["items"][0]["submitter"]["name"] == "Anna Svensson"
    assert access.assignment_refusal(None, "tekniska-verken") and access.assignment_refusal(MARIA, "tekniska-verken")
    assert access.assignment_refusal(ERIK, "tekniska-verken") is None

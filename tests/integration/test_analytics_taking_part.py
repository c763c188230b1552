"""Issue 18 on analytics against the real Kafka and Redis, asked with real tokens from the local Keycloak: the new
events published to their topics (an edit, a withdrawal, assignments, comments named, "anonym" and an officer's
answer, support and follow, a merge) and seen in the API and on the pages without JavaScript: an idea's page
(comments for everyone, follow, the "anonym" checkbox, similar ideas), "my ideas" (edit and withdraw forms, what
happened last, the messages intake sends back), the inbox (assigned to me / unassigned, the assign form, suggested
duplicates with their merge form), every idea's list searched with stemming, the similar ideas API; bad input
answers 422 naming the field; and the rebuild restores every answer as it was."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.analytics.app import create_app
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from shared.events import (
    EngagementKind,
    Envelope,
    IdeaAssigned,
    IdeaEdited,
    IdeaEngagement,
    IdeaRouted,
    IdeaState,
    IdeaStatusChanged,
    IdeaSubmitted,
    RoutingTarget,
)
from shared.keyring import Keyring
from shared.topics import Topics
from tests.integration.test_analytics_projections import people_keyring
from tests.support.apps import running
from tests.support.identity import ANNA, EMAIL, ERIK, MARIA, PER, bearer
from tests.support.kafka import eventually, raw_producer

pytestmark = pytest.mark.kafka

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)  # a Monday
A = "a18a0000-0000-4000-8000-00000000000a"  # Anna's, edited, commented on, supported, followed; E merged into it
B = "a18b0000-0000-4000-8000-00000000000b"  # Per's, the same idea in other words: a suggested duplicate of A
C = "a18c0000-0000-4000-8000-00000000000c"  # Anna's, withdrawn
D = "a18d0000-0000-4000-8000-00000000000d"  # Per's, assigned to Maria, acknowledged
E = "a18e0000-0000-4000-8000-00000000000e"  # anonymous, merged into A: its supporters count on A
TITLE_A = "Snöröjningen på gångbanorna vid Högalidsskolan"
EDITED_A = "Snöröjningen på gångbanorna vid Högalidsskolan i Kiruna"
TEXT_A = "Gångbanorna vid skolan plogas för sent på morgonen och barnen halkar på väg till skolan."
MARIA_ID = "maria.nilsson"


def ev(payload, minutes: float) -> Envelope:
    return Envelope.wrap(payload, source="/tests/issue18", time=T0 + timedelta(minutes=minutes))


def routed(idea: str, minutes: float, organisation: str = "kiruna-kommun") -> Envelope:
    target = RoutingTarget(organisation=organisation)
    return ev(IdeaRouted(idea_id=idea, organisations=(target,), reason="'skola' -> utbildning"), minutes)


def changed(idea: str, minutes: float, to: str, by: str, **more) -> Envelope:
    return ev(IdeaStatusChanged(idea_id=idea, to_state=IdeaState(to), changed_by=by, **more), minutes)


async def history(topics: Topics, keyring: Keyring) -> list[tuple[str, Envelope]]:
    s, r, c, e = topics.submitted, topics.routed, topics.status_changed, topics.engagement

    async def who(email: str, name: str, organisation: str = "kiruna-kommun"):
        return await keyring.person_ref(email, name, organisation=organisation)

    anna, _ = await who(EMAIL[ANNA], "Anna Svensson")
    per, per_key = await who(EMAIL[PER], "Per Niemi", "kirunabostader")
    lisa, lisa_key = await who("lisa.berg@kiruna.se", "Lisa Berg")
    maria, maria_key = await who(EMAIL[MARIA], "Maria Nilsson")
    kim, _ = await who("kim@kiruna.se", "Kim Kero")

    def submitted(idea, minutes, title, text, person):
        payload = IdeaSubmitted(idea_id=idea, title=title, description=text, submitter=person, anonymous=not person)
        return ev(payload, minutes)

    def engaged(idea, minutes, kind, person, key=None, text=None, **more):
        sealed = key.seal(text) if text else None
        return ev(IdeaEngagement(idea_id=idea, kind=EngagementKind(kind), person=person, text=sealed, **more), minutes)

    return [
        (s, submitted(A, 0, TITLE_A, TEXT_A, anna)),
        (r, routed(A, 1)),
        (topics.edited, ev(IdeaEdited(idea_id=A, title=EDITED_A, description=TEXT_A, edited_by=anna.pseudonym), 5)),
        (e, engaged(A, 6, "comment", per, per_key, "Håller med, det är halt varje morgon")),
        (e, engaged(A, 7, "comment", lisa, lisa_key, "Mina barn har ramlat där", anonymous=True)),
        (e, engaged(A, 8, "comment", maria, maria_key, "Vi ser över plogordningen", official="kiruna-kommun")),
        (e, engaged(A, 9, "support", per)),
        (e, engaged(A, 9.5, "follow", per)),
        (s, submitted(B, 10, "Skotta gångvägarna vid skolan tidigare",
                      "Gångvägarna vid skolan skottas för sent på morgonen, barnen halkar.", per)),
        (r, routed(B, 11)),
        (s, submitted(C, 20, "Fler laddstolpar vid hyreshusen", "Laddplatser för elbilar vid husen.", anna)),
        (r, routed(C, 21, "kirunabostader")),
        (c, changed(C, 22, "withdrawn", anna.pseudonym, from_state=IdeaState.ROUTED, reason="Finns redan")),
        (s, submitted(D, 30, "Solceller på förskolans tak", "Solpaneler på taket till förskolan Bullerbyn.", per)),
        (r, routed(D, 31)),
        (topics.assignments, ev(IdeaAssigned(idea_id=D, organisation="kiruna-kommun", assignee="johan.kero",
                                             assigned_by=MARIA_ID), 32)),
        (topics.assignments, ev(IdeaAssigned(idea_id=D, organisation="kiruna-kommun", assignee=MARIA_ID,
                                             previous="johan.kero", assigned_by=MARIA_ID), 33)),
        (c, changed(D, 34, "acknowledged", MARIA_ID, organisation="kiruna-kommun")),
        (s, submitted(E, 40, "Snöröjning vid busshållplatserna", "Hållplatserna skottas sent.", None)),
        (r, routed(E, 41)),
        (e, engaged(E, 42, "support", kim)),
        (e, engaged(E, 43, "support", per)),  # Per supports A too: one supporter of A
        (c, changed(E, 44, "merged", MARIA_ID, reason="Samma idé", merged_into=A, organisation="kiruna-kommun")),
    ]  # fmt: skip


async def settled(client: httpx.AsyncClient) -> bool:
    """Every event above is projected (each idea's state, A's counts, the merge carried over)."""
    docs = {}
    for idea in (A, B, C, D, E):
        answer = await client.get(f"/api/v1/ideas/{idea}")
        if answer.status_code != 200:
            return False
        docs[idea] = answer.json()
    a = docs[A]
    return (
        all(doc["submitted_at"] and doc["organisations"] for doc in docs.values())  # submitted and routed
        and (a["title"], a["comments"], a["supporters"], a["followers"]) == (EDITED_A, 3, 2, 1)
        and a["merged_from"] == [E]
        and docs[B]["state"] == "routed"
        and docs[C]["state"] == "withdrawn"
        and docs[D]["state"] == "acknowledged"
        and docs[E]["state"] == "merged"
        and len([t for t in docs[D]["timeline"] if t["kind"] == "status-changed"]) == 1
        and (await client.get(f"/api/v1/ideas/{D}", headers=bearer(MARIA))).json()["assignees"]
        == {"kiruna-kommun": {"id": MARIA_ID, "name": "Maria Nilsson"}}
    )


async def publish(kafka_settings, script) -> None:
    async with raw_producer(kafka_settings) as producer:
        for topic, envelope in script:
            await producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.subject.encode())


def unscored(text: str) -> str:
    """An answer without the similar-ideas engine's scores: the engine refreshes its vector lengths only when the
    number of ideas moved by 5 % (shared/similarity.py, REFRESH_SHARE), so a score depends a little on the order in
    which ideas came and went; which ideas are suggested, and why (the shared words), does not."""
    return re.sub(r'"score":[0-9.]+', '"score":_', text)


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["idea_id"] for item in answer.json()["items"]]


async def test_issue_18_on_the_read_side_and_its_rebuild(service_settings, topics, kafka_settings):
    settings = service_settings(AnalyticsSettings)
    async with running(create_app(settings)) as client, people_keyring(settings) as keyring:
        await publish(kafka_settings, await history(topics, keyring))
        await eventually(lambda: settled(client), timeout=60, interval=0.3)
        maria, anna, per = bearer(MARIA), bearer(ANNA), bearer(PER)

        # --- an idea's page: the edit, comments for everyone, the merge carried over, similar ideas ---------
        public = (await client.get(f"/api/v1/ideas/{A}")).json()
        assert public["view"] == "public" and public["edits"] == 1 and public["description"] == TEXT_A
        [edit] = [t for t in public["timeline"] if t["kind"] == "edited"]
        assert edit["previous_title"] == TITLE_A and "edited_by" not in edit
        comments = [t for t in public["timeline"] if t.get("engagement") == "comment"]
        assert [(c.get("author"), c.get("anonymous", False), c.get("official")) for c in comments] == [
            ("Per Niemi", False, None), (None, True, None), ("Maria Nilsson", False, "kiruna-kommun"),
        ]  # fmt: skip
        assert "Lisa" not in json.dumps(public) and "@" not in json.dumps(public)
        page = await client.get(f"/ideas/{A}")
        assert page.status_code == 200 and EDITED_A in page.text and "Tidigare titel" in page.text
        assert "Per Niemi" in page.text and "anonym" in page.text and "Svar från Kiruna kommun" in page.text
        assert "Mina barn har ramlat där" in page.text and "Lisa" not in page.text
        assert "Liknande idéer" in page.text and f'href="/ideas/{B}"' in page.text  # B says the same
        assert f'href="/ideas/{E}"' in page.text  # "En liknande idé slogs samman med den här"
        assert "<script" not in page.text  # works without JavaScript
        signed_in = (await client.get(f"/en/ideas/{A}", headers=per)).text
        assert f'action="/en/ideas/{A}/follow"' in signed_in and 'type="checkbox" name="anonymous"' in signed_in
        assert "Similar ideas" in signed_in
        done = (await client.get(f"/ideas/{A}?done=follow", headers=per)).text
        assert 'id="done-message"' in done and "Du följer nu idén" in done
        assert "Kommentaren skickades inte" in (await client.get(f"/ideas/{A}?comment=invalid", headers=per)).text

        # the officer view: who has it, and the assignments on the timeline
        officer = (await client.get(f"/api/v1/ideas/{D}", headers=maria)).json()
        assert officer["assignees"] == {"kiruna-kommun": {"id": MARIA_ID, "name": "Maria Nilsson"}}
        steps = [(t["assignee_name"], t.get("previous_name")) for t in officer["timeline"] if t["kind"] == "assigned"]
        assert steps == [("Johan Kero", None), ("Maria Nilsson", "Johan Kero")]
        public_d = (await client.get(f"/api/v1/ideas/{D}", headers=bearer(ERIK))).json()
        assert "assignees" not in public_d and MARIA_ID not in json.dumps(public_d)
        assert "Tilldelad Maria Nilsson" in (await client.get(f"/ideas/{D}", headers=maria)).text

        # --- the inbox: assignment filters, the assign form, suggested duplicates and their merge form -----
        inbox = "/api/v1/ideas?organisation=kiruna-kommun"
        assert ids(await client.get(f"{inbox}&assigned=me", headers=maria)) == [D]
        assert ids(await client.get(f"{inbox}&assigned=none", headers=maria)) == [E, B, A]
        items = {i["idea_id"]: i for i in (await client.get(inbox, headers=maria)).json()["items"]}
        assert items[D]["assignee"] == {"id": MARIA_ID, "name": "Maria Nilsson"} and items[B]["assignee"] is None
        assert [s["idea_id"] for s in items[B]["similar"]][:1] == [A]  # not yet acknowledged: duplicates offered
        assert E not in [s["idea_id"] for s in items[B]["similar"]]  # merged ideas are never suggested
        assert items[D]["similar"] == []  # acknowledged already
        inbox_page = await client.get("/inbox/kiruna-kommun?assigned=none", headers=maria)
        assert inbox_page.status_code == 200 and f'id="idea-{D}"' not in inbox_page.text
        row = inbox_page.text[inbox_page.text.index(f'id="idea-{B}"') :]
        row = row[: row.index("</tr>")]
        assert f'action="/ideas/{B}/merge"' in row and f'name="merged_into" value="{A}"' in row
        assert 'name="next" value="/inbox/kiruna-kommun?assigned=none"' in row
        assert f'action="/ideas/{B}/assign"' in row and 'name="organisation" value="kiruna-kommun"' in row
        select = row[row.index('name="assignee"') :]
        options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select[: select.index("</select>")])
        assert options[0] == (MARIA_ID, "mig (Maria Nilsson)") and options[-1] == ("", "Ingen (ej tilldelad)")
        assert "Möjliga dubbletter" in row and "gemensamma ord" in row
        assert (await client.get("/inbox/kiruna-kommun?assigned=everyone", headers=maria)).status_code == 422
        # what intake says when it sends the officer back from an assign or merge form post
        back = (await client.get(f"/inbox/kiruna-kommun?done=merged&idea={B}", headers=maria)).text
        assert "Sammanslagningen är registrerad" in back and f'href="#idea-{B}"' in back
        refused = await client.get(f"/en/inbox/kiruna-kommun?error=assignee-not-an-officer&idea={B}", headers=maria)
        assert "is not an officer of the organisation" in refused.text

        # --- my ideas: what happened last, edit and withdraw while allowed, intake's messages -----------------
        mine = {i["idea_id"]: i for i in (await client.get("/api/v1/people/me/ideas", headers=anna)).json()["items"]}
        assert list(mine) == [C, A]
        assert (mine[A]["can_edit"], mine[A]["can_withdraw"], mine[A]["assigned"]) == (True, True, False)
        assert mine[A]["last"]["kind"] == "comment" and mine[A]["title"] == EDITED_A
        assert (mine[C]["state"], mine[C]["can_edit"], mine[C]["can_withdraw"]) == ("withdrawn", False, False)
        assert mine[C]["last"] == {"kind": "status-changed", "time": "2025-06-02T08:22:00Z", "to_state": "withdrawn"}
        theirs = {i["idea_id"]: i for i in (await client.get("/api/v1/people/me/ideas", headers=per)).json()["items"]}
        assert theirs[D]["assigned"] is True and MARIA_ID not in json.dumps(theirs)  # yes, never to whom
        my_page = (await client.get("/my/ideas?done=edited", headers=anna)).text
        assert "Ändringen är sparad" in my_page
        assert f'action="/ideas/{A}/edit"' in my_page and f'action="/ideas/{A}/withdraw"' in my_page
        assert f'action="/ideas/{C}/edit"' not in my_page and f'action="/ideas/{C}/withdraw"' not in my_page
        assert "Tillbakadragen" in my_page and "Ny kommentar" in my_page
        refused_edit = (await client.get(f"/en/my/ideas?error=not-editable&idea={A}", headers=anna)).text
        assert "can no longer be edited" in refused_edit
        assert "3–200 tecken" in (await client.get("/my/ideas?error=invalid-title", headers=anna)).text
        assert "That did not work (new-code)" in (await client.get("/en/my/ideas?error=new-code", headers=anna)).text
        merged_mine = (await client.get("/my/ideas", headers=per)).text
        assert f'href="/ideas/{D}"' in merged_mine

        # --- every idea, searched with stemming; the similar ideas API ------------------------------------------
        assert ids(await client.get("/api/v1/ideas?q=snöröjning")) == [E, A]
        assert ids(await client.get("/api/v1/ideas?q=gångbana skola")) == [A]  # "gångbanorna", "Högalidsskolan"
        assert ids(await client.get("/api/v1/ideas?q=snöröjning&state=merged")) == [E]
        assert ids(await client.get("/api/v1/ideas?q=laddstolpe&organisation=kirunabostader")) == [C]
        browse = await client.get("/ideas?q=snöröjning")
        assert browse.status_code == 200 and f'id="idea-{A}"' in browse.text and f'id="idea-{B}"' not in browse.text
        english = await client.get("/en/ideas?state=withdrawn")
        assert english.status_code == 200 and "All ideas" in english.text and f'id="idea-{C}"' in english.text
        similar = await client.get(
            "/api/v1/ideas/similar", params={"title": "Skotta gångvägarna", "description": "vid skolan på morgonen"}
        )
        found = similar.json()["suggestions"]
        assert similar.status_code == 200 and {s["idea_id"] for s in found} <= {A, B} and found
        assert set(found[0]) == {"idea_id", "title", "state", "score", "shared_words", "url"}
        assert found[0]["url"] == f"/ideas/{found[0]['idea_id']}" and 0 < found[0]["score"] <= 1
        few = await client.get("/api/v1/ideas/similar", params={"title": "Snöröjning", "description": "skolan"})
        assert few.json() == {"suggestions": []}  # fewer than three words: nothing yet
        excluded = await client.get(
            "/api/v1/ideas/similar",
            params={"title": EDITED_A, "description": TEXT_A, "exclude": A},
        )
        assert A not in {s["idea_id"] for s in excluded.json()["suggestions"]}

        # --- the figures count withdrawn apart ------------------------------------------------------------------
        overview = (await client.get("/api/v1/stats/overview")).json()
        assert overview["withdrawn"]["count"] == 1 and overview["by_state"]["withdrawn"] == 1
        assert (await client.get("/api/v1/stats/funnel")).json()["exits"] == {
            "declined": 0,
            "merged": 1,
            "withdrawn": 1,
        }

        # --- bad input: 422 naming the field ----------------------------------------------------------------------
        cases = {
            "/api/v1/ideas/similar?title=" + "x" * 201: "title",
            "/api/v1/ideas/similar?description=" + "x" * 10_001: "description",
            "/api/v1/ideas/similar?title=a+b+c&exclude=nope": "exclude",
            "/api/v1/ideas?assigned=everyone": "assigned",
            "/api/v1/ideas?challenge=not-a-uuid": "challenge",
            "/api/v1/ideas?challenge=00000000-0000-4000-8000-000000000000": "challenge",
            "/api/v1/ideas?q=": "q",
        }
        for url, field in cases.items():
            answer = await client.get(url, headers=maria)
            assert answer.status_code == 422, url
            assert field in [e["field"] for e in answer.json()["errors"]], (url, answer.json())

        # --- the rebuild restores every answer ------------------------------------------------------------------
        asked = [
            (f"/api/v1/ideas/{A}", {}),
            (f"/api/v1/ideas/{D}", maria),
            (f"{inbox}&page_size=100", maria),
            (f"{inbox}&assigned=me", maria),
            ("/api/v1/ideas?q=snöröjning", {}),
            ("/api/v1/people/me/ideas", anna),
            ("/api/v1/people/me/ideas", per),
            ("/api/v1/stats/overview", {}),
            ("/api/v1/ideas/similar?title=Skotta+gångvägarna&description=vid+skolan+på+morgonen", {}),
        ]
        before = [(await client.get(url, headers=headers)).text for url, headers in asked]
        store = client._transport.app.state.read_model.store
        assert await store.wipe() > 0
        assert (await client.get(f"/api/v1/ideas/{A}")).status_code == 404
        assert ids(await client.get("/api/v1/ideas?q=snöröjning")) == []  # the mirror saw the wipe
        result = await rebuild(settings, progress=False)
        assert result.ideas == 5 and result.merges_carried == 1
        assert result.events[topics.edited] == 1 and result.events[topics.assignments] == 2
        after = [(await client.get(url, headers=headers)).text for url, headers in asked]
        for (url, _), one, other in zip(asked, before, after, strict=True):
            assert unscored(one) == unscored(other), url

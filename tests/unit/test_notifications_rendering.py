"""The renderer keeps a rendering per kind, language and context and puts each recipient's unsubscribe link in it
(services/notifications/rendering.py): what each recipient gets is what rendering for them alone gives."""

from __future__ import annotations

import pytest

from services.notifications.rendering import KEPT, Renderer, TemplateFailure
from services.notifications.settings import NotificationsSettings


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(NotificationsSettings().templates_dir)


def context(role: str = "officer", title: str = "Fler bänkar vid Luossajärvi") -> dict:
    return {
        "kind": "routed",
        "role": role,
        "lang": "sv",
        "idea_id": "idea-1",
        "title": title,
        "where": "Kiruna kommun",
        "areas": "Parker",
        "rerouted": False,
        "state": "",
        "to_state": None,
        "reason": None,
        "actor": None,
        "comment": None,
        "merged_into": None,
        "merged_link": None,
        "follows_target": False,
        "due": None,
        "anonymous": False,
        "official": None,
        "target": "acknowledged",
        "asker": None,
        "description": None,
        "link": "https://kiruna.example/ideas/idea-1",
    }


def test_each_recipient_gets_their_own_link_as_if_rendered_alone(renderer: Renderer):
    links = [f"https://kiruna.example/api/v1/unsubscribe?token=p{n}.1800000000.sig&x=<{n}>" for n in range(3)]
    for role in ("officer", "submitter"):
        for link in links:
            kept = renderer.render("routed", "sv", context(role), unsubscribe_url=link)
            alone = Renderer(NotificationsSettings().templates_dir)._render(
                "routed", "sv", context(role), unsubscribe_url=link
            )
            assert kept == alone
            assert link in kept.text
            assert link.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in kept.html
    assert len(renderer._kept) == 2  # one per role


def test_a_context_that_cannot_be_kept_is_rendered_for_itself(renderer: Renderer):
    digest = {"day": "2026-11-30", "items": [{"text": "En ny idé", "time": "t", "link": "l"}], "lang": "sv"}
    digest["link"] = None
    made = renderer.render("digest", "sv", digest, unsubscribe_url="https://kiruna.example/u?token=a")
    assert "https://kiruna.example/u?token=a" in made.text
    assert not renderer._kept


def test_few_renderings_are_kept_and_failures_none(renderer: Renderer):
    for n in range(KEPT + 5):
        renderer.render("routed", "sv", context(title=f"idé {n}"), unsubscribe_url="u")
    assert len(renderer._kept) == KEPT
    with pytest.raises(TemplateFailure):
        renderer.render("no-such-kind", "sv", context(), unsubscribe_url="u")
    assert len(renderer._kept) == KEPT


def test_a_comment_is_never_kept(renderer: Renderer):
    words = {**context(), "kind": "comment", "comment": "Bra idé, men tänk på snöröjningen"}
    made = renderer.render("comment", "sv", words, unsubscribe_url="https://kiruna.example/u?token=a")
    assert "snöröjningen" in made.text
    assert not renderer._kept  # the words are not held in the process once told

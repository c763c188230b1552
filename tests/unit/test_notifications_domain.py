"""Notifications' pure logic: who hears what, on which channel, in which words, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notifications import domain
from services.notifications.domain import Contact, Directory, IdeaFacts, News, Preferences, Recipient
from services.notifications.rendering import Renderer, TemplateFailure
from services.notifications.settings import TEMPLATES_DIR
from shared.catalogue import load_catalogue
from shared.events import RoutingTarget
from shared.sealing import pseudonym

CATALOGUE = load_catalogue()
STOCKHOLM = ZoneInfo("Europe/Stockholm")
PEPPER = b"test-pseudonym-pepper"


def p(email: str) -> str:
    """A person as the domain knows them: their pseudonym."""
    return pseudonym(PEPPER, email)


PEOPLE = Directory.of(CATALOGUE, p)
ERIK = p("erik.lindberg@tekniskaverken.kiruna.se")
SARA = p("sara.pekkari@kirunabostader.se")
ANNA, PER, LISA, OLLE = p("anna@kiruna.se"), p("per@kiruna.se"), p("lisa@kiruna.se"), p("olle@kiruna.se")


def news(**overrides) -> News:
    values = dict(
        kind="routed",
        cause_event_id="e1",
        idea_id="i1",
        time=datetime(2026, 3, 2, 9, tzinfo=UTC),
        title="Fjärrvärme <till> badhuset",
        organisations=(RoutingTarget(organisation="tekniska-verken", unit="energi"),),
        areas=("klimat-och-energi", "boende"),
    )
    values.update(overrides)
    return News(**values)


def facts(**overrides) -> IdeaFacts:
    values = dict(idea_id="i1", title="T", submitter=Contact(ANNA), followers=frozenset({PER}))
    values.update(overrides)
    return IdeaFacts(**values)


def test_routed_reaches_submitter_officers_by_organisation_and_area_and_subscribers_once_each():
    audience = domain.routed_audience(facts(), news(), PEOPLE, subscribers={SARA, ANNA, OLLE})
    assert sorted((r.person, r.role) for r in audience.recipients) == sorted(
        [
            (ANNA, "submitter"),  # also a subscriber: heard once, as the submitter
            (ERIK, "officer"),  # Tekniska Verken / energi
            (SARA, "officer"),  # the area 'boende'; also a subscriber
            (OLLE, "subscriber"),
        ]
    )
    assert [r.role for r in audience.recipients] == ["submitter", "officer", "officer", "subscriber"]
    assert audience.organisations == ("tekniska-verken",)


def test_anonymous_ideas_have_no_submitter_to_tell():
    audience = domain.routed_audience(facts(submitter=None), news(areas=()), PEOPLE, subscribers=())
    assert [r.person for r in audience.recipients] == [ERIK]


def test_status_changes_reach_submitter_and_followers_but_not_the_officer_who_made_them():
    f = facts(followers=frozenset({PER, ERIK}))
    for changed_by in ("erik.lindberg", "Erik.Lindberg@TekniskaVerken.Kiruna.se"):
        audience = domain.status_audience(f, news(kind="status-changed"), changed_by, PEOPLE, subscribers=())
        assert [r.person for r in audience.recipients] == [ANNA, PER]


def test_comments_reach_the_followers_but_not_the_commenter():
    audience = domain.comment_audience(facts(followers=frozenset({PER, LISA})), LISA)
    assert [r.person for r in audience.recipients] == [ANNA, PER]


def test_people_are_pseudonyms_and_officers_are_found_by_theirs():
    assert domain.person_id(" Per@Kiruna.SE ", CATALOGUE) == "per@kiruna.se"
    assert domain.person_id("erik.lindberg", CATALOGUE) == "erik.lindberg@tekniskaverken.kiruna.se"
    with pytest.raises(domain.UnknownPerson, match="nobody"):
        domain.person_id("nobody", CATALOGUE)
    assert PEOPLE.person("erik.lindberg") == ERIK and PEOPLE.person(" Per@Kiruna.SE ") == PER
    assert PEOPLE.person("nobody") is None and PEOPLE.person(None) is None
    assert PEOPLE.officer(ERIK).name == "Erik Lindberg" and PEOPLE.officer(ANNA) is None
    assert len(ERIK) == 32 and "@" not in ERIK


def test_the_innovation_office_hears_of_missed_targets():
    assert [r.person for r in domain.deadline_missed_audience(PEOPLE).recipients] == [p("innovation@kiruna.se")]


def test_channels_follow_the_preferences():
    assert domain.plan(Preferences()) == [domain.Plan("in-app", "deliver"), domain.Plan("email", "deliver")]
    daily = domain.plan(Preferences(frequency="daily"))
    assert daily[1] == domain.Plan("email", "digest", "preference: daily digest")
    off = domain.plan(Preferences(channels=frozenset({"email"})))
    assert off[0].action == "skip" and off[1].action == "deliver"


def test_language_comes_from_the_preference_then_the_catalogue_or_the_idea():
    assert domain.language_of(Recipient("a", "officer", "en"), Preferences()) == "en"
    assert domain.language_of(Recipient("a", "officer", "en"), Preferences(language="sv")) == "sv"
    assert domain.language_of(Recipient("a", "follower"), Preferences()) == "sv"


def test_notification_ids_are_one_per_event_recipient_and_channel_and_never_change():
    first = domain.notification_id("e1", "routed", ANNA, "email")
    assert first == domain.notification_id("e1", "routed", ANNA, "email")
    assert (
        len(
            {
                first,
                domain.notification_id("e1", "routed", ANNA, "in-app"),
                domain.notification_id("e2", "routed", ANNA, "email"),
            }
        )
        == 3
    )
    assert domain.message_id(first, "innovation@kiruna.se") == f"<{first}@kiruna.se>"


def test_working_days_skip_weekends_and_the_target_warns_a_day_before_it_is_missed():
    """As analytics measures it: five working days from Monday the 2nd are met up to and including Monday the 9th
    (the due date), missed from the next working day."""
    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert domain.add_working_days(datetime(2026, 3, 6, 9, tzinfo=UTC), 1).weekday() == 0  # Friday -> Monday
    state = lambda day: domain.deadline_state(monday, datetime(2026, 3, day, 10, tzinfo=UTC), 5, 1, STOCKHOLM)  # noqa: E731
    assert [state(d) for d in (2, 5, 6, 8, 9, 10)] == ["ok", "ok", "warning", "warning", "warning", "missed"]
    assert domain.due_date(monday, 5, STOCKHOLM).date().isoformat() == "2026-03-09"


def test_unsubscribe_tokens_are_signed_for_one_person_and_expire():
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    expires = now + timedelta(days=60)
    token = domain.unsubscribe_token(ANNA, "s3cret", expires)
    assert domain.verify_unsubscribe_token(token, "s3cret", now) == ANNA
    assert domain.verify_unsubscribe_token(token, "s3cret", expires - timedelta(seconds=1)) == ANNA

    def refused(candidate: str, at: datetime = now) -> str:
        with pytest.raises(domain.InvalidUnsubscribeToken) as problem:
            domain.verify_unsubscribe_token(candidate, "s3cret", at)
        return problem.value.reason

    assert refused(token, expires) == "expired"
    assert refused(domain.unsubscribe_token(ANNA, "other", expires)) == "bad signature"
    person, at, mac = token.split(".")
    other = domain.unsubscribe_token(PER, "s3cret", expires).split(".")[0]
    assert refused(f"{other}.{at}.{mac}") == "bad signature"  # another person
    assert refused(f"{person}.{int(at) + 86400 * 365}.{mac}") == "bad signature"  # a longer life: the expiry is signed
    assert refused("garbage") == "malformed"
    assert refused(f"{person}.{mac}") == "malformed"  # the first format (no expiry) is refused


def test_webhook_signature_is_hmac_sha256_over_timestamp_and_body():
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert domain.webhook_signature("k", "1700000000", b"{}") == f"sha256={expected}"


@pytest.mark.parametrize("language", ["sv", "en"])
def test_every_template_renders_in_both_languages_and_html_escapes_the_ideas_text(language):
    renderer = Renderer(TEMPLATES_DIR)
    for kind, role in [
        ("routed", "submitter"),
        ("routed", "officer"),
        ("routed", "subscriber"),
        ("status-changed", "submitter"),
        ("status-changed", "follower"),
        ("comment", "follower"),
        ("deadline-warning", "officer"),
        ("deadline-missed", "office"),
    ]:
        n = news(kind=kind, to_state="declined", reason="<b>nej</b>", comment="<i>ja</i>", due=news().time)
        context = domain.template_context(n, Recipient(ANNA, role), language, CATALOGUE, "https://x")
        rendered = renderer.render(kind, language, context, unsubscribe_url="https://u")
        assert rendered.subject and rendered.summary and "https://x/ideas/i1" in rendered.text
        assert "<till>" not in rendered.html and "&lt;till&gt;" in rendered.html
        assert "<b>nej" not in rendered.html and "https://u" in rendered.html


@pytest.mark.parametrize(("language", "says"), [("sv", "Kommentaren är borttagen"), ("en", "The comment was removed")])
def test_a_comment_whose_writer_was_erased_is_told_as_removed(language, says):
    context = domain.template_context(
        news(kind="comment", comment=None), Recipient(ANNA, "submitter"), language, CATALOGUE, "https://x"
    )
    rendered = Renderer(TEMPLATES_DIR).render("comment", language, context, unsubscribe_url="https://u")
    assert says in rendered.summary and says in rendered.text and "None" not in rendered.text


def test_a_broken_template_is_a_template_failure(tmp_path):
    (tmp_path / "sv").mkdir()
    (tmp_path / "sv" / "routed.txt.j2").write_text("{% block subject %}{{ missing }}{% endblock %}")
    with pytest.raises(TemplateFailure, match="missing"):
        Renderer(tmp_path).render("routed", "sv", {}, unsubscribe_url="u")


TARGETS = ("acknowledged", "assessed", "decided")


@pytest.mark.parametrize("language", ["sv", "en"])
@pytest.mark.parametrize(
    ("kind", "role", "extra"),
    [
        ("withdrawn", "officer", {"to_state": "withdrawn", "reason": "<b>fel</b>"}),
        ("withdrawn", "follower", {"to_state": "withdrawn"}),
        ("assigned", "assignee", {"actor": "Erik Lindberg"}),
        ("comment", "submitter", {"official": "tekniska-verken", "actor": "Erik Lindberg", "comment": "<i>ja</i>"}),
        ("comment", "follower", {"anonymous": True, "comment": "<i>ja</i>"}),
        ("status-changed", "follower", {"to_state": "merged", "reason": "Samma", "merged_into": "i2"}),
        *[("deadline-warning", role, {"target": t}) for t in TARGETS for role in ("officer", "assignee")],
        *[("deadline-missed", role, {"target": t}) for t in TARGETS for role in ("office", "assignee")],
        ("challenge-opened", "asked", {"asker": "kirunabostader", "description": "<b>Hur", "path": "/challenges/c"}),
        ("challenge-closing", "asked", {"asker": "kirunabostader", "path": "/challenges/c"}),
    ],
)
def test_the_kinds_of_issue_18_render_in_both_languages_escaped_and_linked(language, kind, role, extra):
    n = news(kind=kind, due=news().time, **extra)
    context = domain.template_context(n, Recipient(ANNA, role), language, CATALOGUE, "https://x")
    rendered = Renderer(TEMPLATES_DIR).render(kind, language, context, unsubscribe_url="https://u")
    assert rendered.subject and rendered.summary and "None" not in rendered.text
    assert f"https://x{n.page}" in rendered.text and "&lt;till&gt;" in rendered.html and "<b>" not in rendered.html
    if kind.startswith("challenge-"):
        assert ("Svara på utmaningen" if language == "sv" else "Answer the challenge") in rendered.html
        assert "Kirunabostäder" in rendered.summary
    if kind == "status-changed":
        follows = "Du följer nu den idén" if language == "sv" else "You now follow that idea"
        assert follows in rendered.text and "https://x/ideas/i2" in rendered.text
    if kind == "comment" and "anonymous" in extra:
        assert "Erik" not in rendered.text and ("anonym" in rendered.summary)
    if kind == "comment" and "official" in extra:
        assert rendered.summary.startswith("Tekniska Verken")


def test_a_kind_unknown_to_the_rebuild_would_be_a_template_missing():
    """Every kind has its template in both languages (the rebuild derives notification ids with the kinds)."""
    for language in ("sv", "en"):
        templates = {p.name.removesuffix(".txt.j2") for p in (TEMPLATES_DIR / language).glob("*.txt.j2")}
        assert set(domain.KINDS) <= templates, set(domain.KINDS) - templates

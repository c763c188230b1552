"""The one header and navigation of every page of the platform (the four services are one site behind the
proxy): the platform's name, the links a person may use, and who is signed in, in Swedish or English."""

from __future__ import annotations

from urllib.parse import urlencode

from markupsafe import Markup, escape

from shared.principal import Principal

TEXT = {
    "sv": {
        "platform": "Kirunas innovationsplattform",
        "submit": "Lämna en idé",
        "my_ideas": "Mina idéer",
        "feed": "Mitt flöde",
        "preferences": "Inställningar",
        "my_data": "Mina uppgifter",
        "inbox": "Inkorg",
        "dashboard": "Översikt",
        "ideas": "Alla idéer",
        "challenges": "Utmaningar",
        "open_challenge": "Öppna utmaning",
        "sign_in": "Logga in",
        "sign_out": "Logga ut",
        "signed_in_as": "Inloggad som",
        "nav": "Huvudmeny",
    },
    "en": {
        "platform": "Kiruna innovation platform",
        "submit": "Submit an idea",
        "my_ideas": "My ideas",
        "feed": "My feed",
        "preferences": "Settings",
        "my_data": "My data",
        "inbox": "Inbox",
        "dashboard": "Dashboard",
        "ideas": "All ideas",
        "challenges": "Challenges",
        "open_challenge": "Open a challenge",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "signed_in_as": "Signed in as",
        "nav": "Main menu",
    },
}

MY_PAGES = (("ideas", "my_ideas"), ("feed", "feed"), ("preferences", "preferences"), ("data", "my_data"))
# The header's look is in shared/static/site.css, served by every service at /static/site.css (no inline style:
# the pages' Content-Security-Policy, shared/csp.py, allows none).
STYLE = '<link rel="stylesheet" href="/static/site.css">'


def site_header(principal: Principal | None, lang: str = "sv", here: str = "/") -> Markup:
    """The header as HTML (escaped): navigation for everyone, "my" pages and sign-out for the signed-in, the
    inbox for officers (their own organisation's; the innovation office's for the group)."""
    t = TEXT["en" if lang == "en" else "sv"]
    en = "/en" if lang == "en" else ""
    links = [
        (f"{en}/" if en else "/", t["submit"]),
        (f"{en}/ideas", t["ideas"]),
        (f"{en}/challenges", t["challenges"]),
        (f"{en}/dashboard", t["dashboard"]),
    ]
    if principal is not None:
        links += [(f"{en}/my/{page}", t[key]) for page, key in MY_PAGES]
        if principal.is_officer and principal.organisation:
            links.append((f"{en}/inbox/{principal.organisation}", t["inbox"]))
        if principal.is_officer:
            links.append((f"{en}/challenges/new", t["open_challenge"]))
    items = "".join(f'<li><a href="{escape(href)}">{escape(label)}</a></li>' for href, label in links)
    if principal is None:
        who = f'<a href="/auth/login?{escape(urlencode({"next": here}))}" id="sign-in">{escape(t["sign_in"])}</a>'
    else:
        who = (
            f'<span>{escape(t["signed_in_as"])} <strong id="signed-in-name">{escape(principal.display_name)}</strong>'
            f'</span><form method="post" action="/auth/logout"><button type="submit" id="sign-out">'
            f"{escape(t['sign_out'])}</button></form>"
        )
    return Markup(
        f'{STYLE}<header class="site-header"><a class="site-name" href="{en or "/"}">{escape(t["platform"])}</a>'
        f'<nav aria-label="{escape(t["nav"])}"><ul>{items}</ul></nav><div class="who">{who}</div></header>'
    )

"""Jinja2 templates: one per event type and language (``templates/<lang>/<kind>.txt.j2`` with the blocks
``subject``, ``summary`` (one line: in-app feed, webhooks, digests) and ``body``), wrapped in the language's
plain-text and HTML layouts. The HTML part is the same body with every text escaped (autoescape), so nothing a
submitter wrote can become markup.

The news is the same for everyone of one role and language (the officers of a routing ...): only the unsubscribe
link differs. So a rendering is kept for the last few contexts, made with a stand-in for the link, and each
recipient's link is put in its place (escaped in the HTML part, as autoescape would). A comment's news is not
kept: its words are opened for the moment they are told, and must not outlive an erasure of their writer here.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path

import jinja2
from markupsafe import escape

from services.notifications.domain import Rendered

LANGUAGES = ("sv", "en")


class TemplateFailure(Exception):
    """A template is missing or cannot be rendered with the news it was given."""


KEPT = 64
"""Renderings kept (by kind, language and context): enough for one event's roles and languages at a time."""


class Renderer:
    def __init__(self, directory: Path) -> None:
        self._stand_in = f"\x00unsubscribe-{secrets.token_hex(8)}\x00"  # appears in no news
        self._kept: OrderedDict[Hashable, Rendered] = OrderedDict()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # read once: no look at the files' times for every mail
        )

    def render(self, kind: str, language: str, context: dict, *, unsubscribe_url: str) -> Rendered:
        if context.get("comment") is not None:  # someone's words: not kept (see above)
            return self._render(kind, language, context, unsubscribe_url=unsubscribe_url)
        try:
            key: Hashable = (kind, language, tuple(context.items()))
            hash(key)
        except TypeError:  # a context with lists (a digest's items): rendered for itself
            return self._render(kind, language, context, unsubscribe_url=unsubscribe_url)
        made = self._kept.get(key)
        if made is None:
            made = self._render(kind, language, context, unsubscribe_url=self._stand_in)
            self._kept[key] = made
            if len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return replace(
            made,
            text=made.text.replace(self._stand_in, unsubscribe_url),
            html=made.html.replace(self._stand_in, str(escape(unsubscribe_url))),
        )

    def _render(self, kind: str, language: str, context: dict, *, unsubscribe_url: str) -> Rendered:
        language = language if language in LANGUAGES else "sv"
        try:
            template = self.env.get_template(f"{language}/{kind}.txt.j2")
            scope = template.new_context(context)  # one for the three blocks, as a whole template's render has
            blocks = {name: "".join(template.blocks[name](scope)).strip() for name in ("subject", "summary", "body")}
            layout = {
                "lang": language,
                "kind": context.get("kind", ""),
                "link": context.get("link"),
                "unsubscribe_url": unsubscribe_url,
            }
            text = self.env.get_template(f"{language}/layout.txt.j2").render(body=blocks["body"], **layout)
            paragraphs = [p.splitlines() for p in blocks["body"].split("\n\n") if p.strip()]
            html = self.env.get_template(f"{language}/layout.html.j2").render(
                subject=blocks["subject"], paragraphs=paragraphs, **layout
            )
        except (jinja2.TemplateError, KeyError) as exc:
            raise TemplateFailure(f"template {language}/{kind}: {type(exc).__name__}: {exc}") from exc
        subject = " ".join(blocks["subject"].split())
        summary = " ".join(blocks["summary"].split())
        return Rendered(subject=subject, summary=summary, text=text.strip() + "\n", html=html)

"""Jinja2 templates: one per event type and language (``templates/<lang>/<kind>.txt.j2`` with the blocks
``subject``, ``summary`` (one line: in-app feed, webhooks, digests) and ``body``), wrapped in the language's
plain-text and HTML layouts. The HTML part is the same body with every text escaped (autoescape), so nothing a
submitter wrote can become markup."""

from __future__ import annotations

from pathlib import Path

import jinja2

from services.notifications.domain import Rendered

LANGUAGES = ("sv", "en")


class TemplateFailure(Exception):
    """A template is missing or cannot be rendered with the news it was given."""


class Renderer:
    def __init__(self, directory: Path) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, kind: str, language: str, context: dict, *, unsubscribe_url: str) -> Rendered:
        language = language if language in LANGUAGES else "sv"
        try:
            template = self.env.get_template(f"{language}/{kind}.txt.j2")
            blocks = {
                name: "".join(template.blocks[name](template.new_context(context))).strip()
                for name in ("subject", "summary", "body")
            }
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

"""The one Content-Security-Policy of the platform's HTML pages (every page-rendering module uses it): scripts and
styles only from the site's own files (no inline ``<script>``, ``<style>``, ``style=""`` or event handlers), images
from the site or ``data:``, fetches and event streams to the site, never framed, forms sent only to the site.

Two origins may be added: the identity provider's, since signing out is a form post that ends at the provider
(``/auth/logout`` redirects there, and browsers check a form's redirects against ``form-action``), and, in a split
deployment, the origin of an API that a page's script calls (the inbox calls intake's)."""

from __future__ import annotations

from urllib.parse import urlsplit

HEADER = "Content-Security-Policy"


def origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL; ``None`` for a relative or empty one."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def page_policy(*, sign_out_to: str | None = None, connect_to: str | None = None) -> str:
    """The policy of a page: ``sign_out_to`` (the identity provider's issuer URL) joins ``form-action``,
    ``connect_to`` (an API on another origin that the page's script calls) joins ``connect-src``."""
    forms = " ".join(o for o in ("'self'", origin(sign_out_to)) if o)
    connect = " ".join(o for o in ("'self'", origin(connect_to)) if o)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; frame-ancestors 'none'; form-action {forms}; base-uri 'none'; object-src 'none'"
    )

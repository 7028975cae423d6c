"""Untrusted text to safe HTML: markdown-it-py with raw HTML off, then nh3 with a narrow allowlist.

Both layers are needed: markdown-it escapes raw HTML, and nh3 removes whatever markdown itself
can produce that we do not want (images, javascript: links smuggled through link syntax).
"""

from __future__ import annotations

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Larger fields are shown as escaped plain text: rendering megabytes of markdown costs time
# and gives nobody a better page.
MARKDOWN_LIMIT = 50_000


class _SafeLinks(MarkdownIt):
    """Refuse every link scheme but http, https, mailto and in-page anchors at parse time."""

    def validateLink(self, url: str) -> bool:  # markdown-it's hook name
        return url.strip().lower().startswith(("http://", "https://", "mailto:", "#"))


_markdown = _SafeLinks("commonmark", {"html": False, "linkify": False}).enable("table")

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}


def render_markdown(text: str) -> SafeString:
    """Sanitized HTML for a markdown string (prompts, responses, guidelines)."""
    if len(text) > MARKDOWN_LIMIT:
        return render_plain(text)
    html = _markdown.render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - nh3 output, allowlisted tags only


def render_plain(text: str) -> SafeString:
    """Escaped text in a <pre> block that keeps line breaks."""
    return mark_safe(f'<pre class="plain">{escape(text)}</pre>')  # noqa: S308 - escaped

"""Turning untrusted text into safe HTML: notes in Markdown, links to the outside world.

Markdown happily passes raw HTML through, so its output is never trusted: nh3 keeps only
a small set of formatting tags, drops `<script>`/`<style>` with their content, allows
only http(s) and mailto links and marks every link noopener noreferrer nofollow.
"""

from urllib.parse import urlsplit

import markdown as markdown_lib
import nh3
from django.utils.safestring import SafeString, mark_safe

INLINE_TAGS = {"a", "abbr", "b", "br", "code", "del", "em", "i", "s", "strong", "sub", "sup"}
BLOCK_TAGS = {"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p", "pre", "ul"}
TABLE_TAGS = {"table", "tbody", "td", "th", "thead", "tr"}
ALLOWED_TAGS = INLINE_TAGS | BLOCK_TAGS | TABLE_TAGS
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"align"}, "td": {"align"}}
EXTERNAL_LINK_REL = "noopener noreferrer nofollow"

_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https", "mailto"},
    link_rel=EXTERNAL_LINK_REL,
)


def render_markdown(text: str) -> SafeString:
    """Markdown to HTML that is safe to show, whatever the text contains."""
    html = markdown_lib.markdown(text or "", extensions=["sane_lists", "tables"])
    # nh3 has just removed everything but the allowed tags and attributes.
    return mark_safe(_cleaner.clean(html))  # noqa: S308


def external_url(url: str) -> str:
    """The URL when it is an absolute http(s) address, else "" (javascript:, data:, junk)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return ""
    return url.strip()

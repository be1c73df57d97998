"""Filters for engage's pages. None of them touches the database."""

from html import escape

from django import template
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from engage import markup
from engage.choices import EventKind, Priority, State, TicketStatus

register = template.Library()


@register.filter
def markdown(text: str):
    """Render a note's Markdown, sanitised."""
    return markup.render_markdown(text)


@register.filter
def external_url(url: str) -> str:
    """The URL if it is safe to link to (http or https), else ""."""
    return markup.external_url(url)


def _label(choices, value) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value or "")


def _priority_label(key) -> str:
    try:
        return str(Priority.from_key(key).label)
    except (KeyError, AttributeError):
        return str(key or "")


@register.filter
def event_details(event) -> str:
    """What an Event's data says, in words; empty when its kind carries nothing more."""
    data = event.data or {}
    if event.kind == EventKind.ASSIGNED:
        if data.get("claimed"):
            return _("claimed by %(user)s") % {"user": data.get("to")}
        if data.get("routed") == "round robin":
            return _("to %(user)s, by round robin") % {"user": data.get("to")}
        if data.get("routed"):
            return _("to %(user)s, by the rule “%(rule)s”") % {
                "user": data.get("to"),
                "rule": data["routed"],
            }
        return _("to %(user)s") % {"user": data.get("to")}
    if event.kind == EventKind.MESSAGE_RECEIVED:
        return _("message %(id)s") % {"id": data.get("external_id")}
    if event.kind == EventKind.DUPLICATE_RECEIVED:
        return _("message %(id)s repeats %(original)s word for word") % {
            "id": data.get("external_id"),
            "original": data.get("duplicate_of"),
        }
    if event.kind == EventKind.REPLY_LOGGED and data.get("external_id"):
        return _("message %(id)s") % {"id": data.get("external_id")}
    if event.kind == EventKind.UNASSIGNED:
        return _("was %(user)s") % {"user": data.get("from")}
    if event.kind == EventKind.PRIORITY_CHANGED:
        text = f"{_priority_label(data.get('from'))} → {_priority_label(data.get('to'))}"
        if data.get("by") == "signals":
            text += " " + _("(from what the message says)")
        elif data.get("by") == "rule":
            text += " " + _("(by a routing rule)")
        return text
    if event.kind == EventKind.STATE_CHANGED:
        text = f"{_label(State, data.get('from'))} → {_label(State, data.get('to'))}"
        until = parse_datetime(data.get("until") or "")
        if until is not None:
            when = formats.date_format(timezone.localtime(until), "SHORT_DATETIME_FORMAT")
            text += " " + _("(until %(until)s)") % {"until": when}
        if data.get("reason") == "new message":
            text += " " + _("(the person wrote again)")
        return text
    if event.kind == EventKind.TAGS_CHANGED:
        parts = []
        if data.get("added"):
            parts.append(_("added %(tags)s") % {"tags": ", ".join(data["added"])})
        if data.get("removed"):
            parts.append(_("removed %(tags)s") % {"tags": ", ".join(data["removed"])})
        return "; ".join(parts)
    if event.kind in {EventKind.FEEDBACK_LINKED, EventKind.FOLLOW_UP_FLAGGED}:
        text = _("ticket “%(title)s”") % {"title": data.get("title", "")}
        if data.get("status"):
            text += " " + _("is %(status)s") % {"status": _label(TicketStatus, data["status"])}
        return text
    return ""


@register.simple_tag
def datalist_options(names) -> str:
    """<option value="…"> for each name (a datalist of hundreds of tags): one escaped join
    instead of a template loop."""
    options = (f'<option value="{escape(name)}"></option>' for name in names)
    return mark_safe("".join(options))  # noqa: S308 - escaped

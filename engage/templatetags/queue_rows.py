"""The queue table's rows, built in Python.

A page shows 50 conversations of twelve cells each. Drawn by the template engine they cost
about 1 ms a row, most of the page's time: hundreds of variable lookups, a translation
lookup per label per row, a URL reversed per link. Here each label is translated once per
page, the conversation link is reversed once, and each row is one string (as Django's admin
builds its change list's rows in Python, `admin_list.items_for_result`).

Every value put in the HTML goes through `_e` (the escaping of `django.utils.html.escape`,
without its lazy-string wrapper, which cost more than the escaping), numbers included; the
translated labels too. Nothing here touches the database.
"""

import functools
import unicodedata
from dataclasses import dataclass
from datetime import tzinfo
from html import escape as _e

from django import template
from django.template.defaulttags import querystring
from django.urls import reverse
from django.utils.formats import get_format
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.timezone import get_current_timezone, localtime
from django.utils.translation import gettext as _

from engage.choices import Channel, Priority, Sentiment, SlaState, Stage, State
from engage.timeformat import Clock

register = template.Library()

EXCERPT_CHARS = 140
# The conversation page's URL with this id in it, to be replaced by each row's id.
_PK = 2_147_483_647
NONE = '<span class="muted">—</span>'


@dataclass(frozen=True)
class _Words:
    """What a page of rows says, translated once in the request's language."""

    channels: dict
    states: dict
    stages: dict
    priorities: dict
    sentiments: dict
    sla_states: dict
    select: str
    merged_into: str
    cycle: str
    nobody: str
    answered: str
    overdue_by: str
    due_in: str
    first_response_target: str
    tell_the_person: str
    datetime_format: str
    short_datetime_format: str
    timezone: tzinfo
    clock: Clock  # the date filter and timesince, translated once a page

    @classmethod
    def now(cls) -> "_Words":
        labels = lambda choices: {value: str(label) for value, label in choices.choices}  # noqa: E731
        return cls(
            channels=labels(Channel),
            states=labels(State),
            stages=labels(Stage),
            priorities={p.value: (p.key, str(p.label)) for p in Priority},
            sentiments=labels(Sentiment),
            sla_states=labels(SlaState),
            # The same messages as the template's {% blocktranslate %}: one translation.
            select=_("Select conversation #%(id)s"),
            merged_into=_("merged into #%(id)s"),
            cycle=_("Cycle"),
            nobody=_("nobody"),
            answered=_("answered"),
            overdue_by=_("overdue by %(late)s"),
            due_in=_("in %(left)s"),
            first_response_target=_("First-response target:"),
            tell_the_person=_("Tell the person"),
            datetime_format=get_format("DATETIME_FORMAT"),
            short_datetime_format=get_format("SHORT_DATETIME_FORMAT"),
            timezone=get_current_timezone(),
            clock=Clock(),
        )


@register.simple_tag(takes_context=True)
def queue_rows(context) -> str:
    """The <tr> of each row of `page` (queries.queue_rows), for `can_work`, `selected`,
    `now` and the queue's `query` (which the tag links keep)."""
    words = _Words.now()
    link = reverse("conversation", args=[_PK]).replace(str(_PK), "{}")
    queue = reverse("queue")
    query, now = context["query"], context["now"]
    can_work, selected = context["can_work"], context["selected"]

    @functools.cache
    def tag_link(name: str) -> str:
        # Once a tag a page: the same few tags recur on its rows.
        return queue + querystring(None, query, tag=name, cursor=None)

    page = context["page"]
    rows = (
        _row(
            c,
            page.tags.get(c.pk, ()),
            words,
            link,
            tag_link,
            now,
            can_work=can_work,
            selected=c.pk in selected,
        )
        for c in page.items
    )
    return mark_safe("\n".join(rows))  # noqa: S308 - every value in it is escaped (_e)


def _since(value, now, words: _Words) -> str:
    return words.clock.since(value, now)


def _until(value, now, words: _Words) -> str:
    return words.clock.until(value, now)


def _excerpt(text: str) -> str:
    """The truncatechars filter, without its work on the many texts that already fit."""
    if len(text) <= EXCERPT_CHARS and unicodedata.is_normalized("NFC", text):
        return text
    return Truncator(text).chars(EXCERPT_CHARS)


def _time(value, text: str, words: _Words) -> str:
    value = localtime(value, words.timezone)
    return (
        f'<time datetime="{_e(value.isoformat())}"'  # the date filter's "c"
        f' title="{_e(words.clock.format(value, words.datetime_format))}">{_e(text)}</time>'
    )


def _sla_badge(c, words: _Words) -> str:
    """The SLA job's flag (engage.services.sla) next to the due time, where it agrees."""
    state = _e(c.sla_state)
    kind = "overdue" if c.sla_state == SlaState.BREACHED else "follow-up"
    label = words.sla_states.get(c.sla_state, c.sla_state)
    return (
        f'<span class="badge sla sla-{state} {kind}" data-sla="{state}">'
        f'<span class="visually-hidden">{_e(words.first_response_target)} </span>'
        f"{_e(label)}</span>"
    )


def _due(c, words: _Words, now) -> str:
    if c.first_response_at:
        return f'<span class="muted">{_e(words.answered)}</span>'
    if c.state == State.CLOSED:
        return NONE
    due = c.first_response_due_at
    if due < now:
        late = words.overdue_by % {"late": _since(due, now, words)}
        badge = " " + _sla_badge(c, words) if c.sla_state == SlaState.BREACHED else ""
        return f'<strong class="overdue" data-overdue>{_time(due, late, words)}</strong>{badge}'
    left = words.due_in % {"left": _until(due, now, words)}
    badge = " " + _sla_badge(c, words) if c.sla_state == SlaState.AT_RISK else ""
    return _time(due, left, words) + badge


def _meta(c, tags, words: _Words, link: str, tag_link) -> str:
    """Beside the excerpt: the id, the state when not open, the merge and the tags."""
    parts = [f'<span class="muted">#{_e(str(c.pk))}</span>']
    if c.state != State.OPEN:
        label = words.states.get(c.state, c.state)
        if c.state == State.SNOOZED and c.snoozed_until:
            until = localtime(c.snoozed_until, words.timezone)
            label += " · " + words.clock.format(until, words.short_datetime_format)
        parts.append(f'<span class="badge badge-{_e(c.state)}">{_e(label)}</span>')
    if c.merged_into_id:
        into = _e(str(c.merged_into_id))
        parts.append(
            f'<a class="badge badge-merged" href="{_e(link.format(c.merged_into_id))}"'
            f' data-merged-into="{into}">'
            f"{_e(words.merged_into % {'id': c.merged_into_id})}</a>"
        )
    parts.extend(f'<a class="tag" href="{_e(tag_link(name))}">#{_e(name)}</a>' for name in tags)
    return " ".join(parts)


def _assignee(c, words: _Words) -> str:
    if c.assignee__username is None:
        return f'<span class="muted">{_e(words.nobody)}</span>'
    # User.get_full_name(), or the username.
    full_name = f"{c.assignee__first_name} {c.assignee__last_name}".strip()
    return _e(full_name or c.assignee__username)


def _row(
    c, tags, words: _Words, link: str, tag_link, now, *, can_work: bool, selected: bool
) -> str:
    pk, url = _e(str(c.pk)), _e(link.format(c.pk))
    key, priority = words.priorities.get(c.priority, (c.priority, c.priority))
    select = ""
    if can_work:
        select = (
            f'<td class="select"><input type="checkbox" name="ids" value="{pk}" form="bulk"'
            f' data-row-select aria-label="{_e(words.select % {"id": c.pk})}"'
            f"{' checked' if selected else ''}></td>"
        )
    handle = f' <span class="handle">{_e(c.contact__handle)}</span>' if c.contact__name else ""
    cycle = ""
    if c.cycle > 1:
        cycle = f' <span class="muted cycle" title="{_e(words.cycle)}">×{_e(str(c.cycle))}</span>'
    language = NONE
    if c.language:
        language = f'<span class="lang" lang="{_e(c.language)}">{_e(c.language.upper())}</span>'
    sentiment = NONE
    if c.sentiment:
        label = words.sentiments.get(c.sentiment, c.sentiment)
        sentiment = f'<span class="sentiment sentiment-{_e(c.sentiment)}">{_e(label)}</span>'
    follow_up = ""
    if c.needs_follow_up:
        follow_up = f'<strong class="follow-up">{_e(words.tell_the_person)}</strong>'
    channel = words.channels.get(c.channel, c.channel)
    stage = words.stages.get(c.stage, c.stage)
    cells = [
        f'<td class="channel"><span class="channel-name channel-{_e(c.channel)}">'
        f"{_e(channel)}</span></td>",
        f'<td class="contact"><span class="contact-name">{_e(c.contact__name or c.contact__handle)}'
        f"</span>{handle}</td>",
        f'<td class="excerpt"><a href="{url}" data-row-link>{_e(_excerpt(c.text))}</a>'
        f' <span class="row-meta">{_meta(c, tags, words, link, tag_link)}</span></td>',
        f'<td><span class="stage stage-{_e(c.stage)}">{_e(stage)}</span>{cycle}</td>',
        f'<td><span class="priority priority-{_e(str(key))}">{_e(str(priority))}</span></td>',
        f"<td>{_assignee(c, words)}</td>",
        f'<td class="age">{_time(c.received_at, _since(c.received_at, now, words), words)}</td>',
        f'<td class="due">{_due(c, words, now)}</td>',
        f'<td class="language">{language}</td>',
        f"<td>{sentiment}</td>",
        f"<td>{follow_up}</td>",
    ]
    # A line between cells, as a template leaves: the row's text (copied, or read by a
    # search on the page) keeps a space between one cell's words and the next's.
    return (
        f'<tr class="state-{_e(c.state)}{" is-selected" if selected else ""}" data-row'
        f' data-row-id="{pk}" data-href="{url}" tabindex="-1">{select}\n'
        + "\n".join(cells)
        + "\n</tr>"
    )

"""The dashboard: the funnel, response times, workload and feedback (issue 6).

/dashboard/ shows the figures of engage.metrics for a period, channel and team member chosen
in its query string (the same parameters as the API's /api/v1/dashboard). Every figure that
counts conversations links to the queue filtered to exactly those conversations; ticket
figures link to the ticket. /dashboard/export/<table>.csv gives each table as CSV, for the
same query string.

Everyone with a role reads it. The figures are computed by engage.metrics in a fixed number
of queries; this module only words them, draws nothing (engage.templatetags.charts does) and
writes nothing.
"""

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db.models import prefetch_related_objects
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from engage import metrics, queries
from engage.choices import Channel, Priority, SlaState, Stage, TicketStatus
from engage.errors import InvalidInput
from engage.templatetags.charts import Bar, Series, duration, number, percent
from engage.views.feedback import csv_cell
from engage.views.responses import viewer_required

# The scope: the query string the page, the exports and the API share ------------------------

SCOPE_PARAMS = ("period", "start", "end", "channel", "assignee")
PERIODS = [
    ("7d", gettext_lazy("7 days")),
    ("30d", gettext_lazy("30 days")),
    ("90d", gettext_lazy("90 days")),
]
DEFAULT_PERIOD = "30d"


def scope_params(query: Mapping[str, str]) -> dict[str, str]:
    """The scope's parameters as given, blanks left out. Dates win over a period: the form
    sends its period back as a hidden field, so dates typed into it must not be ignored."""
    params = {}
    for name in SCOPE_PARAMS:
        value = query.get(name) or ""
        if value.strip():
            params[name] = value.strip()
    if "start" in params or "end" in params:
        params.pop("period", None)
    return params


def scope_of(query: Mapping[str, str]):
    """(scope, params) for a query string; raises InvalidInput for a bad value."""
    params = scope_params(query)
    return metrics.scope_from(params), params


# Links to the conversations behind a figure ---------------------------------------------------


def _bound(moment: datetime, *, end: bool) -> str:
    """A bound of the period for the queue's received_from / received_to: a day when it
    falls on midnight here (an end day is inclusive there), else the time to the second.

    A rolling period ends now, to the microsecond; the link rounds outwards (the start
    down, the end up) to a time a person can read: it never leaves out a conversation that
    the figure counts, and takes in one more only if it came within that same second.
    """
    local = timezone.localtime(moment)
    if local.time() == time.min:
        return (local.date() - timedelta(days=1 if end else 0)).isoformat()
    if local.microsecond:
        local = local.replace(microsecond=0) + timedelta(seconds=1 if end else 0)
    return local.isoformat()


def queue_url(pairs: list[tuple[str, str]]) -> str:
    return reverse("queue") + ("?" + urlencode(pairs) if pairs else "")


@dataclass(frozen=True)
class Links:
    """Queue links for the figures of one scope."""

    scope: object
    assignee: str  # the team member chosen (a username), or ""

    def _base(self, *, received: bool) -> dict[str, str]:
        base = {}
        if received:
            base["received_from"] = _bound(self.scope.start, end=False)
            base["received_to"] = _bound(self.scope.end, end=True)
        if self.scope.channel:
            base["channel"] = self.scope.channel
        if self.assignee:
            base["assignee"] = self.assignee
        return base

    def received(self, **filters: str) -> str:
        """The conversations received in the period (in any state), narrowed by `filters`."""
        pairs = {**self._base(received=True), **filters, "state": filters.get("state", "")}
        return queue_url(list(pairs.items()))

    def now(self, **filters: str) -> str:
        """The conversations as they are now, whenever received, of the scope's channel and
        team member, narrowed by `filters` (the queue's default state: open)."""
        return queue_url(list({**self._base(received=False), **filters}.items()))


def targets_url() -> str:
    try:
        return reverse("targets")
    except NoReverseMatch:  # the targets page ships separately
        return "/targets/"


# Words for the figures -------------------------------------------------------------------------


def stage_label(stage: str) -> str:
    try:
        return str(Stage(stage).label)
    except ValueError:
        return stage


def channel_label(channel: str) -> str:
    try:
        return str(Channel(channel).label)
    except ValueError:
        return channel


def priority_of(label) -> Priority | None:
    """The priority a figure's label names: its key ("urgent"), number or label."""
    for candidate in Priority:
        if str(label).lower() in {
            candidate.key,
            str(candidate.value),
            str(candidate.label).lower(),
        }:
            return candidate
    return None


def person_label(username: str, people: Mapping[str, str]) -> str:
    if not username:
        return _("Unassigned")
    return people.get(username, username)


# Sections ---------------------------------------------------------------------------------


def funnel_section(funnel, links: Links) -> dict:
    steps, previous = [], None
    for step in funnel.steps:
        label = stage_label(step.stage)
        if previous is None:
            detail = _("received")
            said = _("%(stage)s: %(count)s received in the period") % {
                "stage": label,
                "count": number(step.reached),
            }
        else:
            detail = _("%(share)s of %(stage)s") % {
                "share": percent(step.conversion),
                "stage": previous,
            }
            said = _("%(stage)s: %(count)s reached it, %(share)s of %(previous)s") % {
                "stage": label,
                "count": number(step.reached),
                "share": percent(step.conversion),
                "previous": previous,
            }
        note = ""
        if step.median_seconds is not None:
            note = _("median %(time)s") % {"time": duration(step.median_seconds)}
            said += "; " + _("median time in the step %(time)s") % {
                "time": duration(step.median_seconds)
            }
        steps.append(
            Bar(
                label=label,
                value=step.reached,
                text=number(step.reached),
                detail=detail,
                note=note,
                href=links.received(reached=step.stage),
                description=said,
                css=f"funnel-{step.stage}",
            )
        )
        previous = label
    summary = "; ".join(bar.description for bar in steps) + "."
    return {"steps": steps, "summary": summary, "funnel": funnel}


def _share_bar(figures, label: str, href: str) -> Bar:
    share = figures.share_within_target
    # The share is over the conversations that can be judged: answered, or past their due
    # time (engage.metrics.responsiveness).
    judged = figures.within_target + figures.breached
    if share is None:
        detail = _("none due yet")
        said = _("%(label)s: %(count)s conversations, none due yet") % {
            "label": label,
            "count": number(figures.conversations),
        }
    else:
        detail = _("%(within)s of %(total)s") % {
            "within": number(figures.within_target),
            "total": number(judged),
        }
        said = _(
            "%(label)s: %(share)s answered within target (%(within)s of the %(total)s due); "
            "median first response %(median)s"
        ) % {
            "label": label,
            "share": percent(share),
            "within": number(figures.within_target),
            "total": number(judged),
            "median": duration(figures.median_seconds),
        }
    return Bar(
        label=label,
        value=share,
        text=percent(share),
        detail=detail,
        href=href,
        description=said,
    )


def responsiveness_section(figures, links: Links, people: Mapping[str, str]) -> dict:
    by_channel = [
        _share_bar(row, channel_label(row.label), links.received(channel=row.label, answered="yes"))
        for row in figures.by_channel
    ]
    by_priority = []
    for row in figures.by_priority:
        priority = priority_of(row.label)
        label = str(priority.label) if priority else str(row.label)
        href = links.received(priority=priority.key, answered="yes") if priority else ""
        by_priority.append(_share_bar(row, label, href))
    by_person = [
        _share_bar(
            row,
            person_label(row.label, people),
            links.received(assignee=row.label or "none", answered="yes"),
        )
        for row in figures.by_person
    ]
    waiting = list(figures.waiting)
    # What each row shows, in two queries whatever the number (none when already joined).
    prefetch_related_objects(waiting, "contact", "assignee")
    return {
        "figures": figures,
        "overall": figures.overall,
        "answered_url": links.received(answered="yes"),
        "by_channel": by_channel,
        "by_priority": by_priority,
        "by_person": by_person,
        "waiting": waiting,
        # Waiting: received in the period, not answered, not closed (open or snoozed).
        "waiting_url": links.received(answered="no", sort="due"),
        "breached_url": links.received(answered="no", sla=SlaState.BREACHED, sort="due"),
        "at_risk_url": links.received(answered="no", sla=SlaState.AT_RISK, sort="due"),
    }


@dataclass(frozen=True)
class Cell:
    count: int
    href: str


@dataclass(frozen=True)
class WorkloadRow:
    username: str
    label: str
    cells: list[Cell]
    total: Cell


def workload_section(workload, links: Links, people: Mapping[str, str]) -> dict:
    stages = list(Stage)
    rows = []
    for person in workload.people:
        who = person.username or "none"
        cells = [
            Cell(
                person.by_stage.get(stage, 0),
                links.now(assignee=who, stage=stage, state=queries.NOT_CLOSED),
            )
            for stage in stages
        ]
        rows.append(
            WorkloadRow(
                person.username,
                person_label(person.username, people),
                cells,
                Cell(person.total, links.now(assignee=who, state=queries.NOT_CLOSED)),
            )
        )
    totals = [
        Cell(
            sum(person.by_stage.get(stage, 0) for person in workload.people),
            links.now(stage=stage, state=queries.NOT_CLOSED),
        )
        for stage in stages
    ]
    total = Cell(
        sum(person.total for person in workload.people), links.now(state=queries.NOT_CLOSED)
    )
    backlog = list(workload.backlog)
    # The snapshots count every open conversation, of every channel and person.
    series = [
        Series("open", _("Open"), "series-open", queue_url([])),
        Series(
            "unassigned", _("Unassigned"), "series-unassigned", queue_url([("assignee", "none")])
        ),
    ]
    summary = ""
    if backlog:
        first, last = backlog[0], backlog[-1]
        summary = _(
            "%(count)s snapshots from %(first)s to %(last)s. Open: from %(open_first)s to "
            "%(open_last)s. Unassigned: from %(unassigned_first)s to %(unassigned_last)s."
        ) % {
            "count": number(len(backlog)),
            "first": _date(first.taken_at),
            "last": _date(last.taken_at),
            "open_first": number(first.open),
            "open_last": number(last.open),
            "unassigned_first": number(first.unassigned),
            "unassigned_last": number(last.unassigned),
        }
    return {
        "stages": [(stage.value, stage.label) for stage in stages],
        "rows": rows,
        "totals": totals,
        "total": total,
        "backlog": backlog,
        "latest": backlog[-1] if backlog else None,
        # When the people's counts were taken (the minute's snapshot), or None: counted now.
        "as_of": workload.as_of,
        "series": series,
        "summary": summary,
    }


def _date(moment: datetime) -> str:
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def feedback_section(figures, links: Links) -> dict:
    top = [
        Bar(
            label=f"#{ticket.ticket_id} {ticket.title}",
            value=ticket.demand,
            text=ngettext("%(count)s person", "%(count)s people", ticket.demand)
            % {"count": number(ticket.demand)},
            detail=_("%(status)s · %(told)s told")
            % {"status": _status_label(ticket.status), "told": number(ticket.told)},
            href=reverse("feedback_ticket", args=[ticket.ticket_id]),
            description=_("#%(id)s “%(title)s”: %(people)s asked, %(told)s told; %(status)s")
            % {
                "id": ticket.ticket_id,
                "title": ticket.title,
                "people": number(ticket.demand),
                "told": number(ticket.told),
                "status": _status_label(ticket.status),
            },
            css=f"ticket-{ticket.status}",
        )
        for ticket in figures.top
    ]
    told, to_tell = figures.told_after_ship, figures.to_tell_after_ship
    board = reverse("feedback_board")
    shipped_url = board + "?" + urlencode({"status": TicketStatus.SHIPPED})
    # The people still to tell wait in the queue as follow-ups (of any ticket); who was told
    # shows on each shipped ticket's page.
    to_tell_url = queue_url([("follow_up", "yes"), ("state", "")])
    told_rows = [
        Bar(
            label=_("Told"),
            value=told,
            text=number(told),
            detail=percent(told / (told + to_tell)) if told + to_tell else "",
            href=shipped_url,
            description=_("%(count)s people told after a ship") % {"count": number(told)},
            css="told",
        ),
        Bar(
            label=_("Still to tell"),
            value=to_tell,
            text=number(to_tell),
            detail=percent(to_tell / (told + to_tell)) if told + to_tell else "",
            href=to_tell_url,
            description=_("%(count)s people still to tell after a ship")
            % {"count": number(to_tell)},
            css="to-tell",
        ),
    ]
    return {
        "figures": figures,
        "top": top,
        "told_rows": told_rows,
        "told_summary": "; ".join(row.description for row in told_rows),
        "told_scale": told + to_tell or None,
        "board_url": board,
        "shipped_url": shipped_url,
        "declined_url": board + "?" + urlencode({"status": TicketStatus.DECLINED}),
        "to_tell_url": to_tell_url,
    }


def _status_label(status: str) -> str:
    try:
        return str(TicketStatus(status).label)
    except ValueError:
        return status


# The page ------------------------------------------------------------------------------------


def _people() -> dict[str, str]:
    """The community managers' names by username: the team members one can choose."""
    return {
        manager.get_username(): manager.get_full_name() or manager.get_username()
        for manager in queries.community_managers()
    }


# Each section's CSV links: (table, its name in the link).
SECTION_TABLES = {
    "funnel_tables": [("funnel", gettext_lazy("steps")), ("restarts", gettext_lazy("restarts"))],
    "response_tables": [
        ("response-by-channel", gettext_lazy("by channel")),
        ("response-by-priority", gettext_lazy("by priority")),
        ("response-by-person", gettext_lazy("by person")),
        ("waiting", gettext_lazy("waiting")),
    ],
    "workload_tables": [
        ("workload", gettext_lazy("per person")),
        ("backlog", gettext_lazy("backlog")),
    ],
    "feedback_tables": [("top-tickets", gettext_lazy("top tickets"))],
}


@viewer_required
def dashboard(request):
    """The four sections for the scope in the query string; a bad value shows why (400)."""
    people = _people()
    params = scope_params(request.GET)
    offered = sorted(people.items())
    if params.get("assignee") and params["assignee"] not in people:
        # A shared link may name someone the select does not offer: show them.
        offered.append((params["assignee"], params["assignee"]))
    dated = "start" in params or "end" in params
    context = {
        "query": request.GET,
        "params": params,
        "period": "" if dated else params.get("period", DEFAULT_PERIOD),
        "periods": PERIODS,
        "channels": Channel.choices,
        "people": offered,
        "targets_url": targets_url(),
        "errors": [],
        **SECTION_TABLES,
    }
    try:
        scope, params = scope_of(request.GET)
    except InvalidInput as error:
        context["errors"].append(error.message)
        context["error_field"] = error.field
        return render(request, "engage/dashboard.html", context, status=400)
    links = Links(scope, params.get("assignee", ""))
    # The figures job's snapshot of the preset periods when there is one: aggregating 90 days
    # at a million conversations for each view takes half a second (engage.services.figures).
    kept = metrics.kept_figures(scope)
    responses = metrics.responsiveness(scope, kept=kept)
    responsiveness = responsiveness_section(responses, links, people)
    context.update(
        scope=scope,
        now=timezone.now(),
        export_query=urlencode(params),
        funnel=funnel_section(metrics.funnel(scope, kept=kept), links),
        responsiveness=responsiveness,
        response_charts=[
            (
                "by-channel",
                _("By channel"),
                _("Answered within target, by channel"),
                responsiveness["by_channel"],
            ),
            (
                "by-priority",
                _("By priority"),
                _("Answered within target, by priority"),
                responsiveness["by_priority"],
            ),
            (
                "by-person",
                _("By person"),
                _("Answered within target, by person"),
                responsiveness["by_person"],
            ),
        ],
        # The minute's snapshot when there is one: counting every open conversation for each
        # view would cost more than the rest of the page (engage.metrics.workload).
        workload=workload_section(metrics.workload(scope, snapshot=True), links, people),
        feedback=feedback_section(metrics.feedback_figures(scope), links),
    )
    return render(request, "engage/dashboard.html", context)


# CSV exports ----------------------------------------------------------------------------------
#
# Column names are stable and untranslated, for the team's own tools (like the board's export);
# durations in seconds, shares from 0 to 1, times in UTC, blanks for no data.


def _figures_rows(key: str) -> Callable:
    def rows(scope) -> tuple[list[str], list[list]]:
        figures = getattr(metrics.responsiveness(scope), f"by_{key}")
        header = [
            key if key != "person" else "assignee",
            "conversations",
            "answered",
            "median_seconds",
            "p90_seconds",
            "within_target",
            "share_within_target",
        ]
        return header, [
            [
                row.label,
                row.conversations,
                row.answered,
                row.median_seconds,
                row.p90_seconds,
                row.within_target,
                row.share_within_target,
            ]
            for row in figures
        ]

    return rows


def _funnel_rows(scope):
    funnel = metrics.funnel(scope)
    return ["stage", "reached", "conversion", "median_seconds"], [
        [step.stage, step.reached, step.conversion, step.median_seconds] for step in funnel.steps
    ]


def _restart_rows(scope):
    funnel = metrics.funnel(scope)
    return ["reason", "restarts"], [[reason, count] for reason, count in funnel.restart_reasons]


def _waiting_rows(scope, *, site: str):
    waiting = list(metrics.responsiveness(scope).waiting)
    prefetch_related_objects(waiting, "contact", "assignee")
    header = [
        "id",
        "received_at",
        "first_response_due_at",
        "channel",
        "priority",
        "stage",
        "sla_state",
        "assignee",
        "contact",
        "text",
        "url",
    ]
    return header, [
        [
            c.pk,
            c.received_at,
            c.first_response_due_at,
            c.channel,
            Priority(c.priority).key,
            c.stage,
            c.sla_state,
            c.assignee.get_username() if c.assignee else "",
            c.contact.handle,
            c.text,
            site + reverse("conversation", args=[c.pk]),
        ]
        for c in waiting
    ]


def _workload_rows(scope):
    workload = metrics.workload(scope)
    stages = list(Stage.values)
    return ["assignee", *stages, "total"], [
        [person.username, *(person.by_stage.get(stage, 0) for stage in stages), person.total]
        for person in workload.people
    ]


def _backlog_rows(scope):
    workload = metrics.workload(scope)
    return ["taken_at", "open", "unassigned"], [
        [point.taken_at, point.open, point.unassigned] for point in workload.backlog
    ]


def _ticket_rows(scope, *, site: str):
    figures = metrics.feedback_figures(scope)
    return ["id", "title", "status", "demand", "told", "url"], [
        [
            ticket.ticket_id,
            ticket.title,
            ticket.status,
            ticket.demand,
            ticket.told,
            site + reverse("feedback_ticket", args=[ticket.ticket_id]),
        ]
        for ticket in figures.top
    ]


EXPORTS: dict[str, Callable] = {
    "funnel": _funnel_rows,
    "restarts": _restart_rows,
    "response-by-channel": _figures_rows("channel"),
    "response-by-priority": _figures_rows("priority"),
    "response-by-person": _figures_rows("person"),
    "waiting": _waiting_rows,
    "workload": _workload_rows,
    "backlog": _backlog_rows,
    "top-tickets": _ticket_rows,
}
WITH_SITE = {"waiting", "top-tickets"}


def _cell(value) -> str:
    # Shares and durations as plain decimals, whatever csv_cell makes of other values.
    if isinstance(value, float):
        return repr(round(value, 4))
    return csv_cell(value)


@viewer_required
def export(request, table: str):
    """One table of the dashboard as CSV, for the scope in the query string."""
    if table not in EXPORTS:
        raise Http404(_("The dashboard has no table “%(table)s”.") % {"table": table})
    try:
        scope, _params = scope_of(request.GET)
    except InvalidInput as error:
        return HttpResponse(error.message, status=400, content_type="text/plain; charset=utf-8")
    build = EXPORTS[table]
    if table in WITH_SITE:
        header, rows = build(scope, site=request.build_absolute_uri("/")[:-1])
    else:
        header, rows = build(scope)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    filename = f"dashboard-{table}-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


urlpatterns = [
    path("dashboard/", dashboard, name="dashboard"),
    path("dashboard/export/<slug:table>.csv", export, name="dashboard_export"),
]

"""The product team's pages: the feedback board, one ticket, its actions, the CSV export.

Everyone with a role reads them. The actions (status, owner, edit, merge) are the product
team's (and staff's): each parses one form, calls one service and answers 303 back with a
message; input the service calls invalid re-shows the page with the form (422), a conflict
(a merged ticket...) redirects with the refusal, so the person sees the current state.

The board shows BOARD_PER_STATUS tickets per status, the most asked for first, and says how
many more match; a status's own view (its "more" link, or the status filter) pages through
all of them, STATUS_PAGE at a time.
"""

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from engage import permissions, queries
from engage.choices import CLOSED_TICKET_STATUSES, EventKind, TicketStatus
from engage.errors import EngageError, InvalidInput
from engage.forms.feedback import (
    TicketEditForm,
    TicketFilterForm,
    TicketMergeForm,
    TicketOwnerForm,
    TicketStatusForm,
)
from engage.models import Event, FeedbackTicket
from engage.services import feedback as feedback_services
from engage.views.responses import HttpResponseSeeOther, viewer_required

BOARD_PER_STATUS = 25
STATUS_PAGE = 50


def ticket_manager_required(view):
    """A POST by the product team (or staff). Everyone else gets 403, before any parsing."""

    @login_required
    @require_POST
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        permissions.require_manage_tickets(request.user)
        return view(request, *args, **kwargs)

    return wrapper


# The board -----------------------------------------------------------------------------------


@viewer_required
def board(request):
    """Tickets by status, most people first; the filters live in the query string."""
    form = TicketFilterForm(request.GET, areas=queries.product_areas())
    columns, errors, single = [], [], bool(request.GET.get("status"))
    limit = STATUS_PAGE if single else BOARD_PER_STATUS
    if form.is_valid():
        try:
            columns = queries.board(
                form.ticket_filter(), limit=limit, offset=(form.page_number - 1) * limit
            )
        except InvalidInput as error:
            errors.append(error.message)
    else:
        errors = [message for field in form.errors.values() for message in field]
    context = {
        "form": form,
        "query": request.GET,
        "columns": columns,
        "single": single,
        "page": form.page_number,
        "errors": errors,
        "filtered": any(
            request.GET.get(name) for name in ("q", "product_area", "channel", "language")
        ),
        "closed_statuses": [str(status) for status in CLOSED_TICKET_STATUSES],
        "now": timezone.now(),
    }
    return render(request, "engage/feedback/board.html", context, status=400 if errors else 200)


# One ticket ----------------------------------------------------------------------------------


def _label(choices, value) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value or "")


FIELD_LABELS = {
    "title": gettext_lazy("title"),
    "problem": gettext_lazy("problem statement"),
    "product_area": gettext_lazy("product area"),
    "owner": gettext_lazy("owner"),
}


def event_text(event: Event) -> str:
    """What a ticket Event says, in words."""
    data = event.data or {}
    if event.kind == EventKind.TICKET_STATUS_CHANGED:
        return f"{_label(TicketStatus, data.get('from'))} → {_label(TicketStatus, data.get('to'))}"
    if event.kind == EventKind.TICKET_UPDATED:
        parts = []
        for name, value in data.items():
            label = FIELD_LABELS.get(name, name)
            if name == "problem":
                parts.append(_("%(field)s edited") % {"field": label})
            else:
                parts.append(f"{label}: {value or '—'}")
        return "; ".join(parts)
    if event.kind == EventKind.TICKET_MERGED:
        moved = len(data.get("moved", []))
        if "into" in data:
            text = _("merged into #%(id)s “%(title)s”") % {
                "id": data["into"],
                "title": data.get("title", ""),
            }
        else:
            text = _("#%(id)s “%(title)s” was merged into this ticket") % {
                "id": data.get("from"),
                "title": data.get("title", ""),
            }
        return (
            text
            + " · "
            + ngettext("%(count)s conversation moved", "%(count)s conversations moved", moved)
            % {"count": moved}
        )
    if event.kind == EventKind.TICKET_CREATED:
        return f"“{data.get('title', '')}”"
    return ""


def ticket_forms(ticket: FeedbackTicket, bound: dict) -> dict:
    """Every action form of the ticket page, fresh, except the one re-shown with its errors."""
    fresh = {
        "status": lambda: TicketStatusForm(initial={"status": ticket.status}),
        "owner": lambda: TicketOwnerForm(
            owners=queries.ticket_owners(),
            initial={"owner": ticket.owner.get_username() if ticket.owner else ""},
        ),
        "edit": lambda: TicketEditForm(
            initial={
                "title": ticket.title,
                "problem": ticket.problem,
                "product_area": ticket.product_area,
            }
        ),
        "merge": TicketMergeForm,
    }
    return {name: bound[name] if name in bound else make() for name, make in fresh.items()}


def ticket_page(request, ticket_id: int, *, bound: dict | None = None, status: int = 200):
    try:
        ticket = queries.ticket_detail(ticket_id)
    except FeedbackTicket.DoesNotExist:
        raise Http404(_("There is no ticket %(id)s.") % {"id": ticket_id}) from None
    if ticket.merged_into_id is not None:
        return redirect("feedback_ticket", ticket.merged_into_id)
    can_manage = permissions.can_manage_tickets(request.user)
    links = list(ticket.links.all())
    closed = ticket.status in CLOSED_TICKET_STATUSES
    context = {
        "ticket": ticket,
        "links": links,
        "closed": closed,
        "waiting": sum(1 for link in links if link.told_at is None) if closed else 0,
        "history": [(event, event_text(event)) for event in ticket.events.all()],
        "can_manage": can_manage,
        "forms": ticket_forms(ticket, bound or {}) if can_manage else {},
        "product_areas": queries.product_areas() if can_manage else [],
    }
    return render(request, "engage/feedback/ticket.html", context, status=status)


@viewer_required
def ticket_detail(request, pk: int):
    return ticket_page(request, pk)


def act(request, pk: int, form, call: Callable, success: Callable[..., str], *, to=None):
    """Validate `form`, call the service with its data, answer 303 back with a message."""
    back = reverse("feedback_ticket", args=[pk])
    if form.is_valid():
        try:
            result = call(form.cleaned_data)
        except InvalidInput as error:
            if error.field == "ticket":
                raise Http404(error.message) from None
            form.add_error(error.field if error.field in form.fields else None, error.message)
        except EngageError as error:
            messages.error(request, error.message)
            return HttpResponseSeeOther(back)
        else:
            messages.success(request, success(result))
            return HttpResponseSeeOther(to(result) if to else back)
    return ticket_page(request, pk, bound={form.name: form}, status=422)


@ticket_manager_required
def change_status(request, pk: int):
    def call(data):
        return feedback_services.change_ticket_status(
            pk, data["status"], actor=request.user, note=data["note"]
        )

    def success(ticket):
        if ticket.status in CLOSED_TICKET_STATUSES:
            return _(
                "Now %(status)s. The community managers have a follow-up for each person who "
                "has not been told yet."
            ) % {"status": ticket.get_status_display().lower()}
        return _("Now %(status)s.") % {"status": ticket.get_status_display().lower()}

    return act(request, pk, TicketStatusForm(request.POST), call, success)


@ticket_manager_required
def assign_owner(request, pk: int):
    form = TicketOwnerForm(request.POST, owners=queries.ticket_owners())

    def call(data):
        owner = data["owner"]
        return feedback_services.update_ticket(
            pk, actor=request.user, owner=owner, clear_owner=owner is None
        )

    def success(ticket):
        if ticket.owner is None:
            return _("The ticket has no owner now.")
        name = ticket.owner.get_full_name() or ticket.owner.get_username()
        return _("%(user)s owns the ticket now.") % {"user": name}

    return act(request, pk, form, call, success)


@ticket_manager_required
def edit(request, pk: int):
    def call(data):
        return feedback_services.update_ticket(
            pk,
            actor=request.user,
            title=data["title"],
            problem=data["problem"],
            product_area=data["product_area"],
        )

    return act(request, pk, TicketEditForm(request.POST), call, lambda ticket: _("Ticket saved."))


@ticket_manager_required
def merge(request, pk: int):
    def call(data):
        return feedback_services.merge_tickets(pk, data["into"], actor=request.user)

    def success(kept):
        return _("Ticket #%(id)s was merged into this one; its evidence is here now.") % {"id": pk}

    return act(
        request,
        pk,
        TicketMergeForm(request.POST),
        call,
        success,
        to=lambda kept: reverse("feedback_ticket", args=[kept.pk]),
    )


# Export --------------------------------------------------------------------------------------

# Stable column names for the product team's own tools (not translated, like the API's).
EXPORT_COLUMNS = [
    "id",
    "title",
    "product_area",
    "status",
    "owner",
    "demand",
    "evidence_count",
    "told_people",
    "latest_evidence_at",
    "created_at",
    "status_changed_at",
    "url",
]
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A value as a CSV cell that a spreadsheet shows as text, never runs. Times in UTC."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def export_rows(tickets: Iterator[dict], *, site: str) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    # A ticket's page hangs under the board (/feedback/<id>/): one reverse() for every row.
    board_url = site + reverse("feedback_board")
    for ticket in tickets:
        values = {**ticket, "id": ticket["pk"], "url": f"{board_url}{ticket['pk']}/"}
        yield writer.writerow([csv_cell(values[column]) for column in EXPORT_COLUMNS])


@viewer_required
def export(request):
    """The tickets the board's filters match (every one, not the board's top), as CSV."""
    form = TicketFilterForm(request.GET)
    if form.is_valid():
        try:
            tickets = queries.ticket_export(form.ticket_filter())
        except InvalidInput as error:
            errors = [error.message]
        else:
            filename = f"feedback-{timezone.localdate():%Y-%m-%d}.csv"
            response = StreamingHttpResponse(
                export_rows(tickets, site=request.build_absolute_uri("/")[:-1]),
                content_type="text/csv; charset=utf-8",
            )
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
    else:
        errors = [message for field in form.errors.values() for message in field]
    return HttpResponse("\n".join(errors), status=400, content_type="text/plain; charset=utf-8")


urlpatterns = [
    path("feedback/", board, name="feedback_board"),
    path("feedback/export.csv", export, name="feedback_export"),
    path("feedback/<int:pk>/", ticket_detail, name="feedback_ticket"),
    path("feedback/<int:pk>/status/", change_status, name="feedback_status"),
    path("feedback/<int:pk>/owner/", assign_owner, name="feedback_owner"),
    path("feedback/<int:pk>/edit/", edit, name="feedback_edit"),
    path("feedback/<int:pk>/merge/", merge, name="feedback_merge"),
]

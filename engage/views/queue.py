"""Home and the triage queue: filters, stage counts, claim next, bulk actions, saved views.

The queue's state lives in its query string (bookmarkable): every link on the page keeps
the filters, and every POST carries them back (`back`) so that its 303 returns to them.
With no `state` parameter the queue shows open conversations; `state=` shows every state.
"""

import contextlib

from django.conf import settings
from django.contrib import messages
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from engage import permissions, queries
from engage.errors import InvalidInput
from engage.forms import BULK_ACTIONS, BulkActionForm, QueueFilterForm, SavedViewForm
from engage.services import bulk as bulk_services
from engage.services import conversations as conversation_services
from engage.services import saved_views as saved_view_services
from engage.views.responses import HttpResponseSeeOther, viewer_required, worker_required

# The last bulk action's per-row outcomes, shown once by the next queue page.
OUTCOME_KEY = "engage_queue_outcome"


def viewer_post(view):
    """A POST by anyone who may read conversations (saved views are the product team's too)."""
    return viewer_required(require_POST(view))


def queue_url(query: QueryDict | str = "") -> str:
    query = query if isinstance(query, str) else query.urlencode()
    return reverse("queue") + (f"?{query}" if query else "")


@viewer_required
def home(request):
    # Community managers (and staff) start at the queue; the product team at the board.
    if permissions.can_work(request.user):
        return redirect("queue")
    return redirect("feedback_board")


@viewer_required
def queue(request):
    """Conversations, filtered by the query string, one keyset page at a time."""
    return queue_page(request, request.GET)


@viewer_required
def queue_counts(request):
    """The stage tabs with how many conversations the filters find in each: loaded by the
    queue page after it shows (htmx), so that its rows never wait for the counts. A filter
    the page refused gives the tabs without counts."""
    form = QueueFilterForm(request.GET, managers=queries.community_managers())
    counts = queries.stage_tabs()
    stage = ""
    if form.is_valid():
        filters = form.queue_filter()
        stage = filters.stage or ""
        with contextlib.suppress(InvalidInput):  # the page says why; the tabs stay bare
            counts = queries.stage_counts(filters, user=request.user)
    context = {"counts": counts, "query": request.GET, "stage": stage, "counted": True}
    return render(request, "engage/queue/stage_tabs.html", context)


def queue_page(request, query: QueryDict, *, bulk_form=None, saved_view_form=None, status=200):
    """The page for the filters in `query`; a POST that failed re-shows its form in it."""
    managers = queries.community_managers()
    form = QueueFilterForm(query, managers=managers)
    page, counts, errors, stage = None, [], [], ""
    if form.is_valid():
        filters = form.queue_filter()
        stage = filters.stage or ""
        try:
            page = queries.queue_rows(
                filters, user=request.user, cursor=form.cleaned_data["cursor"] or None
            )
            # The counts cost more than the page's rows: they come in their own request.
            counts = queries.stage_tabs()
        except InvalidInput as error:
            errors.append(error.message)
    else:
        errors = [message for field in form.errors.values() for message in field]
    can_work = permissions.can_work(request.user)
    here = saved_view_services.clean_query(query.urlencode())
    if can_work and bulk_form is None:
        bulk_form = BulkActionForm(managers=managers, initial={"back": here})
    selected = set()
    if bulk_form is not None and bulk_form.is_bound:
        # A refused bulk action comes back with its rows still selected.
        bulk_form.is_valid()
        selected = set(bulk_form.cleaned_data.get("ids") or ())
    context = {
        "form": form,
        "query": query,
        "here": here,
        "page": page,
        "counts": counts,
        "stage": stage,
        "errors": errors,
        "now": timezone.now(),
        "can_work": can_work,
        "bulk_form": bulk_form if can_work else None,
        "bulk_limit": bulk_services.limit(),
        "selected": selected,
        "outcome": request.session.pop(OUTCOME_KEY, None),
        "saved_views": queries.saved_views(request.user),
        "saved_view_form": saved_view_form or SavedViewForm(initial={"query": here}),
        "tag_suggestions": queries.tag_suggestions(),
        # What the cached fragments (the filter fields, the bulk bar) show besides the
        # filters: the people the selects offer.
        "managers_key": [(m.pk, m.get_username(), m.get_full_name()) for m in managers],
        "fragment_seconds": settings.ENGAGE_FRAGMENT_SECONDS,
    }
    if errors and status == 200:
        status = 400
    return render(request, "engage/queue.html", context, status=status)


@worker_required
def claim_next(request):
    """Give the caller the oldest-due unassigned open conversation (of the chosen stage)."""
    stage = request.POST.get("stage") or None
    back = reverse("queue") + ("?" + urlencode({"stage": stage}) if stage else "")
    try:
        conversation = conversation_services.claim_next(actor=request.user, stage=stage)
    except InvalidInput as error:
        messages.error(request, error.message)
        return HttpResponseSeeOther(reverse("queue"))
    if conversation is None:
        messages.info(request, _("Nothing left to claim."))
        return HttpResponseSeeOther(back)
    messages.success(request, _("You claimed conversation #%(id)s.") % {"id": conversation.pk})
    return HttpResponseSeeOther(reverse("conversation", args=[conversation.pk]))


def _outcome(action: str, outcomes: list) -> dict:
    """What the next page shows of a bulk action: refused rows first, each with its reason."""
    rows = sorted(outcomes, key=lambda outcome: outcome.ok)
    return {
        "label": str(dict(BULK_ACTIONS)[action]),
        "done": sum(1 for outcome in outcomes if outcome.ok),
        "refused": sum(1 for outcome in outcomes if not outcome.ok),
        "rows": [{"id": o.conversation_id, "ok": o.ok, "message": o.message} for o in rows],
    }


@worker_required
def bulk_action(request):
    """One action on the selected rows, each row on its own; back to the queue with the
    outcome of each. A request the action refuses as a whole re-shows the page (422)."""
    managers = queries.community_managers()
    form = BulkActionForm(request.POST, actor=request.user, managers=managers)
    if form.is_valid():
        try:
            outcomes = bulk_services.apply(
                form.cleaned_data["ids"], form.bulk_action(), actor=request.user
            )
        except InvalidInput as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            request.session[OUTCOME_KEY] = _outcome(form.cleaned_data["action"], outcomes)
            return HttpResponseSeeOther(queue_url(form.back_query()))
    return queue_page(request, form.back_query(), bulk_form=form, status=422)


@viewer_post
def save_view(request):
    """Save the current filters under a name (the same name replaces the old ones)."""
    form = SavedViewForm(request.POST)
    query = QueryDict(request.POST.get("query", "")[:2000])
    if form.is_valid():
        try:
            view = saved_view_services.save_view(
                actor=request.user, name=form.cleaned_data["name"], query=query.urlencode()
            )
        except InvalidInput as error:
            form.add_error("name" if error.field == "name" else None, error.message)
        else:
            messages.success(request, _("View “%(name)s” saved.") % {"name": view.name})
            return HttpResponseSeeOther(queue_url(view.query))
    return queue_page(request, query, saved_view_form=form, status=422)


@viewer_post
def delete_view(request, pk: int):
    try:
        saved_view_services.delete_view(pk, actor=request.user)
    except InvalidInput as error:
        raise Http404(error.message) from None
    messages.success(request, _("Saved view deleted."))
    return HttpResponseSeeOther(queue_url(QueryDict(request.POST.get("back", "")[:2000])))


urlpatterns = [
    path("", home, name="home"),
    path("queue/", queue, name="queue"),
    path("queue/counts/", queue_counts, name="queue_counts"),
    path("queue/claim/", claim_next, name="claim_next"),
    path("queue/bulk/", bulk_action, name="queue_bulk"),
    path("queue/views/", save_view, name="queue_save_view"),
    path("queue/views/<int:pk>/delete/", delete_view, name="queue_delete_view"),
]

"""Home and the triage queue."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from engage import permissions, queries
from engage.errors import InvalidInput
from engage.forms import QueueFilterForm
from engage.services import conversations as conversation_services
from engage.views.responses import HttpResponseSeeOther, viewer_required, worker_required


@viewer_required
def home(request):
    # Everyone starts at the queue until the feedback board (the product team's home) exists.
    return redirect("queue")


@viewer_required
def queue(request):
    """Conversations, filtered by the query string, one keyset page at a time."""
    form = QueueFilterForm(request.GET, managers=queries.community_managers())
    page, errors = None, []
    if form.is_valid():
        try:
            page = queries.queue_page(
                form.queue_filter(), user=request.user, cursor=form.cleaned_data["cursor"] or None
            )
        except InvalidInput as error:
            errors.append(error.message)
    else:
        errors = [message for field in form.errors.values() for message in field]
    context = {
        "form": form,
        "page": page,
        "errors": errors,
        "now": timezone.now(),
        "can_work": permissions.can_work(request.user),
    }
    return render(request, "engage/queue.html", context, status=400 if errors else 200)


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


urlpatterns = [
    path("", home, name="home"),
    path("queue/", queue, name="queue"),
    path("queue/claim/", claim_next, name="claim_next"),
]

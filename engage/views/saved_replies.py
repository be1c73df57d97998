"""Saved replies (canned responses): everyone with a role reads them; community managers
(and staff) create, change and delete them. Every write goes through
engage.services.saved_replies; the conversation page offers them in its reply picker."""

from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from engage import permissions, queries
from engage.choices import ReplyLanguage
from engage.errors import InvalidInput
from engage.models import SavedReply
from engage.services import saved_replies as services
from engage.views.responses import HttpResponseSeeOther, viewer_required, worker_required


class SavedReplyForm(forms.Form):
    """The shape of a saved reply; the service owns the rules (unique titles per language)."""

    title = forms.CharField(
        label=gettext_lazy("Title"),
        max_length=services.TITLE_MAX_LENGTH,
        error_messages={"required": gettext_lazy("Give the saved reply a title.")},
        help_text=gettext_lazy("What the team types to find it, e.g. “Thanks for the feedback”."),
    )
    language = forms.ChoiceField(
        label=gettext_lazy("Language"), choices=ReplyLanguage.choices, required=False
    )
    text = forms.CharField(
        label=gettext_lazy("Text"),
        max_length=services.TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": gettext_lazy("Write the text of the saved reply.")},
        help_text=gettext_lazy(
            "{name} becomes the person's name (or their handle when they have none) and "
            "{handle} their handle without @: write @{handle} for a mention."
        ),
    )


def manager_required(view):
    """A page that changes saved replies, GET or POST: community managers and staff only."""

    @login_required
    @require_http_methods(["GET", "HEAD", "POST"])
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        permissions.require_work(request.user)
        return view(request, *args, **kwargs)

    return wrapper


def list_url(reply: SavedReply | None = None) -> str:
    return reverse("saved_replies") + (f"#saved-reply-{reply.pk}" if reply else "")


def list_page(request, *, form: SavedReplyForm | None = None, status: int = 200):
    can_work = permissions.can_work(request.user)
    context = {
        "groups": queries.saved_reply_groups(),
        "can_work": can_work,
        "form": (form or SavedReplyForm()) if can_work else None,
    }
    return render(request, "engage/saved_replies.html", context, status=status)


def save(form: SavedReplyForm, call) -> SavedReply | None:
    """Validate the form and call the service with its data; a refusal becomes a form error."""
    if not form.is_valid():
        return None
    try:
        return call(form.cleaned_data)
    except InvalidInput as error:
        form.add_error(error.field if error.field in form.fields else None, error.message)
        return None


@viewer_required
def saved_reply_list(request):
    return list_page(request)


@worker_required
def saved_reply_create(request):
    form = SavedReplyForm(request.POST)
    reply = save(form, lambda data: services.create_saved_reply(actor=request.user, **data))
    if reply is None:
        return list_page(request, form=form, status=422)
    messages.success(request, _("Saved reply “%(title)s” created.") % {"title": reply.title})
    return HttpResponseSeeOther(list_url(reply))


@manager_required
def saved_reply_edit(request, pk: int):
    reply = get_object_or_404(SavedReply, pk=pk)
    if request.method != "POST":
        form = SavedReplyForm(initial={f: getattr(reply, f) for f in ("title", "language", "text")})
        return render(request, "engage/saved_replies/edit.html", {"reply": reply, "form": form})
    form = SavedReplyForm(request.POST)
    saved = save(form, lambda data: services.update_saved_reply(pk, actor=request.user, **data))
    if saved is None:
        context = {"reply": reply, "form": form}
        return render(request, "engage/saved_replies/edit.html", context, status=422)
    messages.success(request, _("Saved reply “%(title)s” updated.") % {"title": saved.title})
    return HttpResponseSeeOther(list_url(saved))


@manager_required
def saved_reply_delete(request, pk: int):
    """GET asks for confirmation; POST deletes."""
    if request.method != "POST":
        reply = get_object_or_404(SavedReply, pk=pk)
        return render(request, "engage/saved_replies/delete.html", {"reply": reply})
    deleted = services.delete_saved_reply(pk, actor=request.user)
    if deleted is not None:
        messages.success(request, _("Saved reply “%(title)s” deleted.") % {"title": deleted.title})
    else:
        messages.info(request, _("That saved reply had already been deleted."))
    return HttpResponseSeeOther(list_url())


urlpatterns = [
    path("saved-replies/", saved_reply_list, name="saved_replies"),
    path("saved-replies/new/", saved_reply_create, name="saved_reply_create"),
    path("saved-replies/<int:pk>/edit/", saved_reply_edit, name="saved_reply_edit"),
    path("saved-replies/<int:pk>/delete/", saved_reply_delete, name="saved_reply_delete"),
]

"""The sources page (/sources/): where conversations come from and how each feed's polling
goes. Everyone with a role reads it; staff add feeds, change, pause, resume, remove, restore
and poll sources, every write through engage.services.sources.

Also the header's availability toggle (/availability/): a community manager says whether
round robin may give them new conversations (engage.services.availability).
"""

from dataclasses import dataclass
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_POST

from engage import permissions
from engage.choices import SourceKind
from engage.errors import InvalidInput
from engage.forms.sources import AvailabilityForm, SourceForm
from engage.models import Source
from engage.services import availability as availability_services
from engage.services import sources as services
from engage.views.responses import HttpResponseSeeOther, viewer_required, worker_required

# Query-string values that mean "yes" for ?removed=.
TRUE = frozenset({"1", "true", "yes", "on"})


def staff_required(view):
    """A page that changes sources, GET or POST: staff only, everyone else 403."""

    @login_required
    @require_http_methods(["GET", "HEAD", "POST"])
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        permissions.require(permissions.is_staff(request.user), _("Only staff can change sources."))
        return view(request, *args, **kwargs)

    return wrapper


def staff_post(view):
    """A write on the sources page: a POST by staff; other roles get 403 before any parsing."""
    return staff_required(require_POST(view))


# Reading -----------------------------------------------------------------------------------


def listed_sources(*, include_removed: bool) -> list[Source]:
    """The page's sources, by name (removed ones last): one query whatever their number."""
    sources = Source.objects.defer("etag", "last_modified")
    if not include_removed:
        return list(sources.filter(removed_at__isnull=True).order_by("name"))
    # NULL sorts last on PostgreSQL and first on SQLite: say which.
    return list(sources.order_by(F("removed_at").asc(nulls_first=True), "name"))


@dataclass(frozen=True)
class Row:
    """A source as the page shows it: its health in one word, and whether its last error
    is a failure (the feed could not be read) or warnings (read, some entries skipped)."""

    source: Source
    status: str
    label: str
    is_feed: bool
    error_is_warning: bool

    @property
    def show_next_poll(self) -> bool:
        return self.is_feed and self.status not in {"paused", "removed"}


def _error_is_warning(source: Source) -> bool:
    """A poll that read the feed but skipped some entries records its warnings at the time
    of its success; an error recorded after the last success (or with none) is a failure."""
    return (
        bool(source.last_error)
        and source.last_success_at is not None
        and source.last_error_at is not None
        and source.last_error_at <= source.last_success_at
    )


def health(source: Source) -> Row:
    is_feed = source.kind == SourceKind.FEED
    warning = _error_is_warning(source)
    if source.removed_at is not None:
        status, label = "removed", _("Removed")
    elif not source.is_active:
        status, label = "paused", _("Paused")
    elif not is_feed:
        status, label = "push", _("Not polled")
    elif source.failures:
        status = "failing"
        label = ngettext("Failing once", "Failing %(count)s times in a row", source.failures) % {
            "count": source.failures
        }
    elif source.last_polled_at is None:
        status, label = "never", _("Never polled")
    elif source.last_error and not warning:
        # Resumed after failures (resuming resets the count): the next poll tells.
        status, label = "retrying", _("Waiting for the next poll")
    elif source.last_success_at is None:
        status, label = "polling", _("First poll under way")
    elif warning:
        status, label = "warnings", _("OK, with warnings")
    else:
        status, label = "ok", _("OK")
    return Row(source, status, label, is_feed, warning)


def _show_removed(query: QueryDict) -> bool:
    return query.get("removed", "").lower() in TRUE


def sources_url(*, show_removed: bool = False, source: Source | None = None) -> str:
    return (
        reverse("sources")
        + ("?removed=1" if show_removed else "")
        + (f"#source-{source.pk}" if source is not None else "")
    )


def list_page(request, *, show_removed: bool, add_form=None, status: int = 200):
    is_staff = permissions.is_staff(request.user)
    context = {
        "rows": [health(source) for source in listed_sources(include_removed=show_removed)],
        "show_removed": show_removed,
        "is_staff": is_staff,
        "add_form": (add_form or SourceForm()) if is_staff else None,
        "now": timezone.now(),
    }
    return render(request, "engage/sources.html", context, status=status)


@viewer_required
def source_list(request):
    return list_page(request, show_removed=_show_removed(request.GET))


# Writing -----------------------------------------------------------------------------------


def _refused(form, error: InvalidInput) -> None:
    form.add_error(error.field if error.field in form.fields else None, error.message)


@staff_post
def source_add(request):
    form = SourceForm(request.POST)
    show_removed = _show_removed(request.POST)
    if form.is_valid():
        try:
            source = services.add_feed(actor=request.user, **form.cleaned_data)
        except InvalidInput as error:
            _refused(form, error)
        else:
            messages.success(
                request,
                _("Feed “%(name)s” added: it is polled within a minute.") % {"name": source.name},
            )
            return HttpResponseSeeOther(sources_url(show_removed=show_removed, source=source))
    return list_page(request, show_removed=show_removed, add_form=form, status=422)


def edit_page(request, source: Source, form: SourceForm, *, status: int = 200):
    context = {"editing": source, "edit_form": form, "is_staff": True}
    return render(request, "engage/sources.html", context, status=status)


@staff_required
def source_edit(request, pk: int):
    source = get_object_or_404(Source, pk=pk)
    if request.method != "POST":
        return edit_page(request, source, SourceForm.for_source(source))
    form = SourceForm.for_source(source, request.POST)
    if form.is_valid():
        changes = form.changes()
        try:
            saved = services.update_source(pk, actor=request.user, **changes) if changes else source
        except InvalidInput as error:
            _refused(form, error)
        else:
            if changes:
                messages.success(request, _("Source “%(name)s” saved.") % {"name": saved.name})
            else:
                messages.info(request, _("Nothing changed."))
            show_removed = saved.removed_at is not None
            return HttpResponseSeeOther(sources_url(show_removed=show_removed, source=saved))
    return edit_page(request, source, form, status=422)


# Each action: the service call, and what the next page says when it succeeded.
ACTIONS = {
    "pause": (
        lambda pk, actor: services.set_active(pk, actor=actor, active=False),
        gettext_lazy("“%(name)s” is paused: it is not polled until you resume it."),
    ),
    "resume": (
        lambda pk, actor: services.set_active(pk, actor=actor, active=True),
        gettext_lazy("“%(name)s” is active again."),
    ),
    "remove": (
        lambda pk, actor: services.remove(pk, actor=actor),
        gettext_lazy(
            "“%(name)s” was removed: it is no longer polled and its conversations stay. "
            "Restore it from the removed sources."
        ),
    ),
    "restore": (
        lambda pk, actor: services.restore(pk, actor=actor),
        gettext_lazy("“%(name)s” is restored. It stays paused until you resume it."),
    ),
    "poll": (
        lambda pk, actor: services.poll_now(pk, actor=actor),
        gettext_lazy("Polling “%(name)s” now: reload the page in a moment to see how it went."),
    ),
}


@staff_post
def source_action(request, pk: int, action: str):
    """Pause, resume, remove, restore or poll one source; back to the list with a message."""
    call, done = ACTIONS[action]
    show_removed = _show_removed(request.POST)
    try:
        source = call(pk, request.user)
    except InvalidInput as error:
        messages.error(request, error.message)
        return HttpResponseSeeOther(sources_url(show_removed=show_removed))
    messages.success(request, str(done) % {"name": source.name})
    # A removed source is only listed with the removed ones.
    show_removed = show_removed or source.removed_at is not None
    return HttpResponseSeeOther(sources_url(show_removed=show_removed, source=source))


# Availability ------------------------------------------------------------------------------


def _back(request) -> str:
    """Where the toggle was pressed, if it is a page of this site; else the queue."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("queue")


@worker_required
def set_availability(request):
    form = AvailabilityForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose whether you are available or away."))
        return HttpResponseSeeOther(_back(request))
    state = availability_services.set_available(
        request.user, available=form.cleaned_data["available"]
    )
    if state.is_available:
        messages.success(request, _("You are available: new conversations may be given to you."))
    else:
        messages.success(request, _("You are away: no new conversations are given to you."))
    return HttpResponseSeeOther(_back(request))


def _action(name: str):
    return path(f"sources/<int:pk>/{name}/", source_action, {"action": name}, name=f"source_{name}")


urlpatterns = [
    path("sources/", source_list, name="sources"),
    path("sources/add/", source_add, name="source_add"),
    path("sources/<int:pk>/edit/", source_edit, name="source_edit"),
    *(_action(name) for name in ACTIONS),
    path("availability/", set_availability, name="availability"),
]

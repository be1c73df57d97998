"""Dismissing the notifications shown at the top of every page."""

from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from engage.services import notifications as notification_services
from engage.views.responses import HttpResponseSeeOther, viewer_required


def _back(request) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@require_POST
@viewer_required
def read(request, pk: int | None = None):
    notification_services.mark_read(request.user, notification_id=pk)
    return HttpResponseSeeOther(_back(request))


urlpatterns = [
    path("notifications/read/", read, name="notifications_read_all"),
    path("notifications/<int:pk>/read/", read, name="notification_read"),
]

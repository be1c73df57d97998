"""What every page view shares: who may see it, and how a write answers."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.views.decorators.http import require_POST

from engage import permissions


class HttpResponseSeeOther(HttpResponseRedirect):
    """After a POST, the browser must GET the next page (not repeat the POST)."""

    status_code = 303


def viewer_required(view):
    """Logged in (else to the login page) with a role (else 403)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        permissions.require_view(request.user)
        return view(request, *args, **kwargs)

    return wrapper


def worker_required(view):
    """A POST by a community manager (or staff). Everyone else gets 403, before any parsing.

    The product team may link evidence per engage.permissions, but on these pages
    conversations are read-only for them: they work from the feedback board.
    """

    @login_required
    @require_POST
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        permissions.require_work(request.user)
        return view(request, *args, **kwargs)

    return wrapper

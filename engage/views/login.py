"""Logging in, with failed attempts limited (the login page and the admin's).

A client address may fail ENGAGE_LOGIN_FAILURE_LIMIT times for one username, and
ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS times in all, in each window of
ENGAGE_LOGIN_FAILURE_WINDOW_MINUTES; past that, every attempt from there (the right password
too) is refused with a message until the window ends. A successful login clears the
username's count. Windows are fixed periods of the clock (as in django-ratelimit), so a
count needs one cache key and one atomic increment, and tests can move the clock.

The counts live in Django's default cache: Redis when REDIS_URL is set, so that every
gunicorn worker and every web host shares them; this process's memory otherwise (the
embedded default runs one process). When the cache cannot be reached, logins go on
unlimited and the error is logged: a Redis outage must not lock everybody out.
"""

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import ngettext

log = logging.getLogger(__name__)

# The clock the windows follow; tests replace it instead of sleeping.
clock = time.time


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or behind ENGAGE_PROXY_COUNT reverse proxies the
    address the outermost proxy saw, which is that many entries from the end of
    X-Forwarded-For (entries further left are whatever the client chose to send)."""
    proxies = settings.ENGAGE_PROXY_COUNT
    if proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        forwarded = [address.strip() for address in forwarded if address.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def _window() -> tuple[int, float]:
    """The current window's number and the seconds left in it."""
    seconds = settings.ENGAGE_LOGIN_FAILURE_WINDOW_MINUTES * 60
    now = clock()
    number = int(now // seconds)
    return number, (number + 1) * seconds - now


def _keys(username: str, address: str, window: int) -> list[tuple[str, int]]:
    """The cache keys counting this attempt's failures, each with its limit. Hashed: the
    cache then holds neither usernames nor addresses, and any username fits in a key."""

    def key(kind: str, *parts: str) -> str:
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        return f"engage:login-failures:{kind}:{digest}:{window}"

    return [
        (key("user", username.casefold(), address), settings.ENGAGE_LOGIN_FAILURE_LIMIT),
        (key("address", address), settings.ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS),
    ]


def seconds_locked(username: str, address: str) -> float:
    """0 when this username may try to log in from this address, else the seconds to wait."""
    window, left = _window()
    keys = _keys(username, address, window)
    try:
        counts = cache.get_many([key for key, _limit in keys])
    except Exception:  # noqa: BLE001 - see the module's docstring
        log.exception("Failed logins cannot be counted: the cache is not answering")
        return 0
    if any(counts.get(key, 0) >= limit for key, limit in keys):
        return left
    return 0


def record_failure(username: str, address: str) -> None:
    window, left = _window()
    for key, _limit in _keys(username, address, window):
        try:
            # The key outlives its window a little; it is never read after it anyway.
            if not cache.add(key, 1, timeout=math.ceil(left) + 1):
                cache.incr(key)
        except ValueError:  # it expired between add and incr: this failure starts it again
            cache.add(key, 1, timeout=math.ceil(left) + 1)
        except Exception:  # noqa: BLE001 - see the module's docstring
            log.exception("Failed logins cannot be counted: the cache is not answering")
            return


def record_success(username: str, address: str) -> None:
    """The person knows the password: their own count starts again (the address's does not,
    or one valid account would let an address try any number of others)."""
    window, _left = _window()
    user_key, _limit = _keys(username, address, window)[0]
    try:
        cache.delete(user_key)
    except Exception:  # noqa: BLE001 - see the module's docstring
        log.exception("Failed logins cannot be counted: the cache is not answering")


class LimitedMixin:
    """For an AuthenticationForm: refuse without checking the password while the limit is
    reached, count each failure, clear the count on success."""

    # Seconds to wait, when the form was refused for too many failures.
    locked_for: float = 0

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # nothing was tried: the fields say what is missing
        address = client_address(self.request)
        self.locked_for = seconds_locked(username, address)
        if self.locked_for:
            minutes = math.ceil(self.locked_for / 60)
            raise ValidationError(
                ngettext(
                    "Too many failed login attempts. Wait %(minutes)d minute and try again.",
                    "Too many failed login attempts. Wait %(minutes)d minutes and try again.",
                    minutes,
                )
                % {"minutes": minutes},
                code="too_many_attempts",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            # A right password refused all the same (the admin's login, for someone who is
            # not staff) guessed nothing: only wrong passwords count.
            if self.get_user() is None:
                record_failure(username, address)
            raise
        record_success(username, address)
        return cleaned


class LimitedAuthenticationForm(LimitedMixin, AuthenticationForm):
    pass


class LimitedAdminAuthenticationForm(LimitedMixin, AdminAuthenticationForm):
    pass


class LimitedLoginView(LoginView):
    """Django's login page with the limit; refused for too many failures, it answers 429."""

    authentication_form = LimitedAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.locked_for:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(form.locked_for))
        return response

"""/healthz: can this web process serve? For load balancers and monitors, so no login.

It answers 200 when the database and (if configured) Redis answer, 503 otherwise, always
as JSON and never as a 500. It says which service failed and the kind of error, never the
error's text: that could hold a host name or a URL with a password. The full error goes to
the server log.
"""

import logging
import time

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

# A load balancer waits a few seconds for an answer: a Redis that does not answer within
# this many seconds is reported down rather than making the check itself time out.
REDIS_TIMEOUT_SECONDS = 2


def _ok(started: float) -> dict:
    return {"status": "ok", "detail": f"answered in {(time.monotonic() - started) * 1000:.1f} ms"}


def _failed(service: str, error: Exception) -> dict:
    log.error("Health check: %s is not answering", service, exc_info=error)
    return {"status": "error", "detail": f"{type(error).__name__} (see the server log)"}


def check_database() -> dict:
    """One cheap query on the default database."""
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001 - any failure is an answer, never a 500
        return _failed("the database", error)
    return _ok(started)


def check_redis() -> dict:
    """PING the Redis that REDIS_URL names, on a connection of its own with short timeouts
    (django-rq's connections wait as long as a job needs)."""
    if not settings.REDIS_URL:
        return {"status": "not configured", "detail": "jobs run in the web process"}
    started = time.monotonic()
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        with client:  # closes the connection, answered or not
            client.ping()
    except Exception as error:  # noqa: BLE001 - any failure is an answer, never a 500
        return _failed("Redis", error)
    return _ok(started)


@never_cache
@require_safe
def healthz(request):
    database, queue = check_database(), check_redis()
    healthy = database["status"] == "ok" and queue["status"] != "error"
    body = {"status": "ok" if healthy else "error", "database": database, "redis": queue}
    return JsonResponse(body, status=200 if healthy else 503)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
]

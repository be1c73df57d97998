"""/healthz: what a load balancer sees when the services answer, and when they do not."""

import socket
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

pytestmark = pytest.mark.django_db

SECRET = "s3cret-pa55word"


def closed_port() -> int:
    """A local port that nothing listens on: bound for a moment by us, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def no_redis(settings):
    settings.REDIS_URL = ""


@pytest.fixture
def redis_down(settings):
    settings.REDIS_URL = f"redis://:{SECRET}@127.0.0.1:{closed_port()}/0"


@pytest.fixture
def redis_up(settings):
    """The Redis of this run (REDIS_URL), or an in-memory one on the embedded default."""
    if settings.REDIS_URL:
        yield
        return
    import fakeredis

    server = fakeredis.FakeServer()
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    with mock.patch(
        "redis.Redis.from_url",
        lambda url, **options: fakeredis.FakeRedis(server=server, **options),
    ):
        yield


def test_all_services_answering_is_200_without_a_login(client, redis_up):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["redis"]["status"] == "ok"
    assert "no-cache" in response["Cache-Control"]


def test_without_redis_configured_it_says_so_and_is_healthy(client, no_redis):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["redis"]["status"] == "not configured"


def test_a_failing_database_is_503_and_names_it_without_the_error_text(client, no_redis):
    error = OperationalError(f'connection to "db.internal" failed: password "{SECRET}"')

    with mock.patch.object(BaseDatabaseWrapper, "cursor", side_effect=error):
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"]["status"] == "error"
    assert "OperationalError" in body["database"]["detail"]
    assert SECRET not in response.content.decode()
    assert "db.internal" not in response.content.decode()


def test_redis_not_answering_is_503_without_its_url(client, redis_down):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"]["status"] == "ok"
    assert body["redis"]["status"] == "error"
    assert SECRET not in response.content.decode()
    assert "redis://" not in response.content.decode()


def test_both_failing_is_still_an_answer_not_a_500(client, redis_down):
    with mock.patch.object(BaseDatabaseWrapper, "cursor", side_effect=RuntimeError("boom")):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"]["status"] == "error"
    assert response.json()["redis"]["status"] == "error"


def test_it_only_reads(client, no_redis):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_a_load_balancer_checks_over_plain_http_with_ssl_redirect_on(client, settings, no_redis):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz").status_code == 200
    assert client.get("/queue/").status_code == 301  # everything else goes to https

"""Failed logins are limited per username and client address, and per address."""

import uuid
from unittest import mock

import pytest
from django.core.cache import cache

from engage.views import login
from tests import factories

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
LOCKED = "Too many failed login attempts."
WRONG = "Please enter a correct username and password."


class Clock:
    """The limiter's clock, one minute into a window, moved by the test instead of sleeping."""

    def __init__(self, window_minutes: int):
        self.now = 1_000 * window_minutes * 60 + 60.0

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock(settings, monkeypatch):
    """The default limits, counted in a cache namespace of this test's own (the configured
    cache: Redis when REDIS_URL is set), with a clock the test moves."""
    settings.ENGAGE_LOGIN_FAILURE_LIMIT = 5
    settings.ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS = 50
    settings.ENGAGE_LOGIN_FAILURE_WINDOW_MINUTES = 15
    settings.ENGAGE_PROXY_COUNT = 0
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    }
    clock = Clock(15)
    monkeypatch.setattr(login, "clock", clock)
    return clock


def log_in(client, username, password, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail(client, username, times, **extra):
    for _attempt in range(times):
        response = log_in(client, username, "not-the-password", **extra)
        assert response.status_code == 200
        assert WRONG in response.content.decode()


def test_five_wrong_passwords_then_the_right_one_is_refused_with_the_message(
    client, manager, clock
):
    fail(client, "manager", 5)

    response = log_in(client, "manager", "pw-manager")

    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED in page
    assert "Wait 14 minutes and try again." in page
    assert 'role="alert"' in page
    assert response["Retry-After"] == str(14 * 60)
    assert not logged_in(client)


def test_four_wrong_passwords_still_let_the_right_one_in(client, manager, clock):
    fail(client, "manager", 4)

    response = log_in(client, "manager", "pw-manager")

    assert response.status_code == 302
    assert logged_in(client)


def test_another_user_and_another_address_are_not_affected(client, manager, other_manager, clock):
    fail(client, "manager", 5)
    assert log_in(client, "manager", "pw-manager").status_code == 429

    assert log_in(client, "other", "pw-other").status_code == 302
    assert logged_in(client)
    client.logout()
    from_elsewhere = log_in(client, "manager", "pw-manager", REMOTE_ADDR="10.0.0.2")
    assert from_elsewhere.status_code == 302
    assert logged_in(client)


def test_the_username_counts_whatever_its_case(client, manager, clock):
    fail(client, "MANAGER", 3)
    fail(client, "Manager", 2)

    assert log_in(client, "manager", "pw-manager").status_code == 429


def test_after_the_window_the_right_password_works_again(client, manager, clock):
    fail(client, "manager", 5)
    clock.advance(10)
    still = log_in(client, "manager", "pw-manager")
    assert still.status_code == 429
    assert "Wait 4 minutes" in still.content.decode()

    clock.advance(5)
    response = log_in(client, "manager", "pw-manager")

    assert response.status_code == 302
    assert logged_in(client)


def test_a_successful_login_clears_the_usernames_count(client, manager, clock):
    fail(client, "manager", 4)
    assert log_in(client, "manager", "pw-manager").status_code == 302
    client.logout()

    fail(client, "manager", 4)

    assert log_in(client, "manager", "pw-manager").status_code == 302


def test_an_address_failing_for_many_usernames_is_refused_for_all(client, settings, clock):
    settings.ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS = 8
    for name in ["ada", "bob", "cy", "dee"]:
        fail(client, name, 2)
    factories.user("eve")

    refused = log_in(client, "eve", "pw-eve")
    assert refused.status_code == 429
    assert LOCKED in refused.content.decode()

    assert log_in(client, "eve", "pw-eve", REMOTE_ADDR="10.0.0.3").status_code == 302


def test_behind_a_proxy_each_forwarded_client_counts_on_its_own(client, manager, settings, clock):
    settings.ENGAGE_PROXY_COUNT = 1
    fail(client, "manager", 5, HTTP_X_FORWARDED_FOR="198.51.100.7")

    # What the client itself put in front of the proxy's entry changes nothing.
    spoofed = log_in(client, "manager", "pw-manager", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7")
    assert spoofed.status_code == 429

    other = log_in(client, "manager", "pw-manager", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert other.status_code == 302


def test_the_admin_login_is_limited_too(client, staff, clock):
    for _attempt in range(5):
        client.post("/admin/login/", {"username": "admin", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "admin", "password": "pw-admin"})

    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_a_cache_that_does_not_answer_locks_nobody_out(client, manager, clock):
    down = mock.patch.multiple(
        cache,
        get_many=mock.Mock(side_effect=ConnectionError("down")),
        add=mock.Mock(side_effect=ConnectionError("down")),
        delete=mock.Mock(side_effect=ConnectionError("down")),
    )
    with down:
        fail(client, "manager", 6)
        response = log_in(client, "manager", "pw-manager")

    assert response.status_code == 302
    assert logged_in(client)


def test_the_right_password_refused_by_the_admin_is_not_a_failure(client, manager, clock):
    for _attempt in range(5):
        response = client.post("/admin/login/", {"username": "manager", "password": "pw-manager"})
        assert LOCKED not in response.content.decode()

    assert log_in(client, "manager", "pw-manager").status_code == 302

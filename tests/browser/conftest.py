"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live server.

They run with the rest of the suite (`make test`) or alone (`.venv/bin/pytest tests/browser`;
`-m "not browser"` leaves them out). Where the browser is missing they are skipped with the
reason, except in CI (`CI=true`), where a missing browser fails them: a green CI must mean
that they ran. `playwright install` is not used: `apt-get install chromium` provides it.

One browser serves the whole session; each test gets a fresh context (cookies, storage).
Screenshots go to `$ENGAGE_SCREENSHOTS`, or to a temporary directory named at the end of
the run.
"""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import BrowserContext, Page, expect

CHROMIUM = os.environ.get("ENGAGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Two slow cores in CI: give the server and the browser room before an assertion gives up.
expect.set_options(timeout=10_000)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API keeps an asyncio loop running in this thread, and Django then
    refuses ORM calls here as if they came from async code. The tests are synchronous, so
    allow them, for the rest of the session (the loop lives as long as the browser)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium, headless; skip (or in CI fail) when it is not installed."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        reason = (
            f"browser tests need Chromium at {CHROMIUM} "
            "(apt-get install chromium, or set ENGAGE_CHROMIUM to its path)"
        )
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    """page.goto("/queue/") goes to the live server."""
    return live_server.url


@pytest.fixture
def new_context(new_context):
    """Contexts whose actions give up after 10 s (not Playwright's 30 s): a missing button
    fails the test quickly."""

    def make(**kwargs) -> BrowserContext:
        context = new_context(**kwargs)
        context.set_default_timeout(10_000)
        return context

    return make


@pytest.fixture(autouse=True)
def _live_server_settings(settings):
    """What the live server needs, whatever the environment chose at import.

    pytest-django turns DEBUG off in tests, and with DEBUG off at import the settings pick
    WhiteNoise's manifest storage, whose hashed names the live server cannot serve (there
    is no collectstatic here). HTTPS-only settings would break plain-HTTP localhost.
    """
    settings.STORAGES = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture
def log_in(live_server) -> Callable[[BrowserContext, object], None]:
    """Log a user in to a browser context without the login form: a server-side session
    whose cookie is handed to the browser. (test_login.py covers the form itself.)"""

    def log_in(context: BrowserContext, user) -> None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
        context.add_cookies(
            [
                {
                    "name": django_settings.SESSION_COOKIE_NAME,
                    "value": cookie.value,
                    "url": live_server.url,
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ]
        )

    return log_in


@pytest.fixture
def manager_page(page: Page, context: BrowserContext, log_in, manager) -> Page:
    """A page whose browser is logged in as the community manager `manager`."""
    log_in(context, manager)
    return page


def _screenshot_dir(tmp_path_factory) -> Path:
    configured = os.environ.get("ENGAGE_SCREENSHOTS")
    if configured:
        return Path(configured)
    return tmp_path_factory.getbasetemp() / "screenshots"


@pytest.fixture
def screenshot(request, tmp_path_factory) -> Callable[..., Path]:
    """Save a screenshot (the full page, or what fits the window) as <name>.png."""

    def take(page: Page, name: str, *, full_page: bool = True) -> Path:
        folder = _screenshot_dir(tmp_path_factory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=path, full_page=full_page)
        request.config.stash.setdefault(SCREENSHOTS, []).append(path)
        return path

    return take


SCREENSHOTS = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, config):
    taken = config.stash.get(SCREENSHOTS, [])
    if taken:
        terminalreporter.write_sep("-", "browser screenshots")
        for path in taken:
            terminalreporter.write_line(str(path.resolve()))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests run last (after pytest-django's own ordering): Playwright's event loop
    keeps running in this thread until the session ends, and no other test should run
    beside it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)

"""Faults: Redis down while people work, the database dropping the web server's
connections, and what a person sees when something fails on our side.

A worker killed mid-job is tests/test_worker_killed.py; items pushed while Redis is down
and enriched by the sweeper once it is back are in tests/test_ingest.py.
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import django_rq
import psycopg
import pytest
import redis
import requests
import rq
from django.db import OperationalError, connection
from django.template import loader
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from engage import queries
from engage.choices import EventKind, Stage, TicketStatus
from engage.models import Conversation, Event, FeedbackLink, Notification
from engage.services import conversations as cs
from engage.services import feedback as fs
from engage.services import tokens
from tests import factories
from tests.conftest import work

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisOutage:
    """Point the job queue at a port where nothing listens, as a REDIS_URL would whose
    server is down, and count every attempt to reach it."""

    def __init__(self):
        self.patch = pytest.MonkeyPatch()
        self.attempts = 0

    def begin(self) -> None:
        dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)

        def get_queue(name="default", **kwargs):
            self.attempts += 1
            return rq.Queue(name, connection=dead)

        self.patch.setattr(django_rq, "get_queue", get_queue)

    def end(self) -> None:
        self.patch.undo()


@pytest.fixture
def redis_outage():
    outage = RedisOutage()
    yield outage
    outage.end()


def run_the_schedule_an_hour_later(queue, monkeypatch) -> None:
    """What the scheduler (`rqcron engage.cron`) and a worker do over the next hour: queue
    each recurring job listed in engage/cron.py, and run them."""
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=queue.connection)
    scheduler.load_config_from_file("engage.cron")
    later = timezone.now() + timedelta(hours=1)
    with monkeypatch.context() as clock:
        clock.setattr(timezone, "now", lambda: later)
        for job in scheduler.get_jobs():
            queue.enqueue(job.func, args=job.args, kwargs=job.kwargs)
        work(queue)


def in_react(manager) -> Conversation:
    conversation = factories.conversation()
    cs.assign(conversation.pk, manager, actor=manager)
    cs.advance(conversation.pk, actor=manager)
    cs.log_reply(conversation.pk, actor=manager, text="Thanks, we are looking into it.")
    return cs.advance(conversation.pk, actor=manager)


def version_of(conversation) -> int:
    return Conversation.objects.get(pk=conversation.pk).version


def history_of(conversation) -> list[tuple[str, str, str]]:
    return list(
        Event.objects.filter(conversation=conversation)
        .exclude(kind=EventKind.CREATED)
        .order_by("pk")
        .values_list("kind", "from_stage", "to_stage")
    )


# Redis down ---------------------------------------------------------------------------------
# Transactional tests: each request commits for real, so its on-commit hooks (the enqueues)
# run inside the request, as in production.


@pytest.mark.django_db(transaction=True)
def test_moving_a_conversation_by_page_and_api_works_and_is_recorded_while_redis_is_down(
    queue, redis_outage
):
    manager = factories.user("mia")
    conversation = factories.conversation()
    raw_token = tokens.create_token(manager, name="integration")[1]
    api = {"headers": {"Authorization": f"Bearer {raw_token}"}, "content_type": "application/json"}
    page = Client(raise_request_exception=False)
    page.force_login(manager)
    redis_outage.begin()

    def action(name: str) -> str:
        return reverse(name, args=[conversation.pk])

    steps = [
        page.post(
            action("conversation_assign"), {"action": "me", "version": version_of(conversation)}
        ),
        page.post(action("conversation_advance"), {"version": version_of(conversation)}),
        page.post(action("conversation_reply"), {"text": "Sorry about that: a new one ships."}),
        page.post(action("conversation_advance"), {"version": version_of(conversation)}),
        page.post(
            action("conversation_restart"),
            {"reason": "They wrote back unhappy", "version": version_of(conversation)},
        ),
        page.post(
            f"/api/v1/conversations/{conversation.pk}/advance",
            {"version": version_of(conversation)},
            **api,
        ),
        page.post(f"/api/v1/conversations/{conversation.pk}/assign", {"assignee": None}, **api),
        page.post(
            f"/api/v1/conversations/{conversation.pk}/restart",
            {"reason": "A new need: a bigger tank"},
            **api,
        ),
    ]

    assert [response.status_code for response in steps] == [303] * 5 + [200] * 3
    assert history_of(conversation) == [
        (EventKind.ASSIGNED, "", ""),
        (EventKind.STAGE_CHANGED, Stage.LISTEN, Stage.INTERACT),
        (EventKind.REPLY_LOGGED, "", ""),
        (EventKind.STAGE_CHANGED, Stage.INTERACT, Stage.REACT),
        (EventKind.RESTARTED, Stage.REACT, Stage.LISTEN),
        (EventKind.STAGE_CHANGED, Stage.LISTEN, Stage.INTERACT),
        (EventKind.UNASSIGNED, "", ""),
        (EventKind.RESTARTED, Stage.INTERACT, Stage.LISTEN),
    ]
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.stage, stored.cycle, stored.assignee) == (Stage.LISTEN, 3, None)
    # A stage change queues no job: there is nothing to catch up on when Redis returns.
    assert redis_outage.attempts == 0
    assert page.get(reverse("conversation", args=[conversation.pk])).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_reaction_that_moves_to_sell_is_kept_and_confirmed_while_redis_is_down(
    queue, redis_outage
):
    manager = factories.user("mia")
    product = factories.user("pat", role="product_team")
    ticket = fs.create_ticket(actor=product, title="Bigger water tank")
    fs.update_ticket(ticket.pk, actor=product, owner=product)
    conversation = in_react(manager)
    page = Client(raise_request_exception=False)
    page.force_login(manager)
    redis_outage.begin()

    response = page.post(
        reverse("conversation_link_ticket", args=[conversation.pk]),
        {"ticket": ticket.pk, "quote": "The tank is tiny"},
        follow=True,
    )

    assert response.status_code == 200
    said = [str(message) for message in response.context["messages"]]
    assert said == ["Linked to ticket “Bigger water tank”.", "Moved to sell."]
    assert Conversation.objects.get(pk=conversation.pk).stage == Stage.SELL
    assert FeedbackLink.objects.filter(ticket=ticket, conversation=conversation).count() == 1
    assert history_of(conversation)[-2:] == [
        (EventKind.FEEDBACK_LINKED, "", ""),
        (EventKind.STAGE_CHANGED, Stage.REACT, Stage.SELL),
    ]
    assert redis_outage.attempts == 1  # the owner's notice could not be queued


@pytest.mark.django_db(transaction=True)
def test_shipping_a_ticket_while_redis_is_down_still_gives_each_person_a_follow_up(
    queue, redis_outage
):
    manager = factories.user("mia")
    product = factories.user("pat", role="product_team")
    conversation = factories.conversation()
    cs.assign(conversation.pk, manager, actor=manager)
    ticket = fs.create_ticket(actor=manager, title="Milk frother", conversation_id=conversation.pk)
    page = Client(raise_request_exception=False)
    page.force_login(product)
    redis_outage.begin()

    response = page.post(
        reverse("feedback_status", args=[ticket.pk]), {"status": "shipped", "note": "In 2.3."}
    )

    assert response.status_code == 303
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SHIPPED
    assert Conversation.objects.get(pk=conversation.pk).needs_follow_up
    assert Event.objects.filter(
        conversation=conversation, kind=EventKind.FOLLOW_UP_FLAGGED
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_the_notices_redis_missed_are_sent_once_it_is_back(queue, redis_outage, monkeypatch):
    manager = factories.user("mia")
    product = factories.user("pat", role="product_team")
    ticket = fs.create_ticket(actor=product, title="Bigger water tank")
    fs.update_ticket(ticket.pk, actor=product, owner=product)
    conversation = in_react(manager)
    redis_outage.begin()
    fs.link_evidence(ticket.pk, conversation.pk, actor=manager, quote="The tank is tiny")
    redis_outage.end()

    run_the_schedule_an_hour_later(queue, monkeypatch)
    run_the_schedule_an_hour_later(queue, monkeypatch)

    assert Notification.objects.filter(user=product, key__startswith="evidence:").count() == 1


# The database drops the web server's connections -------------------------------------------

SERVER_SETTINGS = """\
from config.settings import *  # noqa: F403

# The production settings, but for what the loopback test needs: the static files were
# never collected (no manifest), plain HTTP cannot carry Secure cookies, and the test's
# users have fast (MD5) password hashes.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]
"""
SERVER_NAME = "engage-fault-server"
LEAKS = ("Traceback", "OperationalError", "PoolTimeout", "psycopg", "django.db", "/work/")
POSTGRESQL_ONLY = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="psycopg's connection pool and pg_terminate_backend exist only with PostgreSQL; "
    "CI runs this with DATABASE_URL set",
)


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="module")
def web_server(django_db_setup, tmp_path_factory):
    """gunicorn from the virtualenv (DEBUG off, psycopg's pool as configured in
    config/settings.py) serving the test database on a free port: one worker process with
    eight threads, so that its pool holds several connections, as a busy server's does."""
    if connection.vendor != "postgresql":
        pytest.skip("the web server tests need PostgreSQL")
    folder = tmp_path_factory.mktemp("web_server")
    (folder / "fault_server_settings.py").write_text(SERVER_SETTINGS)
    secret = secrets.token_urlsafe(50)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DEBUG"))},
        "DJANGO_SETTINGS_MODULE": "fault_server_settings",
        "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}",
        "DEBUG": "0",
        "SECRET_KEY": secret,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url(),
        # The server's connections carry this name, so that the test can drop just them.
        "PGAPPNAME": SERVER_NAME,
    }
    port = free_port()
    log = (folder / "gunicorn.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and gunicorn
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "1", "--threads", "8"]
        + ["--bind", f"127.0.0.1:{port}", "--timeout", "30"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (folder / "gunicorn.log").read_text()
            try:
                if requests.get(f"{base}/accounts/login/", timeout=10).status_code == 200:
                    break
            except requests.ConnectionError:  # not listening yet
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield base, secret
    finally:
        server.send_signal(signal.SIGINT)  # a quick shutdown: nothing is in flight
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def log_in(base: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = session.post(
        f"{base}/accounts/login/",
        {"username": username, "password": password, "csrfmiddlewaretoken": token},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return session


def drop_the_servers_connections() -> int:
    """What a database restart or failover does to the web server: its connections die."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s",
            [SERVER_NAME],
        )
        return len(cursor.fetchall())


@contextmanager
def database_refusing_connections():
    """The database is unreachable for a while: no new connection, the open ones dropped.
    PostgreSQL changes that only from another database (here the maintenance one)."""
    db = connection.settings_dict
    name = connection.ops.quote_name(db["NAME"])
    maintenance = psycopg.connect(
        dbname="postgres",
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        autocommit=True,
    )
    with maintenance:
        maintenance.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            drop_the_servers_connections()
            yield
        finally:
            maintenance.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


def assert_clean(response, secret: str) -> None:
    """A failure shows our message, never the machinery behind it."""
    if response.status_code != 200:
        assert response.status_code in {500, 503}, response.status_code
        assert "Something went wrong on our side" in response.text
    assert secret not in response.text
    assert not [leak for leak in LEAKS if leak in response.text], response.text[:500]


@POSTGRESQL_ONLY
@pytest.mark.django_db(transaction=True)
def test_the_web_server_shrugs_off_the_database_dropping_its_connections(web_server):
    base, secret = web_server
    manager = factories.user("mia")
    conversation = factories.conversation()
    session = log_in(base, "mia", "pw-mia")
    page = f"{base}/conversations/{conversation.pk}/"
    with ThreadPoolExecutor(8) as busy:  # a busy moment: the pool grows to several connections
        before = list(busy.map(lambda _: session.get(f"{base}/queue/", timeout=10), range(16)))
    assert {response.status_code for response in before} == {200}

    assert drop_the_servers_connections() >= 3

    began = time.monotonic()
    first = session.get(f"{base}/queue/", timeout=30)
    waited = time.monotonic() - began
    after = [first] + [session.get(url, timeout=10) for url in [page, f"{base}/queue/"] * 3]
    for response in after:
        assert_clean(response, secret)
    # Nobody is shown an error: the pool tests a connection before lending it, and on
    # finding a dead one tests the rest at once; the first request waits about a second.
    assert [response.status_code for response in after] == [200] * 7
    assert waited < 5
    assign = session.post(
        f"{base}/conversations/{conversation.pk}/assign/",
        {"action": "me", "version": version_of(conversation)},
        headers={"X-CSRFToken": session.cookies["csrftoken"]},
        timeout=10,
        allow_redirects=False,
    )
    assert assign.status_code == 303
    assert Conversation.objects.get(pk=conversation.pk).assignee == manager


@POSTGRESQL_ONLY
@pytest.mark.django_db(transaction=True)
def test_while_the_database_is_unreachable_pages_fail_cleanly_and_recover_without_a_restart(
    web_server,
):
    base, secret = web_server
    manager = factories.user("mia")
    raw_token = tokens.create_token(manager, name="integration")[1]
    api = {"Authorization": f"Bearer {raw_token}"}
    session = log_in(base, "mia", "pw-mia")
    assert session.get(f"{base}/queue/", timeout=10).status_code == 200

    with database_refusing_connections(), ThreadPoolExecutor(2) as both:
        # Each waits for the pool's timeout (10 s), at the same time.
        asked = [
            both.submit(session.get, f"{base}/queue/", timeout=30),
            both.submit(requests.get, f"{base}/api/v1/conversations", headers=api, timeout=30),
        ]
        page, answer = (request.result() for request in asked)

    assert page.status_code == 500
    assert_clean(page, secret)
    assert answer.status_code == 500
    assert answer.json() == {"detail": "Something went wrong on our side. Please try again."}
    assert_clean(answer, secret)
    # Back at once, with no restart of the server.
    assert session.get(f"{base}/queue/", timeout=10).status_code == 200
    assert requests.get(f"{base}/api/v1/conversations", headers=api, timeout=10).status_code == 200


# What a person sees when something fails on our side ---------------------------------------


def test_the_error_page_renders_without_the_database_or_a_request():
    """pytest-django refuses database access here: the page must not need it."""
    html = loader.get_template("500.html").render()

    assert "Something went wrong on our side. Please try again." in html
    assert 'href="/"' in html


@pytest.mark.django_db
def test_a_page_that_fails_unexpectedly_shows_the_error_page_in_the_persons_language(
    manager, monkeypatch
):
    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(queries, "queue_rows", database_gone)
    page = Client(raise_request_exception=False)
    page.force_login(manager)

    english = page.get("/queue/")
    italian = page.get("/queue/", headers={"Accept-Language": "it"})

    assert english.status_code == italian.status_code == 500
    assert "Something went wrong on our side. Please try again." in english.text
    assert "Qualcosa è andato storto da parte nostra. Riprova." in italian.text
    for response in english, italian:
        assert "server closed the connection" not in response.text
        assert "Traceback" not in response.text
